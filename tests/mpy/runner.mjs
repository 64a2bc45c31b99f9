// Run firmware test scripts under the real MicroPython interpreter (WebAssembly port).
//
//   node tests/mpy/runner.mjs [--heapsize BYTES] SCRIPT.py [SCRIPT.py ...]
//
// The repository's firmware/*.py, boards/rp2/*.py, tests/mpy/support/*.py (stand-ins such as
// `machine`), protocol/hostcodec.py, protocol/vectors.json and the given scripts are copied into MicroPython's
// in-memory filesystem with the repository layout under /repo; the working directory is
// /repo and /repo is first on sys.path, so firmware modules import each other as the
// `firmware` package exactly as on a board (a script adds "boards/rp2" or
// "tests/mpy/support" to sys.path itself when it needs them). Each script runs as __main__.
//
// Chunked scripts: the heap of this port is only collected between runPython() calls, so
// a script that wants to measure the heap in use can define mp_continue(). The runner sets
// __mp_chunks__ = True before the script runs; after the script, it calls mp_continue() in
// fresh runPython() calls, with gc.collect() first, until it returns something other than
// True. (Run directly under CPython, such a script drives mp_continue() itself.)
// Exit status: 0 when every script ran, 1 on a Python exception, 2 on a set-up problem.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const PKG = "@micropython/micropython-webassembly-pyscript";

function usage(msg) {
  if (msg) console.error("runner: " + msg);
  console.error("usage: node tests/mpy/runner.mjs [--heapsize BYTES] SCRIPT.py [SCRIPT.py ...]");
  process.exit(2);
}

const args = process.argv.slice(2);
let heapsize = 4 * 1024 * 1024;
const scripts = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--heapsize") {
    heapsize = parseInt(args[++i], 10);
    if (!(heapsize > 0)) usage("--heapsize needs a positive number of bytes");
  } else if (args[i].startsWith("-")) {
    usage("unknown option " + args[i]);
  } else {
    scripts.push(path.resolve(args[i]));
  }
}
if (scripts.length === 0) usage("no script given");

let loadMicroPython;
try {
  ({ loadMicroPython } = await import(PKG));
} catch (e) {
  console.error(`runner: cannot load ${PKG} (${e.code || e.message}); run \`make node\` in the repository root`);
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize,
  linebuffer: true,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyIn(hostPath, mpPath) {
  mkdirs(path.posix.dirname(mpPath));
  mp.FS.writeFile(mpPath, fs.readFileSync(hostPath));
}

for (const dir of ["firmware", "boards/rp2", "tests/mpy/support"]) {
  const full = path.join(ROOT, ...dir.split("/"));
  if (!fs.existsSync(full)) continue;
  for (const name of fs.readdirSync(full)) {
    if (name.endsWith(".py")) copyIn(path.join(full, name), "/repo/" + dir + "/" + name);
  }
}
// the host side's codec helpers (protocol/hostcodec.py imports only struct, binascii and firmware)
for (const name of ["__init__.py", "hostcodec.py"]) {
  const p = path.join(ROOT, "protocol", name);
  if (fs.existsSync(p)) copyIn(p, "/repo/protocol/" + name);
}
const vectors = path.join(ROOT, "protocol", "vectors.json");
if (fs.existsSync(vectors)) copyIn(vectors, "/repo/protocol/vectors.json");

let failed = 0;
for (const script of scripts) {
  if (!fs.existsSync(script)) usage("no such script: " + script);
  const rel = path.relative(ROOT, script).split(path.sep).join("/");
  const mpPath = rel.startsWith("..") ? "/repo/scripts/" + path.basename(script) : "/repo/" + rel;
  copyIn(script, mpPath);
  const setup = [
    "import sys, os",
    "os.chdir('/repo')",
    "for _p in ('/repo', '" + path.posix.dirname(mpPath) + "'):",
    "    if _p not in sys.path: sys.path.insert(0, _p)",
    "del _p",
    "__mp_chunks__ = True",
    "globals().pop('mp_continue', None)",
  ].join("\n");
  try {
    mp.runPython(setup);
    mp.runPython(fs.readFileSync(script, "utf8"));
    mp.runPython("__mp_more = 'mp_continue' in globals()");
    while (mp.globals.get("__mp_more") === true) {
      mp.runPython("import gc\ngc.collect()\n__mp_more = mp_continue() is True");
    }
  } catch (e) {
    if (e && e.name === "PythonError") {
      process.stderr.write(`runner: ${rel} raised ${e.type}\n${e.message}\n`);
      failed = 1;
      break;
    }
    throw e;
  }
}
process.exit(failed);
