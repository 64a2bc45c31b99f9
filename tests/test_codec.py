"""Firmware codec + deframer against the construct definitions (the host source of truth).

Round trips in both directions must be byte-identical for every message type; the golden vectors
must be current and decode on CPython; a deframer fed garbage interleaved with valid frames, split at
random chunk boundaries, must recover exactly the valid frames in order and count the rest."""
import json
import os
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import codec
from firmware import wire
from firmware.deframer import Deframer
from protocol import frames as F
from protocol import hostcodec
from protocol import make_vectors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = list(F.MESSAGES)


def fn(name):
    """A codec function by name: the board's (firmware/codec.py) or the host-only one
    (protocol/hostcodec.py), whichever module holds it."""
    return getattr(codec, name, None) or getattr(hostcodec, name)


# ---- strategies built from the construct definitions ----------------------------------------
def _int(kind):
    lo, hi = F.kind_range(kind)
    return st.integers(lo, hi)


RECORD = st.fixed_dictionaries({
    **{n: _int(k) for n, k in F.field_kinds(F.RECORD) if not k.startswith("bytes")},
    "data": st.binary(min_size=F.BLOCK_SIZE, max_size=F.BLOCK_SIZE),
})
MARKER = st.one_of(st.none(), st.fixed_dictionaries(dict(n=_int("u32"), t=_int("u64"))))


def fields_strategy(name):
    _, struct_, _ = F.MESSAGES[name]
    d = {}
    for fname, kind in F.field_kinds(struct_):
        if kind == "count":
            continue
        if kind == "records":
            d[fname] = st.lists(RECORD, min_size=1, max_size=codec.MAX_BATCH)
        elif kind == "marker":
            d[fname] = MARKER
        elif kind == "bytes":
            d[fname] = st.one_of(st.binary(max_size=64), st.binary(min_size=codec.MAX_REPLY_BODY,
                                                                   max_size=codec.MAX_REPLY_BODY))
        elif kind.startswith("bytes"):
            n = int(kind[5:])
            d[fname] = st.binary(min_size=n, max_size=n)
        else:
            d[fname] = _int(kind)
    return st.fixed_dictionaries(d)


HEADER = st.fixed_dictionaries(dict(flags=_int("u8"), src=_int("u8"), dst=_int("u8"), group=_int("u8"),
                                    seq=_int("u16"), ack=_int("u16")))


def codec_args(name, fields):
    """Positional arguments of codec.pack_<name> from construct-style fields."""
    return F.positional(name, fields)


def plain(v):
    if isinstance(v, (memoryview, bytearray)):
        return bytes(v)
    if isinstance(v, (tuple, list)):
        return tuple(plain(x) for x in v)
    return v


def expected_unpack(name, fields):
    return plain(codec_args(name, fields))


def firmware_frame(name, fields, h):
    buf = bytearray(wire.MAX_FRAME)
    end = fn("pack_" + name)(buf, wire.HDR_SIZE, *codec_args(name, fields))
    n = codec.build_frame(buf, F.MESSAGES[name][0], h["flags"], h["src"], h["dst"], h["group"], h["seq"],
                          h["ack"], end - wire.HDR_SIZE)
    return bytes(buf[:n])


def deframe_one(frame):
    d = Deframer()
    assert d.feed(frame) == len(frame)
    assert d.next(), "deframer rejected a valid frame"
    assert not d.next() and d.pending == 0 and d.rejected == 0 and d.bad_magic == 0
    return d


# ---- both directions, every message ------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_construct_to_firmware(name, data):
    fields = data.draw(fields_strategy(name), "fields")
    h = data.draw(HEADER, "header")
    frame = F.build_frame(name, fields, **h)
    d = deframe_one(frame)
    assert (d.mtype, d.flags, d.src, d.dst, d.group, d.seq, d.ack) == (
        F.MESSAGES[name][0], h["flags"], h["src"], h["dst"], h["group"], h["seq"], h["ack"])
    unpack = fn("unpack_" + name)
    assert plain(unpack(d.payload)) == expected_unpack(name, fields)
    assert plain(unpack(d.frame, d.poff, d.poff + d.plen)) == expected_unpack(name, fields)
    assert firmware_frame(name, fields, h) == frame


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_firmware_to_construct(name, data):
    fields = data.draw(fields_strategy(name), "fields")
    h = data.draw(HEADER, "header")
    frame = firmware_frame(name, fields, h)
    parsed = F.parse_frame(frame)
    assert parsed["name"] == name
    assert {k: parsed[k] for k in h} == h
    payload = dict(parsed["payload"])
    if name == "write_batch":
        assert payload.pop("count") == len(fields["records"])
    assert payload == fields
    assert F.build_frame(name, parsed["payload"], **h) == frame
    assert hostcodec.encode(F.MESSAGES[name][0], h["src"], h["dst"], F.build_payload(name, fields), h["seq"],
                        h["ack"], h["flags"], h["group"]) == frame


@SETTINGS
@given(fields=st.fixed_dictionaries({n: _int(k) for n, k in F.field_kinds(F.STATUS_BODY)}))
def test_status_body_both_ways(fields):
    body = F.build_status_body(fields)
    args = [fields[n] for n in codec.STATUS_FIELDS]
    assert hostcodec.unpack_status_body(body) == tuple(args)
    buf = bytearray(codec.SZ_STATUS_BODY + 3)
    assert codec.pack_status_body(buf, 3, *args) == len(buf)
    assert bytes(buf[3:]) == body
    assert F.parse_status_body(body) == fields


# ---- the contract: wire.py and the construct definitions agree ---------------------------------------
def test_wire_constants_match_definitions():
    for name, (code, struct_, _) in F.MESSAGES.items():
        assert getattr(wire, "T_" + name.upper()) == code, name
    assert sorted(v for k, v in vars(wire).items() if k.startswith("T_")) == sorted(F.TYPE_NAMES)
    # F_ANCHOR is F_COPY's bit under another name on the secondary bus (SPEC section 2)
    assert wire.F_ANCHOR == wire.F_COPY == F.F_ANCHOR
    assert {k[2:]: v for k, v in vars(wire).items() if k.startswith("F_") and k != "F_ANCHOR"} \
        == F.FLAGS
    for table, prefix in ((F.STATUS, "S_"), (F.COMMANDS, "C_"), (F.ROLES, "ROLE_"), (F.MODES, "MODE_"),
                          (F.POLICIES, "POLICY_"), (F.COPY_STATES, "CS_"), (F.STATUS_FLAGS, "ST_"),
                          (F.RESIGN_REASONS, "R_")):
        wire_table = {k[len(prefix):]: v for k, v in vars(wire).items() if k.startswith(prefix)}
        assert wire_table == table, prefix
    for k in ("VERSION", "HDR_SIZE", "CRC_SIZE", "OVERHEAD", "MAX_PAYLOAD", "MAX_FRAME", "BROADCAST",
              "HOST_ID", "BLOCK_SIZE", "HCHECK_OFF"):
        assert getattr(wire, k) == getattr(F, k), k
    assert bytes((wire.MAGIC0, wire.MAGIC1)) == F.MAGIC
    assert struct.calcsize(wire.HDR_FMT) == F.HEADER_BODY.sizeof() == wire.HCHECK_OFF
    assert F.HEADER.sizeof() == wire.HDR_SIZE
    record = F.RECORD.build(dict(vol=0, block=0, dt=0, data=bytes(F.BLOCK_SIZE)))
    assert struct.calcsize(wire.P_RECORD) + F.BLOCK_SIZE == wire.RECORD_SIZE == len(record)
    assert wire.RECORD_HDR == struct.calcsize(wire.P_RECORD)
    head = [k for n, k in F.field_kinds(F.WRITE_BATCH) if k not in ("records", "marker")]
    assert struct.calcsize(wire.P_BATCH_HEAD) == codec.SZ_BATCH_HEAD == sum(
        {"count": 1, "u32": 4, "u64": 8}[k] for k in head)
    assert F.BATCH_MARKER.sizeof() == codec.SZ_MARKER


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("write_batch", "h_write", "h_reply")])
def test_fixed_payload_sizes(name):
    fmt = getattr(wire, "P_" + name.upper())
    assert struct.calcsize(fmt) == F.MESSAGES[name][1].sizeof() == getattr(codec, "SZ_" + name.upper())
    # one wire field per struct format code, in the same order
    kinds = [k for _, k in F.field_kinds(F.MESSAGES[name][1])]
    codes = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i32": "i"}
    assert "<" + "".join(codes[k] for k in kinds) == (fmt or "<")


def test_status_body_layout():
    kinds = [k for _, k in F.field_kinds(F.STATUS_BODY)]
    codes = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i32": "i"}
    assert "<" + "".join(codes[k] for k in kinds) == wire.P_STATUS_BODY
    assert tuple(n for n, _ in F.field_kinds(F.STATUS_BODY)) == codec.STATUS_FIELDS
    assert F.STATUS_BODY.sizeof() == codec.SZ_STATUS_BODY == 125


def test_every_message_has_a_codec_pair():
    for name in list(NAMES) + ["batch_head", "record", "status_body"]:
        assert callable(fn("pack_" + name)), name
        assert callable(fn("unpack_" + name)), name


# ---- golden vectors -------------------------------------------------------------------------------------
def test_vectors_are_current():
    with open(make_vectors.PATH) as f:
        assert f.read() == make_vectors.render(), "run: python -m protocol.make_vectors"


def test_golden_vectors_on_cpython():
    with open(make_vectors.PATH) as f:
        vec = json.load(f)
    assert {v["message"] for v in vec["frames"]} == set(NAMES)
    for v in vec["frames"]:
        frame = bytes.fromhex(v["hex"])
        parsed = F.parse_frame(frame)
        assert {k: parsed[k] for k in v["header"]} == v["header"], v["name"]
        dec = hostcodec.decode(frame)
        assert dec[:7] == (parsed["type"], *[v["header"][k] for k in ("flags", "src", "dst", "group", "seq", "ack")])
        assert bytes(dec[7]) == frame[16:-4]
    for bad in vec["invalid"]:
        d = Deframer()
        d.feed(bytes.fromhex(bad["hex"]))
        while d.next():
            pass
        for counter, value in bad["expect"].items():
            assert getattr(d, counter) == value, (bad["name"], counter)


# ---- CRC machinery used under heap_lock -----------------------------------------------------------------
def test_crc_constants():
    msg = b"any message at all"
    assert zlib.crc32(msg + zlib.crc32(msg).to_bytes(4, "little")) == codec.RES
    for _ in range(3):
        h = os.urandom(14)
        good = h + (zlib.crc32(h) & 0xFFFF).to_bytes(2, "little")
        assert zlib.crc32(good, codec.HCHECK_INIT) < 0x10000
    h = os.urandom(14)
    right = zlib.crc32(h) & 0xFFFF
    assert all(zlib.crc32(h + w.to_bytes(2, "little"), codec.HCHECK_INIT) >= 0x10000
               for w in range(0x10000) if w != right)


def test_crc_candidates():
    # L(c_k) = k << 30, where crc32(M + a) ^ crc32(M + b) = L(a ^ b) for 4-byte trailers a, b
    msg = os.urandom(40)
    base = zlib.crc32(msg + bytes(4))
    for k in range(4):
        c = struct.pack("<HH", codec._CAND_LO[k], codec._CAND_HI[k])
        assert zlib.crc32(msg + c) ^ base == k << 30


@settings(max_examples=300, deadline=None)
@given(msg=st.binary(max_size=600))
def test_small_int_crc_path(msg):
    # the path build_frame takes when the heap is locked, checked against zlib
    s = bytearray(msg + b"\xEE" * 4)
    out = bytearray(6)
    codec._crc_small_into(s, len(msg), out, 1)
    assert int.from_bytes(out[1:5], "little") == zlib.crc32(msg)


# ---- deframer: fuzz -------------------------------------------------------------------------------------------
POOL = [
    F.build_frame("checkpoint", dict(n=1, t=2), src=1, dst=255, seq=1),
    F.build_frame("ack", dict(lseq=77), src=2, dst=1, ack=9),
    F.build_frame("idle", None, src=2, dst=1),
    F.build_frame("write_batch", dict(lseq=3, t=1 << 40, records=[dict(vol=0, block=5, dt=0, data=bytes(range(256)) * 2)],
                                      marker=None), src=1, dst=2, seq=4),
    F.build_frame("write_batch", dict(lseq=3, t=1 << 40, records=[dict(vol=0, block=5, dt=0, data=bytes(512))],
                                      marker=dict(n=4, t=(1 << 40) + 1)), src=1, dst=2, seq=5),
    F.build_frame("h_reply", dict(status=0, body=b"\xA5\x5C" * 40), flags=F.F_REPLY, seq=3),
    F.build_frame("h_status", None, src=0, dst=1, seq=0xFFFF),
]
NOISE = st.one_of(
    st.binary(max_size=80),
    st.sampled_from(POOL).flatmap(lambda f: st.integers(1, len(f) - 1).map(lambda k: f[:k])),   # truncated
    st.sampled_from(POOL).flatmap(lambda f: st.integers(2, len(f) - 1).map(lambda k: f[k:])),   # tail only
    st.sampled_from(POOL).flatmap(lambda f: st.integers(2, len(f) - 1).map(                     # damaged
        lambda k: f[:k] + bytes([f[k] ^ 0x10]) + f[k + 1:])),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(NOISE, st.sampled_from(POOL)), max_size=12),
       cuts=st.lists(st.integers(1, 512), min_size=1, max_size=50))
def test_fuzz_recovers_every_valid_frame(items, cuts):
    stream = b"".join(noise + frame for noise, frame in items)
    stream += bytes(wire.MAX_FRAME)     # the line keeps running: any half-frame claim gets resolved
    want = [frame for _, frame in items]
    d = Deframer()
    got = []
    pos = i = 0
    while pos < len(stream):
        k = cuts[i % len(cuts)]
        assert d.feed(stream[pos:pos + k]) == len(stream[pos:pos + k])
        pos += k
        i += 1
        while d.next():
            got.append(bytes(d.frame))
            assert F.parse_frame(d.frame)   # anything accepted is a valid frame
    assert got == want
    assert d.overflow == 0 and d.frames == len(want)


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=3000), cut=st.integers(1, 700))
def test_garbage_never_raises(junk, cut):
    d = Deframer(max_payload=256, slack=100)
    for pos in range(0, len(junk), cut):
        d.feed(junk[pos:pos + cut])
        while d.next():
            pass
    d.abandon()
    d.reset()
    assert d.pending == 0


# ---- deframer: targeted rejections ----------------------------------------------------------------------------
GOOD = F.build_frame("checkpoint", dict(n=5, t=6), src=1, dst=2, seq=7)


def _feed_all(d, *parts):
    frames = []
    for p in parts:
        d.feed(p)
        while d.next():
            frames.append(bytes(d.frame))
    return frames


def _raw(header14, payload):
    h = header14 + (zlib.crc32(header14) & 0xFFFF).to_bytes(2, "little")
    return h + payload + zlib.crc32(h + payload).to_bytes(4, "little")


def _hdr(version=1, mtype=wire.T_CHECKPOINT, length=12):
    return struct.pack(wire.HDR_FMT, 0xA5, 0x5C, version, mtype, 0, 1, 2, 0, 7, 0, length)


def test_bad_crc_counted_and_next_frame_kept():
    bad = bytearray(GOOD)
    bad[20] ^= 1
    d = Deframer()
    assert _feed_all(d, bytes(bad) + GOOD) == [GOOD]
    assert d.bad_crc == 1 and d.rejected == 1


def test_bad_hcheck_counted():
    bad = bytearray(GOOD)
    bad[8] ^= 0x40           # seq, covered by the header check
    d = Deframer()
    assert _feed_all(d, bytes(bad), GOOD) == [GOOD]
    assert d.bad_hcheck == 1 and d.bad_crc == 0


def test_bad_version_counted():
    d = Deframer()
    assert _feed_all(d, _raw(_hdr(version=2), bytes(12)), GOOD) == [GOOD]
    assert d.bad_version == 1 and d.rejected == 1


def test_length_over_max_payload_counted():
    d = Deframer()
    assert _feed_all(d, _raw(_hdr(length=wire.MAX_PAYLOAD + 1), b""), GOOD) == [GOOD]
    assert d.bad_length == 1
    small = Deframer(max_payload=8)
    assert _feed_all(small, GOOD) == []          # 12-byte payload over this deframer's limit
    assert small.bad_length == 1


def test_truncated_frame_waits_then_resyncs():
    d = Deframer()
    assert _feed_all(d, GOOD[:-3]) == []
    assert d.pending == len(GOOD) - 3 and d.rejected == 0
    assert _feed_all(d, GOOD) == [GOOD]          # the cut frame fails its CRC, the next one is found
    assert d.bad_crc == 1


def test_abandon_gives_up_a_stalled_frame():
    d = Deframer()
    assert _feed_all(d, GOOD[:-3]) == []
    assert d.abandon() and d.abandoned == 1
    assert not d.abandon()
    assert _feed_all(d, GOOD) == [GOOD]


def test_overflow_drops_whole_chunk_and_recovers():
    d = Deframer(max_payload=64, slack=16)      # capacity 100
    assert d.feed(bytes(101)) == 0 and d.overflow == 101
    d.feed(GOOD[:10])
    assert d.feed(GOOD[10:] + bytes(80)) == 0 and d.overflow == 203
    assert _feed_all(d, GOOD, GOOD) == [GOOD, GOOD]     # the frame that lost its tail is rejected
    assert d.rejected == 1 and d.frames == 2


def test_bad_magic_counts_skipped_bytes():
    d = Deframer()
    assert _feed_all(d, b"\x01\x02\x03\xA5", b"\x00", GOOD, b"\xA5") == [GOOD]
    assert d.bad_magic == 5 and d.pending == 1      # trailing 0xA5 kept: its partner may follow


def test_payload_view_held_does_not_break_next():
    # CPython refuses to resize a bytearray with a live memoryview: the deframer must cope
    d = Deframer()
    d.feed(GOOD + GOOD)
    assert d.next()
    held = d.payload
    assert d.next() and bytes(held) == GOOD[16:-4]


# ---- codec: validation -------------------------------------------------------------------------------------------------
def test_pack_rejects_out_of_range_with_field_name():
    buf = bytearray(64)
    with pytest.raises(ValueError, match=r"checkpoint\.n"):
        codec.pack_checkpoint(buf, 0, -1, 0)
    with pytest.raises(ValueError, match=r"checkpoint\.t"):
        codec.pack_checkpoint(buf, 0, 0, 1 << 64)
    with pytest.raises(ValueError, match=r"resign\.reason"):
        codec.pack_resign(buf, 0, 1, 256)
    with pytest.raises(ValueError, match=r"error\.detail"):
        codec.pack_error(buf, 0, 1, 2, 0x10000)
    with pytest.raises(ValueError, match="skew_us"):
        codec.pack_status_body(bytearray(125), 0, *([0] * 21 + [1 << 31] + [0] * 12))
    with pytest.raises(ValueError, match=r"h_write\.data"):
        hostcodec.pack_h_write(bytearray(600), 0, 0, 0, bytes(511))
    with pytest.raises(ValueError, match="count"):
        codec.pack_batch_head(buf, 0, 0, 1, 0)
    with pytest.raises(ValueError, match="buffer holds"):
        codec.pack_checkpoint(bytearray(11), 0, 1, 1)
    with pytest.raises(ValueError, match="frame.seq"):
        codec.build_frame(bytearray(64), 3, 0, 1, 2, 0, 0x10000, 0, 0)
    with pytest.raises(ValueError, match="frame.length"):
        codec.build_frame(bytearray(64), 3, 0, 1, 2, 0, 0, 0, wire.MAX_PAYLOAD + 1)
    with pytest.raises(ValueError, match="frame"):
        codec.build_frame(bytearray(30), 3, 0, 1, 2, 0, 0, 0, 12)
    with pytest.raises(ValueError, match="write_batch"):
        hostcodec.pack_write_batch(bytearray(8000), 0, 1, 0, [(0, i, 0, bytes(512)) for i in range(8)])
    with pytest.raises(ValueError, match=r"record\.data"):
        codec.pack_record(bytearray(600), 0, 0, 0, 0, bytes(511))
    with pytest.raises(ValueError, match=r"record\.dt"):
        codec.pack_record(bytearray(600), 0, 0, 0, 1 << 32, bytes(512))
    with pytest.raises(ValueError, match=r"write_batch\.lseq"):
        codec.pack_batch_head(buf, 0, 1, 1 << 32, 0)


UNPACKERS = sorted(n[7:] for n in set(dir(codec)) | set(dir(hostcodec)) if n.startswith("unpack_"))


@pytest.mark.parametrize("name", UNPACKERS)
@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=700), off=st.integers(0, 8))
def test_unpack_raises_only_value_error(name, data, off):
    try:
        fn("unpack_" + name)(data, off)
    except ValueError:
        pass


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("write_batch", "h_reply")])
def test_unpack_wants_exact_length(name):
    fields = {fname: (bytes(int(k[5:])) if k.startswith("bytes") else 0)
              for fname, k in F.field_kinds(F.MESSAGES[name][1])}
    payload = F.build_payload(name, fields)
    unpack = fn("unpack_" + name)
    unpack(payload)
    with pytest.raises(ValueError):
        unpack(payload + b"\0")
    if payload:
        with pytest.raises(ValueError):
            unpack(payload[:-1])


def test_batch_decoding_errors():
    rec = dict(vol=1, block=2, dt=3, data=bytes(range(256)) * 2)
    good = F.build_payload("write_batch", dict(lseq=4, t=10, records=[rec], marker=None))
    marked = F.build_payload("write_batch", dict(lseq=4, t=10, records=[rec], marker=dict(n=7, t=14)))
    assert len(marked) == len(good) + codec.SZ_MARKER
    assert hostcodec.unpack_write_batch(good)[0:2] == (4, 10)
    assert hostcodec.unpack_write_batch(good)[2][0][:3] == (1, 2, 3)
    assert hostcodec.unpack_write_batch(good)[3] is None and hostcodec.unpack_write_batch(marked)[3] == (7, 14)
    assert [r[:4] for r in hostcodec.write_batch_records(marked)] == [(1, 2, 13, 4)]
    for bad in (good + b"x", good[:-1], marked[:-1], marked + bytes(codec.SZ_MARKER), good + good[1:],
                b"\x02" + good[1:], b"\x00" + good[1:]):
        with pytest.raises(ValueError, match="write_batch"):
            hostcodec.unpack_write_batch(bad)
    for bad, why in ((b"", "head needs"), (good[:12], "head needs"), (b"\x00" + good[1:], "count 0")):
        with pytest.raises(ValueError, match=why):
            hostcodec.unpack_write_batch(bad)


def test_decode_names_the_failed_check():
    assert hostcodec.decode(GOOD)[0] == wire.T_CHECKPOINT
    for bad, why in ((GOOD[:19], "shorter"), (b"\x00" + GOOD[1:], "magic"), (GOOD[:-1] + b"\x00", "CRC"),
                     (GOOD + b"\x00", "header says"), (_raw(_hdr(version=3), bytes(12)), "version")):
        with pytest.raises(ValueError, match=why):
            hostcodec.decode(bad)


# ---- C_DIRTY_LIST reply body ---------------------------------------------------------------------------
@SETTINGS
@given(blocks=st.lists(st.integers(0, 2 ** 32 - 1), max_size=wire.DIRTY_MAX),
       nxt=st.integers(0, 2 ** 32 - 1))
def test_dirty_list_both_ways(blocks, nxt):
    body = F.DIRTY_LIST.build({"next": nxt, "blocks": blocks})
    buf = bytearray(len(body) + 2)
    assert codec.pack_dirty_list(buf, 2, nxt, blocks, len(blocks)) == len(buf)
    assert bytes(buf[2:]) == body
    assert hostcodec.unpack_dirty_list(body) == (nxt, blocks)


def test_dirty_list_rejects_bad_bodies():
    with pytest.raises(ValueError, match="dirty_list"):
        hostcodec.unpack_dirty_list(b"\x02\x00" + bytes(4) + bytes(4))        # says 2, carries 1
    with pytest.raises(ValueError, match="dirty_list"):
        hostcodec.unpack_dirty_list(b"\x00")
    with pytest.raises(ValueError, match="dirty_list.count"):
        codec.pack_dirty_list(bytearray(1000), 0, 0, [0] * 101, 101)


def test_host_only_helpers_live_off_the_board():
    # what a board never calls is in protocol/hostcodec.py, not in firmware/codec.py (RAM on a Pico)
    for name in hostcodec.__all__:
        if name != "STATUS_FIELDS":
            assert not hasattr(codec, name), name
            assert callable(getattr(hostcodec, name)), name
    assert hostcodec.STATUS_FIELDS is codec.STATUS_FIELDS     # pack_status_body names its fields
