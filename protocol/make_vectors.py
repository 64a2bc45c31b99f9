"""Generate protocol/vectors.json (golden test vectors) from the construct definitions.

    python -m protocol.make_vectors            # rewrite protocol/vectors.json
    python -m protocol.make_vectors --check    # exit 1 if the committed file is stale

Every message type gets a few frames (lowest values, highest values, seeded typical values), each
with its header fields, payload fields and the frame as hex. JSON carries bytes as hex strings and
records as lists of objects. "invalid" holds byte streams a deframer must reject, with the counters
that must move; "status_bodies" holds H_STATUS reply bodies; "host_port" holds the host-port rules
of SPEC.md section 8 as exchanges: bytes sent to a board's host port (its node id and role given)
and the frames it must answer with, in order (an empty list: no answer at all).
"""
import argparse
import json
import os
import random
import sys

from protocol import frames as F

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
SEED = 20260501

HEADERS = {
    "min": dict(flags=0, src=0, dst=0, group=0, seq=0, ack=0),
    "max": dict(flags=0x0F, src=254, dst=F.BROADCAST, group=255, seq=0xFFFF, ack=0xFFFF),
}


def _pattern(n, salt):
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


def _int_value(kind, case, rng):
    lo, hi = F.kind_range(kind)
    if case == "min":
        return lo
    if case == "max":
        return hi
    return rng.randint(lo, hi)


def _record(case, rng, i):
    vals = {name: _int_value(kind, case, rng) for name, kind in F.field_kinds(F.RECORD)
            if not kind.startswith("bytes")}
    vals["data"] = bytes(F.BLOCK_SIZE) if case == "min" else _pattern(F.BLOCK_SIZE, i)
    return vals


def _fields(name, case, rng):
    _, struct, _ = F.MESSAGES[name]
    out = {}
    for fname, kind in F.field_kinds(struct):
        if kind == "count":
            continue
        if kind == "records":
            if case == "min":
                out[fname] = [_record(case, rng, 0)]
            elif case == "max":      # a full batch: as many records as one payload holds with a marker
                per = F.RECORD.sizeof()
                n = (F.MAX_PAYLOAD - 13 - F.BATCH_MARKER.sizeof()) // per
                out[fname] = [_record(case, rng, i) for i in range(n)]
            else:
                out[fname] = [_record(case, rng, i) for i in range(3)]
        elif kind == "marker":       # none / the largest values / a typical one
            out[fname] = None if case == "min" else {
                n: _int_value(k, case, rng) for n, k in (("n", "u32"), ("t", "u64"))}
        elif kind.startswith("bytes") and kind != "bytes":
            out[fname] = bytes(int(kind[5:])) if case == "min" else _pattern(int(kind[5:]), rng.randrange(256))
        elif kind == "bytes":
            out[fname] = b"" if case == "min" else _pattern(F.BLOCK_SIZE if case == "max" else 33, 1)
        else:
            out[fname] = _int_value(kind, case, rng)
    return out


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def _header(case, rng):
    if case in HEADERS:
        return dict(HEADERS[case])
    return dict(flags=rng.choice((0, F.F_RETX, F.F_MORE, F.F_REPLY, F.F_SYNC)), src=rng.randint(1, 254),
                dst=rng.randint(1, 255), group=rng.randint(0, 3), seq=rng.randint(0, 0xFFFF),
                ack=rng.randint(0, 0xFFFF))


def _raw_frame(header14, payload):
    # hand-made frame (for invalid vectors whose header the definitions would refuse to build)
    h = header14 + (F.crc32(header14) & 0xFFFF).to_bytes(2, "little")
    body = h + payload
    return body + F.crc32(body).to_bytes(4, "little")


def _invalid(rng):
    good = F.build_frame("checkpoint", dict(n=7, t=1000), src=1, dst=2, seq=3)
    ack = F.build_frame("ack", dict(lseq=9), src=2, dst=1)
    out = []
    garbage = bytes(b for b in _pattern(40, 3) if b != 0xA5)
    out.append(dict(name="garbage", hex=garbage.hex(), expect=dict(frames=0, bad_magic=len(garbage))))
    bad_h = bytearray(good)
    bad_h[14] ^= 0x01
    out.append(dict(name="bad-hcheck", hex=bytes(bad_h).hex(), expect=dict(frames=0, bad_hcheck=1)))
    v2 = F.HEADER_BODY.build(dict(type=F.T_CHECKPOINT, flags=0, src=1, dst=2, group=0, seq=3, ack=0,
                                  length=12))
    v2 = v2[:2] + b"\x02" + v2[3:]
    out.append(dict(name="bad-version", hex=_raw_frame(v2, bytes(12)).hex(),
                    expect=dict(frames=0, bad_version=1)))
    long_h = F.HEADER_BODY.build(dict(type=F.T_H_REPLY, flags=0, src=1, dst=0, group=0, seq=0, ack=0,
                                      length=F.MAX_PAYLOAD + 1))
    out.append(dict(name="too-long", hex=_raw_frame(long_h, b"").hex(),
                    expect=dict(frames=0, bad_length=1)))
    bad_c = bytearray(good)
    bad_c[F.HDR_SIZE] ^= 0x80
    out.append(dict(name="bad-crc", hex=bytes(bad_c).hex(), expect=dict(frames=0, bad_crc=1)))
    out.append(dict(name="truncated-then-valid", hex=(good[:-5] + ack).hex(),
                    expect=dict(frames=1, bad_crc=1)))
    return out


def _answer(name, fields, seq, src, exact=True):
    # an answer frame: its message, header fields and payload fields (and its bytes when they are
    # fully determined: not for a STATUS reply, whose body is the board's live state)
    a = dict(message=name, flags=F.F_REPLY, src=src, dst=F.HOST_ID, seq=seq, fields=_jsonable(fields))
    if exact:
        a["hex"] = F.build_frame(name, fields, flags=F.F_REPLY, src=src, dst=F.HOST_ID, seq=seq).hex()
    return a


def _host_port():
    S, C = F.STATUS, F.COMMANDS
    P, SEC = 1, 129               # a primary's and a secondary's node id
    prim = dict(node=P, role=F.ROLES["PRIMARY"])
    sec = dict(node=SEC, role=F.ROLES["SECONDARY"])

    def req(name, fields=None, dst=P, seq=1):
        return F.build_frame(name, fields, src=F.HOST_ID, dst=dst, seq=seq)

    def cmd(c, arg=0, arg2=0, dst=P, seq=1):
        return req("h_command", dict(command=C[c], arg=arg, arg2=arg2), dst, seq)

    def reply(status, seq, src=P):
        return _answer("h_reply", dict(status=S[status], body=b""), seq, src)

    def error(code, mtype, detail, seq, src=P):
        return _answer("error", dict(code=S[code], mtype=mtype, detail=detail), seq, src)

    status_ok = _answer("h_reply", dict(status=S["OK"]), 9, P, exact=False)
    garbage = bytes(b for b in _pattern(300, 5) if b != 0xA5)
    hdr = F.HEADER_BODY.build(dict(type=F.T_H_STATUS, flags=0, src=0, dst=P, group=0, seq=4, ack=0,
                                   length=1))
    unknown = F.HEADER_BODY.build(dict(type=0x55, flags=0, src=0, dst=P, group=0, seq=5, ack=0,
                                       length=3))
    out = [
        dict(name="own-id", board=prim, send=req("h_status", dst=P, seq=9).hex(),
             answers=[status_ok], rule="a board answers a request addressed to its own id"),
        dict(name="broadcast", board=prim, send=req("h_status", dst=F.BROADCAST, seq=9).hex(),
             answers=[status_ok], rule="a board answers a request addressed to BROADCAST"),
        dict(name="other-id", board=prim,
             send=req("h_write", dict(vol=0, block=0, data=bytes(F.BLOCK_SIZE)), dst=SEC, seq=2).hex(),
             answers=[], rule="a request addressed to another board is neither done nor answered"),
        dict(name="host-id", board=prim, send=req("h_status", dst=F.HOST_ID, seq=2).hex(),
             answers=[], rule="dst 0 is the host, not a board: not answered"),
        dict(name="tag-0", board=prim, send=req("h_status", dst=P, seq=0).hex(),
             answers=[error("BAD_FRAME", F.T_H_STATUS, 0, 0)],
             rule="tag 0 is reserved for unsolicited errors: the request is refused unexecuted"),
        dict(name="status-with-payload", board=prim, send=_raw_frame(hdr, b"\x00").hex(),
             answers=[error("BAD_LENGTH", F.T_H_STATUS, 1, 4)],
             rule="H_STATUS must be empty; detail = the length received"),
        dict(name="unknown-type", board=prim, send=_raw_frame(unknown, b"xyz").hex(),
             answers=[error("UNKNOWN_TYPE", 0x55, 0, 5)], rule="unknown type: ERROR UNKNOWN_TYPE"),
        dict(name="start-copy-bad-argument", board=prim, send=cmd("START_COPY", 3, seq=6).hex(),
             answers=[reply("BAD_COMMAND", 6)], rule="START_COPY takes arg 0, 1 or 2"),
        dict(name="unknown-command", board=prim, send=req("h_command", dict(command=200, arg=0, arg2=0), seq=7).hex(),
             answers=[reply("BAD_COMMAND", 7)], rule="unknown command: BAD_COMMAND"),
        dict(name="reserved-command", board=prim, send=cmd("REBOOT", seq=8).hex(),
             answers=[reply("BAD_COMMAND", 8)], rule="REBOOT is reserved: BAD_COMMAND"),
        dict(name="set-mode-clockless", board=prim, send=cmd("SET_MODE", 1, seq=14).hex(),
             answers=[reply("BAD_COMMAND", 14)],
             rule="SET_MODE takes 0 (clock) or 2 (sync): clockless is never switched at run time"),
        dict(name="set-policy-bad-argument-to-primary", board=prim, send=cmd("SET_POLICY", 2, seq=15).hex(),
             answers=[reply("BAD_COMMAND", 15)],
             rule="the argument is checked before the role: BAD_COMMAND, not WRONG_ROLE"),
        dict(name="failover-to-primary", board=prim, send=cmd("FAILOVER", seq=10).hex(),
             answers=[reply("WRONG_ROLE", 10)], rule="a secondary's command sent to a primary"),
        dict(name="start-copy-to-secondary", board=sec, send=cmd("START_COPY", dst=SEC, seq=11).hex(),
             answers=[reply("WRONG_ROLE", 11, SEC)], rule="a primary's command sent to a secondary"),
        dict(name="failback-bad-role", board=sec, send=cmd("FAILBACK", 7, dst=SEC, seq=12).hex(),
             answers=[reply("BAD_COMMAND", 12, SEC)], rule="FAILBACK takes role 1 or 2"),
        dict(name="failback-wrong-state", board=sec, send=cmd("FAILBACK", 1, dst=SEC, seq=13).hex(),
             answers=[reply("BAD_STATE", 13, SEC)],
             rule="a command of this role in the wrong pair state: BAD_STATE (not failed over)"),
        dict(name="garbage-run", board=prim, send=(garbage + req("h_status", seq=9)).hex(),
             answers=[error("BAD_FRAME", 0, len(garbage), 0), status_ok],
             rule="one BAD_FRAME per run of bad input (detail: bytes discarded), before the next answer"),
    ]
    return out


def generate():
    rng = random.Random(SEED)
    messages = {}
    frames = []
    for name, (code, struct, links) in F.MESSAGES.items():
        messages[name] = dict(type=code, links=list(links), fields=F.field_kinds(struct))
        for case in ("min", "max", "typical"):
            header = _header(case, rng)
            fields = _fields(name, case, rng)
            frame = F.build_frame(name, fields, **header)
            assert F.parse_frame(frame)["payload"] == {**fields, **({"count": len(fields["records"])}
                                                                    if "records" in fields else {})}
            frames.append(dict(name="%s/%s" % (name, case), message=name, header=header,
                               fields=_jsonable(fields), hex=frame.hex()))
    bodies = []
    for case in ("min", "max", "typical"):
        fields = {n: _int_value(k, case, rng) for n, k in F.field_kinds(F.STATUS_BODY)}
        bodies.append(dict(name="status_body/%s" % case, fields=fields,
                           hex=F.build_status_body(fields).hex()))
    status_reply = F.build_frame("h_reply", dict(status=0, body=bytes.fromhex(bodies[2]["hex"])),
                                 flags=F.F_REPLY, src=1, dst=0, seq=42)
    frames.append(dict(name="h_reply/status", message="h_reply", header=dict(flags=F.F_REPLY, src=1, dst=0,
                       group=0, seq=42, ack=0), fields=dict(status=0, body=bodies[2]["hex"]),
                       hex=status_reply.hex()))
    return dict(
        about="Golden vectors generated from protocol/frames.py by protocol/make_vectors.py; do not edit.",
        record_fields=F.field_kinds(F.RECORD),
        status_fields=F.field_kinds(F.STATUS_BODY),
        messages=messages,
        frames=frames,
        status_bodies=bodies,
        invalid=_invalid(rng),
        host_port=_host_port(),
    )


def render():
    # one line per vector, so a diff shows which vector changed
    out = []
    for key, value in generate().items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            inner = ",\n".join("  " + json.dumps(v) for v in value)
            out.append(" %s: [\n%s\n ]" % (json.dumps(key), inner))
        elif isinstance(value, dict):
            inner = ",\n".join("  %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in value.items())
            out.append(" %s: {\n%s\n }" % (json.dumps(key), inner))
        else:
            out.append(" %s: %s" % (json.dumps(key), json.dumps(value)))
    return "{\n" + ",\n".join(out) + "\n}\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if %s is not up to date" % PATH)
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        with open(PATH) as f:
            if f.read() != text:
                print("%s is stale: run python -m protocol.make_vectors" % PATH, file=sys.stderr)
                return 1
        return 0
    with open(PATH, "w") as f:
        f.write(text)
    print("wrote %s (%d frames)" % (PATH, len(json.loads(text)["frames"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
