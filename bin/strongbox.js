#!/usr/bin/env -S node --max-semi-space-size=1
// The launcher. Every Node.js can parse this file, whether it reads it as a script (very old
// ones) or as a module: ES5 statements only, no import or export (biome.json leaves it alone, as
// its fixes would bring arrow functions). So an old Node says which version strongbox needs
// instead of dying with a SyntaxError on the program's first `import`. Then bin/main.js, the
// program, is loaded (through Function: a literal `import(` is a SyntaxError to old parsers).
// --max-semi-space-size=1: the backup stream allocates many short-lived buffers; a small young
// generation frees them sooner, before they are promoted and only a full collection can free
// them. Measured on a 1.1 GB backup stream: the default peaks at ~200 MB; 2 MB at 125 MB with 12
// full collections and ~1.35 s user CPU; 1 MB at 107 MB with none and ~1.0 s.
var major = Number(String(process.versions.node).split(".")[0]);
var fs, path, url, self, main;
if (!(major >= 24)) {
  process.stderr.write(
    "strongbox: needs Node.js 24 or newer (this is " +
      process.version +
      "); the Debian package brings its own (docs/install.md)\n",
  );
  process.exit(1);
} else {
  fs = process.getBuiltinModule("node:fs");
  path = process.getBuiltinModule("node:path");
  url = process.getBuiltinModule("node:url");
  // npm links bin/strongbox.js from elsewhere; the program sits beside the real file.
  self = fs.realpathSync(process.argv[1]);
  main = url.pathToFileURL(path.join(path.dirname(self), "main.js")).href;
  new Function("u", "return import(u)")(main).catch(function (e) {
    process.stderr.write("strongbox: cannot start: " + ((e && e.stack) || e) + "\n");
    process.exitCode = 70;
  });
}
