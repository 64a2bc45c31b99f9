"""`arcopy perf codec`: frame encode/decode rates (firmware codec vs construct) and wire efficiency."""
import json
import platform

from host_tools.perf.registry import section, rate


BAUD = 115200
BITS_PER_BYTE = 10        # 8N1: start + 8 data + stop


@section("codec", "frame encode/decode rates (firmware codec vs construct) and wire efficiency")
def perf_codec(quick):
    from firmware import codec
    from firmware import wire
    from firmware.deframer import Deframer
    from protocol import frames as F

    block = bytes((i * 7) & 0xFF for i in range(wire.BLOCK_SIZE))
    t_big = 1 << 40
    full = codec.MAX_BATCH
    cases = [
        ("checkpoint", "checkpoint", dict(n=7, t=t_big)),
        ("write_batch x1", "write_batch", dict(lseq=1, t=t_big, records=[dict(vol=1, block=9, dt=0, data=block)],
                                               marker=None)),
        ("write_batch x%d" % full, "write_batch",
         dict(lseq=1, t=t_big, records=[dict(vol=1, block=i, dt=i, data=block) for i in range(full)],
              marker=None)),
        ("h_write", "h_write", dict(vol=1, block=9, data=block)),
    ]
    compiled, why_not = _compile_frame(F)
    rows = []
    prows = []
    for label, name, fields in cases:
        frame = F.build_frame(name, fields, src=1, dst=2, seq=3)
        code = F.MESSAGES[name][0]
        args = _codec_args(F, name, fields)
        pack = _codec_fn(codec, "pack_" + name)
        unpack = _codec_fn(codec, "unpack_" + name)
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
        eff.append([label, data, frame_len, round(100 * e, 2),
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
                 columns=["frame", "data B", "wire B", "efficiency %", "data KiB/s", "blocks/s"], rows=eff),
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
        if line.startswith("PERF "):
            return [tuple(r) for r in json.loads(line[5:])]
    return []


def _codec_fn(codec, name):
    """A payload packer or unpacker of the firmware codec; the ones only a host calls (e.g. the
    whole-batch WRITE_BATCH helpers) live in protocol/hostcodec.py, off the board's RAM."""
    fn = getattr(codec, name, None)
    if fn is None:
        from protocol import hostcodec
        fn = getattr(hostcodec, name)
    return fn


def _codec_args(F, name, fields):
    return F.positional(name, fields)


def _efficiency_cases(codec, wire, full):
    rec = wire.RECORD_SIZE
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
