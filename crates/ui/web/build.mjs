// Builds crates/ui/dist from src/: one JS bundle, one CSS bundle, index.html naming them with
// content-hash cache tokens. Deterministic on purpose: CI rebuilds and diffs the committed dist.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
const assets = join(dist, "assets");

const result = await build({
  entryPoints: { app: join(here, "src", "main.tsx") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  charset: "utf8",
  write: false,
  outdir: assets,
  loader: { ".css": "css" },
  logLevel: "warning",
});

// Only regenerate what the build owns, so a stale asset never lingers in the committed dist.
rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });
const tokens = {};
for (const file of result.outputFiles) {
  const name = file.path.slice(assets.length + 1);
  writeFileSync(file.path, file.contents);
  tokens[name] = createHash("sha256").update(file.contents).digest("hex").slice(0, 12);
}
// The theme bootstrap is copied as is: it must run before the bundle, and is too small to minify.
const themeInit = readFileSync(join(here, "src", "theme-init.js"));
writeFileSync(join(assets, "theme-init.js"), themeInit);
tokens["theme-init.js"] = createHash("sha256").update(themeInit).digest("hex").slice(0, 12);
const template = readFileSync(join(here, "src", "index.html"), "utf8");
const html = template
  .replace("%APP_JS%", `/ui/assets/app.js?v=${tokens["app.js"]}`)
  .replace("%THEME_JS%", `/ui/assets/theme-init.js?v=${tokens["theme-init.js"]}`)
  .replace("%APP_CSS%", `/ui/assets/app.css?v=${tokens["app.css"]}`);
writeFileSync(join(dist, "index.html"), html);

if (process.argv.includes("--sizes")) {
  let total = 0;
  for (const name of readdirSync(assets).sort()) {
    const bytes = readFileSync(join(assets, name));
    const gzipped = gzipSync(bytes, { level: 9 }).length;
    total += gzipped;
    console.log(`${name}\t${bytes.length} B\t${gzipped} B gzip -9`);
  }
  console.log(`first load (JS+CSS)\t${total} B gzip -9`);
}
