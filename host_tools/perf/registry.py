"""`arcopy bench [SECTION ...] [--quick] [--json FILE]`: benchmarks, by named section.

A section is a function ``fn(quick) -> dict`` registered with ``@section(name, help)``; it returns
``{"tables": [{"title", "columns", "rows"}], "notes": [str]}``. Sections defined in other modules
are found by listing those modules in ``SECTION_MODULES`` (imported on demand). With no SECTION
every section runs.
"""
import json
import platform
import sys
import time

# modules that register more sections when imported (e.g. "host_tools.perf.sim")
SECTION_MODULES = ("host_tools.perf.sim", "host_tools.perf.figures", "host_tools.perf.ops")

SECTIONS = {}     # name -> (function, help)


def section(name, help):
    def register(fn):
        if name in SECTIONS:
            raise ValueError("bench section %r registered twice" % name)
        SECTIONS[name] = (fn, help)
        return fn
    return register


def _load_sections():
    import importlib
    for mod in SECTION_MODULES:
        importlib.import_module(mod)


def add_arguments(parser):
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help="sections to run (default: all; --list shows them)")
    parser.add_argument("--quick", action="store_true", help="shorter measurements (less precise)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    from host_tools.cmds import rig     # `arcopy bench up|down|ls` = `arcopy rig up|down|ls`
    rig.add_bench_aliases(parser)


def run(args):
    from host_tools.cmds import rig
    if rig.wants(args):
        return rig.run_from_bench(args)
    _load_sections()
    if args.list:
        for name, (_, help) in sorted(SECTIONS.items()):
            print("%-12s %s" % (name, help))
        return 0
    names = args.sections or sorted(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print("arcopy bench: unknown section(s): %s (known: %s)"
              % (", ".join(unknown), ", ".join(sorted(SECTIONS))), file=sys.stderr)
        return 2
    results = {}
    for name in names:
        fn, help = SECTIONS[name]
        print("== %s: %s" % (name, help))
        res = fn(args.quick)
        results[name] = res
        for table in res.get("tables", ()):
            print_table(table)
        for note in res.get("notes", ()):
            print("  note: " + note)
        print()
    if args.json:
        doc = dict(meta=dict(python=platform.python_version(), implementation=platform.python_implementation(),
                             machine=platform.machine(), quick=bool(args.quick),
                             time=time.strftime("%Y-%m-%dT%H:%M:%S")),
                   sections=results)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print("wrote " + args.json)
    return 0


def print_table(table):
    cols = table["columns"]
    rows = [[_fmt(v) for v in row] for row in table["rows"]]
    widths = [max(len(str(c)), *(len(r[i]) for r in rows)) if rows else len(str(c)) for i, c in enumerate(cols)]
    print("  " + table["title"])
    print("  " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)))


def _fmt(v):
    if isinstance(v, float):
        return "%.1f" % v if abs(v) >= 10 else "%.3f" % v
    return str(v)


def _numeric(s):
    try:
        float(s.rstrip("%"))
        return True
    except ValueError:
        return False


def rate(fn, quick, min_time=None):
    """Calls per second of fn() (best of a few timed batches)."""
    min_time = min_time or (0.05 if quick else 0.4)
    n = 1
    while True:                     # calibrate the batch size
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / 5:
            break
        n *= 2
    best = dt / n
    for _ in range(2 if quick else 4):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return 1.0 / best


# ---- section: codec --------------------------------------------------------------------------------
BAUD = 115200
BITS_PER_BYTE = 10        # 8N1: start + 8 data + stop


@section("codec", "frame encode/decode rates (firmware codec vs construct) and wire efficiency")
def bench_codec(quick):
    from firmware import codec
    from firmware import wire
    from firmware.deframer import Deframer
    from protocol import frames as F

    block = bytes((i * 7) & 0xFF for i in range(wire.BLOCK_SIZE))
    t_big = 1 << 40
    full = (wire.MAX_PAYLOAD - codec.SZ_BATCH_HEAD) // (wire.RECORD_HDR + wire.BLOCK_SIZE)
    cases = [
        ("checkpoint", "checkpoint", dict(n=7, t=t_big)),
        ("write_batch x1", "write_batch", dict(records=[dict(vol=1, block=9, t=t_big, lseq=1, data=block)])),
        ("write_batch x%d" % full, "write_batch",
         dict(records=[dict(vol=1, block=i, t=t_big + i, lseq=i, data=block) for i in range(full)])),
        ("h_write", "h_write", dict(vol=1, block=9, data=block)),
    ]
    compiled, why_not = _compile_frame(F)
    rows = []
    prows = []
    for label, name, fields in cases:
        frame = F.build_frame(name, fields, src=1, dst=2, seq=3)
        code = F.MESSAGES[name][0]
        args = _codec_args(F, name, fields)
        pack = getattr(codec, "pack_" + name)
        unpack = getattr(codec, "unpack_" + name)
        buf = bytearray(wire.MAX_FRAME)
        d = Deframer()

        def fw_encode():
            end = pack(buf, wire.HDR_SIZE, *args)
            codec.build_frame(buf, code, 0, 1, 2, 0, 3, 0, end - wire.HDR_SIZE)

        def fw_decode():
            d.feed(frame)
            d.next()
            unpack(d.frame, d.poff, d.poff + d.plen)

        obj = dict(body=dict(value=dict(header=dict(type=code, flags=0, src=1, dst=2, group=0, seq=3, ack=0),
                                        payload=fields)))
        row_sets = [("firmware codec", fw_encode, fw_decode),
                    ("construct", lambda: F.FRAME.build(obj), lambda: F.FRAME.parse(frame))]
        if compiled is not None:
            row_sets.append(("construct compiled", lambda: compiled.build(obj), lambda: compiled.parse(frame)))
        for impl, enc, dec in row_sets:
            enc()
            dec()
            rows.append([label, len(frame), impl, rate(enc, quick), rate(dec, quick)])
        pstruct = F.MESSAGES[name][1]
        pbytes = pstruct.build(fields)
        pcompiled = pstruct.compile()
        prows.append([label, len(pbytes), rate(lambda: pstruct.build(fields), quick),
                      rate(lambda: pstruct.parse(pbytes), quick), rate(lambda: pcompiled.build(fields), quick),
                      rate(lambda: pcompiled.parse(pbytes), quick)])
    for label, size, enc_rate, dec_rate in _micropython_rates():
        rows.append([label, size, "firmware codec, MicroPython (wasm)", enc_rate, dec_rate])

    eff = []
    for label, nblocks, frame_len in _efficiency_cases(codec, wire, full):
        data = nblocks * wire.BLOCK_SIZE
        e = data / frame_len
        eff.append([label, data, frame_len, "%.2f%%" % (100 * e),
                    BAUD * e / BITS_PER_BYTE / 1024, BAUD / BITS_PER_BYTE / frame_len * nblocks])
    notes = ["rates are single-core figures on this PC: CPython %s, and the MicroPython WebAssembly port "
             "under Node for the (wasm) rows; an RP2040 board runs the firmware codec far slower"
             % platform.python_version(),
             "firmware encode = pack payload + build_frame into a preallocated buffer; "
             "decode = Deframer.feed + next + unpack",
             "construct encode/decode = FRAME.build/FRAME.parse of the whole frame (header check and CRC "
             "included)"]
    if why_not:
        notes.append("construct compiled: " + why_not)
    if not any(r[2].endswith("(wasm)") for r in rows):
        notes.append("MicroPython rows skipped: node or node_modules missing (run `make node`)")
    return dict(
        tables=[
            dict(title="frames per second (higher is better)",
                 columns=["message", "bytes", "implementation", "encode/s", "decode/s"], rows=rows),
            dict(title="payload only (no header, no CRC): construct vs construct compiled, per second",
                 columns=["message", "bytes", "build", "parse", "compiled build", "compiled parse"],
                 rows=prows),
            dict(title="wire efficiency (payload data bytes / wire bytes), line rate at %d baud 8N1" % BAUD,
                 columns=["frame", "data B", "wire B", "efficiency", "data KiB/s", "blocks/s"], rows=eff),
        ],
        notes=notes,
    )


def _micropython_rates():
    """[(label, frame bytes, encode/s, decode/s)] of the firmware codec under MicroPython (WebAssembly
    port under Node), or [] when node or the package is missing."""
    import os
    import shutil
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(root, "node_modules", "@micropython")):
        return []
    script = os.path.join(root, "host_tools", "perf", "mpy_codec.py")
    try:
        proc = subprocess.run([node, os.path.join(root, "tests", "mpy", "runner.mjs"), script], cwd=root,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return []
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            return [tuple(r) for r in json.loads(line[6:])]
    return []


def _codec_args(F, name, fields):
    return F.positional(name, fields)


def _efficiency_cases(codec, wire, full):
    rec = wire.RECORD_HDR + wire.BLOCK_SIZE
    return [
        ("host write (H_WRITE, one block)", 1, wire.OVERHEAD + codec.SZ_H_WRITE),
        ("host read reply (H_REPLY, one block)", 1, wire.OVERHEAD + codec.SZ_H_REPLY_HEAD + wire.BLOCK_SIZE),
        ("peer WRITE_BATCH, one record", 1, wire.OVERHEAD + codec.SZ_BATCH_HEAD + rec),
        ("peer WRITE_BATCH, full (%d records)" % full, full, wire.OVERHEAD + codec.SZ_BATCH_HEAD + full * rec),
    ]


def _compile_frame(F):
    """(compiled FRAME or None, note). construct compiles what it can and links the rest
    (RawCopy, Checksum, Rebuild with a Python function) back to the interpreted classes."""
    try:
        c = F.FRAME.compile()
    except Exception as e:              # construct raises assorted types here
        return None, "FRAME.compile() failed: %s: %s" % (type(e).__name__, e)
    linked = c.source.count("linkedparsers[") + c.source.count("linkedbuilders[")
    note = ("FRAME.compile() works, but %d parse/build steps stay interpreted (linked back: RawCopy, "
            "Checksum and Rebuild with Python functions are not compilable), so the gain is small"
            % linked) if linked else ""
    return c, note
