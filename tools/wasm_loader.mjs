// Node module hooks that let Node load the wasm-bindgen "bundler" build of
// @influxdata/flux-lsp-browser, which is written for webpack: its .js files are ES modules
// in a package without "type": "module", and it imports the .wasm file as an ES module
// (the WebAssembly/ESM integration Node only has behind a flag). Registered by
// flux_check.mjs before the package is imported.
import { readFile } from "node:fs/promises";

const PACKAGE_DIR = "/@influxdata/flux-lsp-browser/";

export async function load(url, context, nextLoad) {
  if (!url.includes(PACKAGE_DIR)) {
    return nextLoad(url, context);
  }
  if (url.endsWith(".wasm")) {
    return { format: "module", source: await wasmShim(url), shortCircuit: true };
  }
  if (url.endsWith(".js")) {
    const source = await readFile(new URL(url), "utf8");
    return { format: "module", source, shortCircuit: true };
  }
  return nextLoad(url, context);
}

// An ES module standing in for the .wasm file: it instantiates the binary and re-exports
// every wasm export by name. The binary imports functions from the glue module, which itself
// imports this shim and reads `memory` while it evaluates, so the shim must finish first and
// cannot import the glue statically (the cycle would evaluate the glue first). It hands the
// binary trampolines that resolve the glue's functions on first call instead; nothing calls
// them during instantiation (the binary has no start function that calls imports).
async function wasmShim(url) {
  const bytes = await readFile(new URL(url));
  const module = await WebAssembly.compile(bytes);
  const imports = WebAssembly.Module.imports(module).filter((i) => i.kind === "function");
  const other = WebAssembly.Module.imports(module).filter((i) => i.kind !== "function");
  if (other.length > 0) {
    throw new Error(`unexpected non-function wasm imports: ${JSON.stringify(other)}`);
  }
  const modules = [...new Set(imports.map((i) => i.module))];
  const exportNames = WebAssembly.Module.exports(module).map((e) => e.name);
  const lines = [
    'import { readFileSync } from "node:fs";',
    "const glue = {};",
    ...modules.map(
      (m) => `import(${JSON.stringify(m)}).then((ns) => { glue[${JSON.stringify(m)}] = ns; });`,
    ),
    "const imports = {};",
    ...modules.map((m) => `imports[${JSON.stringify(m)}] = {};`),
    ...imports.map(
      (i) =>
        `imports[${JSON.stringify(i.module)}][${JSON.stringify(i.name)}] = ` +
        `(...args) => glue[${JSON.stringify(i.module)}][${JSON.stringify(i.name)}](...args);`,
    ),
    `const bytes = readFileSync(new URL(${JSON.stringify(url)}));`,
    "const { instance } = await WebAssembly.instantiate(bytes, imports);",
    ...exportNames.map((n) => `export const ${n} = instance.exports[${JSON.stringify(n)}];`),
  ];
  return lines.join("\n");
}
