// Parses an AsyncAPI document with the reference parser (@asyncapi/parser), resolving its
// relative $refs to the committed JSON Schemas, and fails on any error-level diagnostic;
// then checks every message example against its payload and headers schemas (JSON Schema
// 2020-12, with formats), which the parser does not do.
//
//   node .ci/asyncapi/validate.mjs schemas/asyncapi.yaml
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const path = resolve(process.argv[2] ?? "schemas/asyncapi.yaml");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"), {
  source: pathToFileURL(path).href,
});
const where = (d) => (d.path && d.path.length ? d.path.join(".") : "(document)");
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).length;
for (const d of diagnostics) {
  const level = d.severity === DiagnosticSeverity.Error ? "error" : "note";
  console.log(`${level}: ${where(d)}: ${d.message} [${d.code}]`);
}
if (!document || errors > 0) {
  console.error(`${path}: ${errors} error(s); the document is not valid AsyncAPI`);
  process.exit(1);
}

// The parser has dereferenced every $ref, so each schema stands alone; a payload given with
// its schemaFormat comes wrapped as {schemaFormat, schema}.
const strip = (schema) => {
  const copy = structuredClone(schema.schemaFormat ? schema.schema : schema);
  delete copy.$id;
  delete copy["x-parser-schema-id"];
  return copy;
};
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
let examples = 0;
let wrong = 0;
for (const message of document.components().messages()) {
  for (const example of message.examples()) {
    for (const [part, value, schema] of [
      ["payload", example.payload(), message.payload()],
      ["headers", example.headers(), message.headers()],
    ]) {
      if (value === undefined || !schema) continue;
      examples += 1;
      const check = ajv.compile(strip(schema.json()));
      if (!check(value)) {
        wrong += 1;
        const name = `${message.id()} example ${example.name() ?? "?"} ${part}`;
        for (const e of check.errors) console.log(`error: ${name}: ${e.instancePath || "/"} ${e.message}`);
      }
    }
  }
}
if (wrong > 0) {
  console.error(`${path}: ${wrong} message example part(s) do not match their schemas`);
  process.exit(1);
}
const channels = document.channels().length;
const operations = document.operations().length;
const messages = document.components().messages().length;
console.log(
  `${path}: valid AsyncAPI ${document.version()} (${channels} channels, ${operations} operations, ` +
    `${messages} messages, ${examples} example parts match their schemas)`,
);
