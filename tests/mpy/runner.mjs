// Run firmware test scripts under the real MicroPython interpreter (WebAssembly port).
//
//   node tests/mpy/runner.mjs [--heapsize BYTES] SCRIPT.py [SCRIPT.py ...]
//
// The repository's firmware/*.py, protocol/vectors.json and the given scripts are copied
// into MicroPython's in-memory filesystem with the repository layout under /repo; the
// working directory is /repo and /repo/firmware is first on sys.path, so firmware modules
// import each other by bare name exactly as on a board. Each script runs as __main__.
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

const fwDir = path.join(ROOT, "firmware");
for (const name of fs.readdirSync(fwDir)) {
  if (name.endsWith(".py")) copyIn(path.join(fwDir, name), "/repo/firmware/" + name);
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
    "for _p in ('/repo/firmware', '" + path.posix.dirname(mpPath) + "'):",
    "    if _p not in sys.path: sys.path.insert(0, _p)",
    "del _p",
  ].join("\n");
  try {
    mp.runPython(setup);
    mp.runPython(fs.readFileSync(script, "utf8"));
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
