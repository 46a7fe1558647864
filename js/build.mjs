// Bundle every view in js/src/views/*.ts into llm_widgets/static/<name>.js (ESM, self-contained).
import { build } from "esbuild";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const views = readdirSync(join(here, "src", "views")).filter((f) => f.endsWith(".ts"));
await build({
  entryPoints: [...views.map((f) => join(here, "src", "views", f)), join(here, "src", "export_host.ts")],
  outdir: join(here, "..", "llm_widgets", "static"),
  entryNames: "[name]",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  define: { "define.amd": "false" },
  logLevel: "warning",
});
console.log(`built ${views.length} views: ${views.join(", ")}`);
