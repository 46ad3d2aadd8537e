// The grammar fixtures are the examples themselves plus assertion lines: this check fails when an example
// has no fixture or its fixture's code drifted from the example, so the grammar is always tested on
// exactly the policies the repository ships.
"use strict";
const fs = require("fs");
const path = require("path");

const examples = path.join(__dirname, "..", "..", "..", "examples");
const assertion = /^#\s*(\^|<-)/;
let failures = 0;
const names = fs.readdirSync(examples).filter((f) => f.endsWith(".canary"));
for (const name of names) {
  const fixture = path.join(__dirname, name);
  if (!fs.existsSync(fixture)) {
    console.error(`missing grammar fixture editors/vscode/test/${name} for examples/${name}`);
    failures++;
    continue;
  }
  const lines = fs.readFileSync(fixture, "utf8").split("\n");
  const code = lines.slice(1).filter((l) => !assertion.test(l)).join("\n");
  if (!lines[0].startsWith("# SYNTAX TEST \"source.canary\"") || code !== fs.readFileSync(path.join(examples, name), "utf8")) {
    console.error(`editors/vscode/test/${name}: its code lines differ from examples/${name}`);
    failures++;
  }
}
console.log(`grammar fixtures: ${names.length - failures} of ${names.length} examples in sync`);
process.exit(failures ? 1 : 0);
