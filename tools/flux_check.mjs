#!/usr/bin/env node
// Validate Flux queries with the official Flux language server (flux-lsp compiled to wasm).
//
//   node tools/flux_check.mjs < queries.json      JSON list of query texts, or of
//                                                  {"name": ..., "text": ...} objects
//   node tools/flux_check.mjs a.flux b.flux       one query per file, named by its path
//
// Prints one JSON document on stdout:
//   {"lsp_version": "0.8.40", "results": [{"name": ..., "diagnostics": [
//       {"severity": "error", "message": ..., "start": {"line": 0, "character": 4},
//        "end": {...}}]}]}
// Positions are the LSP's: 0-based lines and UTF-16 character offsets. Exit status: 0 when
// no query has an error, 1 when one has, 2 when the checker itself failed.
// The server parses and type-checks against the Flux stdlib; it never runs a query.
import { readFile } from "node:fs/promises";
import { register } from "node:module";

const PACKAGE = "@influxdata/flux-lsp-browser";
const REPLY_TIMEOUT_MS = 20000;
const SEVERITIES = { 1: "error", 2: "warning", 3: "information", 4: "hint" };

// The wasm logs through console.*; stdout carries only the JSON result.
const verbose = process.env.FLUX_CHECK_VERBOSE === "1";
for (const level of ["log", "info", "debug", "warn", "error"]) {
  console[level] = verbose ? (...args) => process.stderr.write(`${args.join(" ")}\n`) : () => {};
}

async function loadLsp() {
  register("./wasm_loader.mjs", import.meta.url);
  const packageDir = new URL(`./node_modules/${PACKAGE}/`, import.meta.url);
  const meta = JSON.parse(await readFile(new URL("package.json", packageDir), "utf8"));
  const glue = await import(new URL(meta.module, packageDir).href);
  return { glue, version: meta.version };
}

async function readQueries(argv) {
  if (argv.length > 0) {
    return Promise.all(
      argv.map(async (path) => ({ name: path, text: await readFile(path, "utf8") })),
    );
  }
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  if (!Array.isArray(parsed)) throw new Error("stdin must hold a JSON list of queries");
  return parsed.map((item, i) => {
    if (typeof item === "string") return { name: `query ${i}`, text: item };
    if (item && typeof item.text === "string") return { name: String(item.name ?? `query ${i}`), text: item.text };
    throw new Error(`query ${i} is neither a string nor {"name", "text"}`);
  });
}

// A thin JSON-RPC client over the wasm server's message API (plain JSON, no framing).
class Client {
  constructor(glue) {
    this.lsp = new glue.Lsp();
    this.nextId = 1;
    this.waiters = new Map(); // uri -> resolve, for the next publishDiagnostics of that uri
    this.lsp.onMessage((raw) => this.onMessage(raw));
    this.stopped = this.lsp.run().then(
      () => { throw new Error("the Flux language server stopped"); },
      (err) => { throw new Error(`the Flux language server failed: ${err}`); },
    );
    this.stopped.catch(() => {});
  }

  onMessage(raw) {
    const msg = JSON.parse(raw);
    if (msg.method !== "textDocument/publishDiagnostics") return;
    const resolve = this.waiters.get(msg.params.uri);
    if (resolve) {
      this.waiters.delete(msg.params.uri);
      resolve(msg.params.diagnostics);
    }
  }

  async request(method, params) {
    const reply = await this.lsp.send(JSON.stringify({ jsonrpc: "2.0", id: this.nextId++, method, params }));
    const msg = typeof reply === "string" ? JSON.parse(reply) : reply;
    if (msg && msg.error) throw new Error(`${method} failed: ${JSON.stringify(msg.error)}`);
    return msg && msg.result;
  }

  async notify(method, params) {
    await this.lsp.send(JSON.stringify({ jsonrpc: "2.0", method, params }));
  }

  // One document open at a time: the server republishes diagnostics for every open
  // document on each change, so several open documents would blur whose errors are whose.
  async check(uri, text) {
    const diagnostics = new Promise((resolve) => this.waiters.set(uri, resolve));
    await this.notify("textDocument/didOpen", {
      textDocument: { uri, languageId: "flux", version: 1, text },
    });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no diagnostics for ${uri} within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
    });
    try {
      return await Promise.race([diagnostics, timeout, this.stopped]);
    } finally {
      clearTimeout(timer);
      this.waiters.delete(uri);
      await this.notify("textDocument/didClose", { textDocument: { uri } });
    }
  }
}

function toDiagnostic(d) {
  return {
    severity: SEVERITIES[d.severity] ?? "error",
    message: d.message,
    start: d.range.start,
    end: d.range.end,
  };
}

async function main() {
  const queries = await readQueries(process.argv.slice(2));
  const { glue, version } = await loadLsp();
  const client = new Client(glue);
  await client.request("initialize", { processId: process.pid, rootUri: null, capabilities: {} });
  await client.notify("initialized", {});
  const results = [];
  for (const [i, query] of queries.entries()) {
    const raw = await client.check(`file:///meshalert/query-${i}.flux`, query.text);
    results.push({ name: query.name, diagnostics: raw.map(toDiagnostic) });
  }
  process.stdout.write(`${JSON.stringify({ lsp_version: version, results })}\n`);
  const failed = results.some((r) => r.diagnostics.some((d) => d.severity === "error"));
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`flux_check: ${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  },
);
