// Lets TypeScript accept the CSS imports that esbuild bundles into app.css.
declare module "*.css";
