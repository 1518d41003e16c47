// Runs the unit tests of the UI's pure logic (test/*.test.ts) under Node's own test runner:
// esbuild bundles each file (TypeScript, imports of src/) into a temp directory first, since
// Node 20 does not run TypeScript.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here).filter((name) => name.endsWith(".test.ts")).sort();
const out = mkdtempSync(join(tmpdir(), "andante-ui-test-"));
try {
  await build({
    entryPoints: files.map((name) => join(here, name)),
    bundle: true,
    platform: "node",
    format: "esm",
    outdir: out,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  const compiled = readdirSync(out).map((name) => join(out, name));
  const result = spawnSync(process.execPath, ["--test", ...compiled], { stdio: "inherit" });
  process.exitCode = result.status ?? 1;
} finally {
  rmSync(out, { recursive: true, force: true });
}
