// Parses and validates an AsyncAPI document with the maintained parser (npm @asyncapi/parser: the official JSON
// Schema of the spec version plus its semantic rules, e.g. references that resolve), installed by
// scripts/ensure-node-tools.sh. Usage: node validate-asyncapi.mjs NODE_MODULES FILE
// -> one JSON line per diagnostic {severity (0 error, 1 warning, 2 info, 3 hint), code, message, path};
// the exit code is 1 when the parser produced no document or any error.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [nodeModules, file] = process.argv.slice(2);
const require = createRequire(join(nodeModules, "noop.js"));
const { Parser } = require("@asyncapi/parser");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path.join(".") }));
}
process.exit(document && !diagnostics.some((d) => d.severity === 0) ? 0 : 1);
