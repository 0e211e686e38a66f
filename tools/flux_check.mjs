#!/usr/bin/env node
// Validate Flux queries with the official Flux language server (flux-lsp compiled to wasm).
//
//   node tools/flux_check.mjs < queries.json      JSON list of query texts, or of
//                                                  {"name": ..., "text": ...} objects
//   node tools/flux_check.mjs a.flux b.flux       one query per file, named by its path
//   node tools/flux_check.mjs --serve             many batches, one JSON request per line
//   node tools/flux_check.mjs --strings ...       parse only (no type check) and report,
//                                                  per query, the values of its string
//                                                  literals, how many string interpolations
//                                                  it has and the parse errors
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
import { createInterface } from "node:readline";

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
  return normalize(JSON.parse(Buffer.concat(chunks).toString("utf8")));
}

function normalize(parsed) {
  if (!Array.isArray(parsed)) throw new Error("queries must be a JSON list");
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
    this.documents = 0;
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

// What the parser made of each string in a query: tests compare these values with the
// text that was escaped into it, which catches escaping that yields valid but wrong Flux.
function stringReport(glue, text) {
  const strings = [];
  const errors = [];
  let interpolations = 0;
  const visit = (node) => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (node === null || typeof node !== "object") return;
    if (node.type === "StringLiteral") strings.push(node.value);
    if (node.type === "StringExpression") interpolations += 1;
    if (Array.isArray(node.errors)) errors.push(...node.errors.map((e) => e.msg ?? String(e)));
    for (const [key, child] of Object.entries(node)) {
      if (key !== "location") visit(child);
    }
  };
  visit(glue.parse(text));
  return { strings, interpolations, parse_errors: errors };
}

async function checkAll(client, queries) {
  const results = [];
  for (const query of queries) {
    const raw = await client.check(`file:///meshalert/query-${client.documents++}.flux`, query.text);
    results.push({ name: query.name, diagnostics: raw.map(toDiagnostic) });
  }
  return results;
}

const hasError = (r) => r.diagnostics.some((d) => d.severity === "error");

// --serve: one long-lived process answers many batches (a test session sends all its
// queries through one process). Each stdin line is {"mode": "check"|"strings",
// "queries": [...]} and gets one stdout line {"lsp_version", "results"} or {"error"}.
async function serve(client, glue, version) {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let reply;
    try {
      const request = JSON.parse(line);
      const queries = normalize(request.queries);
      const results =
        request.mode === "strings"
          ? queries.map((q) => ({ name: q.name, ...stringReport(glue, q.text) }))
          : await checkAll(client, queries);
      reply = { lsp_version: version, results };
    } catch (err) {
      reply = { error: String(err && err.message ? err.message : err) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
  return 0;
}

async function main() {
  const args = process.argv.slice(2);
  const mode = args[0] === "--strings" || args[0] === "--serve" ? args.shift() : "--check";
  const { glue, version } = await loadLsp();
  const client = new Client(glue);
  await client.request("initialize", { processId: process.pid, rootUri: null, capabilities: {} });
  await client.notify("initialized", {});
  if (mode === "--serve") return serve(client, glue, version);
  const queries = await readQueries(args);
  if (mode === "--strings") {
    const results = queries.map((q) => ({ name: q.name, ...stringReport(glue, q.text) }));
    process.stdout.write(`${JSON.stringify({ lsp_version: version, results })}\n`);
    return results.some((r) => r.parse_errors.length > 0) ? 1 : 0;
  }
  const results = await checkAll(client, queries);
  process.stdout.write(`${JSON.stringify({ lsp_version: version, results })}\n`);
  return results.some(hasError) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`flux_check: ${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  },
);
