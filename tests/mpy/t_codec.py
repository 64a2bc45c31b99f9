# Golden vectors (protocol/vectors.json, generated from the construct definitions) through the
# firmware codec and deframer (and the host-side protocol/hostcodec.py), unmodified: decode each frame, compare every field, re-encode from the
# fields and compare the bytes. Runs under MicroPython (tests/mpy/runner.mjs) and CPython alike;
# the working directory is the repository root and firmware/ is on sys.path.
import json

from firmware import codec
from firmware import wire
from firmware.deframer import Deframer
from protocol import hostcodec


def fn(name):
    # a codec function: the board's (firmware/codec.py) or the host-only one (protocol/hostcodec.py)
    f = getattr(codec, name, None)
    return f if f is not None else getattr(hostcodec, name)


def unhex(s):
    return bytes.fromhex(s)


def plain(v):
    # memoryviews -> bytes, lists -> tuples, recursively (for comparisons)
    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, (tuple, list)):
        return tuple(plain(x) for x in v)
    return v


def pack_args(meta, fields, record_meta):
    # positional arguments of pack_<name>, in wire order, from the JSON fields
    out = []
    for name, kind in meta:
        if kind == "count":
            continue
        v = fields[name]
        if kind == "records":
            v = [tuple(pack_args(record_meta, r, None)) for r in v]
        elif kind == "marker":
            v = None if v is None else (v["n"], v["t"])
        elif kind.startswith("bytes"):
            v = unhex(v)
        out.append(v)
    return out


def expected_fields(name, args):
    # what unpack_<name> returns for these pack arguments
    return plain(args)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Lcg:
    # deterministic chunk sizes, identical under MicroPython and CPython
    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def main():
    with open("protocol/vectors.json") as f:
        vec = json.load(f)
    messages = vec["messages"]
    record_meta = vec["record_fields"]
    buf = bytearray(wire.MAX_FRAME)
    nframes = 0
    for v in vec["frames"]:
        name = v["message"]
        meta = messages[name]
        h = v["header"]
        frame = unhex(v["hex"])
        where = v["name"]
        check(getattr(wire, "T_" + name.upper()) == meta["type"], where + ": type code differs from wire.py")
        # deframer
        d = Deframer()
        check(d.feed(frame) == len(frame), where + ": feed refused")
        check(d.next(), where + ": deframer did not accept the frame")
        got = (d.mtype, d.flags, d.src, d.dst, d.group, d.seq, d.ack, d.plen)
        want = (meta["type"], h["flags"], h["src"], h["dst"], h["group"], h["seq"], h["ack"],
                len(frame) - wire.OVERHEAD)
        check(got == want, where + ": header %r != %r" % (got, want))
        check(bytes(d.frame) == frame, where + ": frame bytes differ")
        check(not d.next() and d.pending == 0 and d.rejected == 0 and d.bad_magic == 0,
              where + ": leftovers after the frame")
        # payload fields
        args = pack_args(meta["fields"], v["fields"], record_meta)
        unpack = fn("unpack_" + name)
        want_fields = expected_fields(name, args)
        check(plain(unpack(d.payload)) == want_fields, where + ": fields differ: %r" % (plain(unpack(d.payload)),))
        check(plain(unpack(d.frame, d.poff, d.poff + d.plen)) == want_fields, where + ": fields differ (offset form)")
        dec = hostcodec.decode(frame)
        check(dec[:7] == want[:7] and bytes(dec[7]) == bytes(d.payload), where + ": decode() differs")
        # re-encode from the fields
        end = fn("pack_" + name)(buf, wire.HDR_SIZE, *args)
        n = codec.build_frame(buf, meta["type"], h["flags"], h["src"], h["dst"], h["group"], h["seq"],
                              h["ack"], end - wire.HDR_SIZE)
        check(bytes(buf[:n]) == frame, where + ": re-encoded bytes differ")
        check(hostcodec.encode(meta["type"], h["src"], h["dst"], bytes(d.payload), h["seq"], h["ack"], h["flags"],
                           h["group"]) == frame, where + ": encode() differs")
        nframes += 1

    status_meta = vec["status_fields"]
    for b in vec["status_bodies"]:
        body = unhex(b["hex"])
        fields = tuple(b["fields"][name] for name, _ in status_meta)
        check(tuple(codec.STATUS_FIELDS) == tuple(name for name, _ in status_meta), "status field names differ")
        check(hostcodec.unpack_status_body(body) == fields, b["name"] + ": fields differ")
        end = codec.pack_status_body(buf, 3, *fields)
        check(bytes(buf[3:end]) == body, b["name"] + ": re-encoded bytes differ")

    for bad in vec["invalid"]:
        d = Deframer()
        d.feed(unhex(bad["hex"]))
        while d.next():
            pass
        for counter, value in bad["expect"].items():
            check(getattr(d, counter) == value,
                  "%s: %s = %d, expected %d" % (bad["name"], counter, getattr(d, counter), value))

    # bad input gives ValueError on this runtime too (never IndexError or a struct error)
    nerr = 0
    for name in messages:
        for bad in (b"", b"\x01", bytes(700)):
            try:
                fn("unpack_" + name)(bad)
            except ValueError:
                nerr += 1
    check(nerr >= 2 * len(messages), "unpack: too few ValueErrors (%d)" % nerr)
    for call in (lambda: codec.pack_checkpoint(buf, 0, -1, 0), lambda: codec.pack_checkpoint(buf, 0, 0, 1 << 64),
                 lambda: codec.pack_ack(buf, len(buf) - 3, 1), lambda: codec.pack_resign(buf, 0, 256, 0),
                 lambda: codec.build_frame(buf, 3, 0, 1, 2, 0, 1 << 16, 0, 0),
                 lambda: codec.unpack_record(bytes(520), 0), lambda: hostcodec.decode(b"\xA5\x5C" + bytes(30))):
        try:
            call()
            check(False, "no ValueError")
        except ValueError:
            nerr += 1

    # every golden frame in one stream, with garbage between, fed in uneven chunks
    rng = Lcg(12345)
    parts = []
    want = []
    for i, v in enumerate(vec["frames"]):
        frame = unhex(v["hex"])
        parts.append(bytes((rng.below(256) | 1) & 0xA3 for _ in range(rng.below(9))))   # never 0xA5
        parts.append(frame)
        want.append(frame)
    stream = memoryview(b"".join(parts))
    d = Deframer()
    got = []
    pos = 0
    while pos < len(stream):
        k = 1 + rng.below(400)
        d.feed(stream[pos:pos + k])
        pos += k
        while d.next():
            got.append(bytes(d.frame))
    check(got == want, "stream: %d of %d frames recovered in order" % (len(got), len(want)))
    check(d.overflow == 0 and d.rejected == 0, "stream: overflow or rejections")
    print("golden frames: %d, status bodies: %d, invalid streams: %d, stream frames: %d, errors raised: %d"
          % (nframes, len(vec["status_bodies"]), len(vec["invalid"]), len(got), nerr))
    print("ALL OK")


main()
