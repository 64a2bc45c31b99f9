"""Wire protocol definitions in construct: the host-side source of truth.

Every frame on every link (site bus, peer link, host port) has the same layout::

    header (16 bytes, with a check over its first 14) | payload (length bytes) | CRC-32 (4 bytes)

This module is deliberately independent of the firmware codec (it imports nothing from
``firmware/``); the tests prove that both produce and accept the same bytes. CRC-32 is crcmod's
``crc-32`` (the zlib polynomial), equal to ``binascii.crc32``.

Main entry points: :func:`build_frame` and :func:`parse_frame`; :data:`MESSAGES` maps every message
name to its type code, payload struct and the links that carry it.
"""
import crcmod.predefined
from construct import (Array, Bytes, Check, Checksum, Const, ConstructError, Error, FixedSized,
                       FormatField, GreedyBytes, Int8ul, Int16ul, Int32sl, Int32ul, Int64ul, Optional,
                       Prefixed, RawCopy, Rebuild, Struct, Switch, Terminated, len_, this)

crc32 = crcmod.predefined.mkCrcFun("crc-32")

# ---- framing constants ----------------------------------------------------------------------
MAGIC = b"\xA5\x5C"
VERSION = 1
HDR_SIZE = 16
HCHECK_OFF = 14
CRC_SIZE = 4
OVERHEAD = HDR_SIZE + CRC_SIZE
MAX_PAYLOAD = 4096
MAX_FRAME = MAX_PAYLOAD + OVERHEAD
BROADCAST = 0xFF
HOST_ID = 0
BLOCK_SIZE = 512

# ---- flags (header byte 4) --------------------------------------------------------------------
F_RETX = 0x01     # retransmission of an earlier frame
F_MORE = 0x02     # sender has more queued (bus replies)
F_REPLY = 0x04    # host-port reply; seq echoes the request's seq
F_SYNC = 0x08     # peer write records written in synchronous mode
F_UIP = 0x10      # UPDATE_COMPLETE sent while the sender still shows update-in-progress
F_WARM = 0x20     # beacon from a master whose clock is established (members may sync to it)
F_COPY = 0x40     # peer resync traffic: copy batch, HELLO of a copy-pending primary
F_EXPOSED = 0x80  # host port: H_REPLY OK to H_WRITE, durable but not protected as configured
F_ANCHOR = 0x40   # secondary bus (F_COPY's bit): RELEASE announces / RESET_UIP drops the group's image
                  # cut; UPDATE_COMPLETE reports it kept; COPY_ACTIVE: "my pair needs it"
FLAGS = {"RETX": F_RETX, "MORE": F_MORE, "REPLY": F_REPLY, "SYNC": F_SYNC, "UIP": F_UIP, "WARM": F_WARM,
         "COPY": F_COPY, "EXPOSED": F_EXPOSED}

# ---- message type codes (header byte 3) ---------------------------------------------------------
T_COPY_ACTIVE = 0x01
T_CLOCK_SYNC = 0x02
T_CHECKPOINT = 0x03
T_RELEASE = 0x04
T_UPDATE_COMPLETE = 0x05
T_RESET_UIP = 0x06
T_RESIGN = 0x07
T_HELD = 0x08
T_IDLE = 0x09
T_WRITE_BATCH = 0x10
T_ACK = 0x11
T_NAK = 0x12
T_PEER_HELLO = 0x13
T_SUSPEND = 0x14
T_MARKER = 0x15
T_JOIN = 0x16
T_H_WRITE = 0x20
T_H_READ = 0x21
T_H_STATUS = 0x22
T_H_COMMAND = 0x23
T_H_REPLY = 0x30
T_ERROR = 0x3F

# ---- status codes (H_REPLY.status, ERROR.code) ----------------------------------------------------
STATUS = {
    "OK": 0, "BUSY_UIP": 1, "NOT_COPY_ACTIVE": 2, "BAD_FRAME": 3, "OUT_OF_RANGE": 4,
    "UNKNOWN_VOLUME": 5, "READ_ONLY": 6, "UNKNOWN_TYPE": 7, "BAD_LENGTH": 8, "JOURNAL_FULL": 9,
    "NOT_READY": 10, "BAD_COMMAND": 11, "IO_ERROR": 12, "BAD_STATE": 13, "WRONG_ROLE": 14,
    "FENCED": 15,
}
# ---- host commands (H_COMMAND.command) -------------------------------------------------------------
COMMANDS = {
    "START_COPY": 1, "STOP_COPY": 2, "SUSPEND": 3, "RESUME": 4, "FAILOVER": 5, "FAILBACK": 6,
    "SET_MODE": 7, "SET_POLICY": 8, "REBOOT": 9, "DIRTY_LIST": 10, "MARK_DIRTY": 11,
}
ROLES = {"PRIMARY": 1, "SECONDARY": 2}
MODES = {"CLOCK": 0, "CLOCKLESS": 1, "SYNC": 2}
POLICIES = {"FREEZE": 0, "CONTINUE": 1}
COPY_STATES = {"SIMPLEX": 0, "PENDING": 1, "DUPLEX": 2, "SUSPENDED": 3, "RESIGNED": 4, "FAILED_OVER": 5}
STATUS_FLAGS = {"MASTER": 0x01, "UIP": 0x02, "COPY_ACTIVE": 0x04, "FROZEN": 0x08, "MUST_COMPLETE": 0x10}
RESIGN_REASONS = {"PEER_LOST": 1, "OPERATOR": 2, "ERROR": 3, "JOURNAL_FULL": 4, "PEER_FAILED_OVER": 5}

# ---- payloads ---------------------------------------------------------------------------------------
class _End(type(Terminated)):
    """Zero-width end marker: parsing fails unless the payload ends here (unlike construct's
    Terminated it has a size, so fixed payloads keep a sizeof())."""

    def _sizeof(self, context, path):
        return 0


END = _End()
EMPTY = Struct(END)

COPY_ACTIVE = Struct(
    "role" / Int8ul, "peer" / Int8ul, "copy_state" / Int8ul, "mode" / Int8ul,
    "incarnation" / Int32ul, END)
CLOCK_SYNC = Struct("t" / Int64ul, "round" / Int32ul, "peer" / Int8ul, "tag" / Int32ul,
                    "hold" / Int32ul, END)
CHECKPOINT = Struct("n" / Int32ul, "t" / Int64ul, END)
RELEASE = Struct("n" / Int32ul, "t" / Int64ul, END)
UPDATE_COMPLETE = Struct("n" / Int32ul, "t" / Int64ul, END)
RESET_UIP = Struct("n" / Int32ul, END)
RESIGN = Struct("node" / Int8ul, "reason" / Int8ul, END)
HELD = Struct("n" / Int32ul, "t" / Int64ul, END)
IDLE = EMPTY

# a record's lseq is the batch's lseq + its index, its time the batch's t + its dt
RECORD = Struct("vol" / Int8ul, "block" / Int32ul, "dt" / Int32ul, "data" / Bytes(BLOCK_SIZE))
# the checkpoint marker that may end a batch (MARKER's payload)
BATCH_MARKER = Struct("n" / Int32ul, "t" / Int64ul)
WRITE_BATCH = Struct(
    "count" / Rebuild(Int8ul, len_(this.records)),
    Check(this.count >= 1),
    "lseq" / Int32ul,
    "t" / Int64ul,
    "records" / Array(this.count, RECORD),
    "marker" / Optional(BATCH_MARKER),
    END)
ACK = Struct("lseq" / Int32ul, END)
NAK = EMPTY
PEER_HELLO = Struct(
    "role" / Int8ul, "node" / Int8ul, "incarnation" / Int32ul, "lseq" / Int32ul, END)
SUSPEND = Struct("reason" / Int8ul, END)
MARKER = Struct("n" / Int32ul, "t" / Int64ul, END)
JOIN = Struct("n" / Int32ul, "t" / Int64ul, END)

H_WRITE = Struct("vol" / Int8ul, "block" / Int32ul, "data" / Bytes(BLOCK_SIZE), END)
H_READ = Struct("vol" / Int8ul, "block" / Int32ul, END)
H_STATUS = EMPTY
H_COMMAND = Struct("command" / Int8ul, "arg" / Int32ul, "arg2" / Int64ul, END)
H_REPLY = Struct("status" / Int8ul, "body" / GreedyBytes)
ERROR = Struct("code" / Int8ul, "mtype" / Int8ul, "detail" / Int16ul, END)

# body of the H_REPLY answering H_STATUS
STATUS_BODY = Struct(
    "role" / Int8ul, "node" / Int8ul, "copy_state" / Int8ul, "flags" / Int8ul,
    "mode" / Int8ul, "policy" / Int8ul, "master" / Int8ul, "peer" / Int8ul,
    "ckpt_n" / Int32ul, "ckpt_t" / Int64ul, "released_n" / Int32ul,
    "applied_n" / Int32ul, "applied_t" / Int64ul, "uip_n" / Int32ul, "uip_t" / Int64ul,
    "journal_depth" / Int32ul, "journal_capacity" / Int32ul, "writes_completed" / Int32ul,
    "records_sent" / Int32ul, "records_acked" / Int32ul,
    "seq_time_us" / Int64ul, "skew_us" / Int32sl, "clock_err_us" / Int32ul, "lag_us" / Int32ul,
    "frames_bad" / Int32ul, "records_rejected" / Int32ul,
    "dirty_blocks" / Int32ul, "copy_done" / Int32ul, "copy_total" / Int32ul,
    "pace_us" / Int32ul, "pace_threshold" / Int32ul, "pace_max_us" / Int32ul,
    "suspend_reason" / Int8ul, "heap_peak" / Int32ul,
    END)

# body of the H_REPLY answering H_COMMAND(DIRTY_LIST)
DIRTY_LIST = Struct(
    "count" / Rebuild(Int16ul, len_(this.blocks)),
    "next" / Int32ul,
    Check(this.count <= 100),
    "blocks" / Array(this.count, Int32ul),
    END)

BUS, PEER, HOST = "site bus", "peer link", "host port"

# name -> (type code, payload struct, links that carry it)
MESSAGES = {
    "copy_active": (T_COPY_ACTIVE, COPY_ACTIVE, (BUS,)),
    "clock_sync": (T_CLOCK_SYNC, CLOCK_SYNC, (BUS,)),
    "checkpoint": (T_CHECKPOINT, CHECKPOINT, (BUS,)),
    "release": (T_RELEASE, RELEASE, (BUS,)),
    "update_complete": (T_UPDATE_COMPLETE, UPDATE_COMPLETE, (BUS,)),
    "reset_uip": (T_RESET_UIP, RESET_UIP, (BUS,)),
    "resign": (T_RESIGN, RESIGN, (BUS,)),
    "held": (T_HELD, HELD, (BUS,)),
    "idle": (T_IDLE, IDLE, (PEER,)),
    "write_batch": (T_WRITE_BATCH, WRITE_BATCH, (PEER,)),
    "ack": (T_ACK, ACK, (PEER,)),
    "nak": (T_NAK, NAK, (PEER,)),
    "peer_hello": (T_PEER_HELLO, PEER_HELLO, (PEER,)),
    "suspend": (T_SUSPEND, SUSPEND, (PEER,)),
    "marker": (T_MARKER, MARKER, (PEER,)),
    "join": (T_JOIN, JOIN, (PEER,)),
    "h_write": (T_H_WRITE, H_WRITE, (HOST,)),
    "h_read": (T_H_READ, H_READ, (HOST,)),
    "h_status": (T_H_STATUS, H_STATUS, (HOST,)),
    "h_command": (T_H_COMMAND, H_COMMAND, (HOST,)),
    "h_reply": (T_H_REPLY, H_REPLY, (HOST,)),
    "error": (T_ERROR, ERROR, (HOST,)),
}
TYPE_NAMES = {code: name for name, (code, _, _) in MESSAGES.items()}
PAYLOADS = {code: struct for code, struct, _ in MESSAGES.values()}


class FrameError(ValueError):
    """A frame or payload that does not match the definitions (wraps construct's error)."""


def type_code(mtype):
    """Type code from a code or a message name."""
    if isinstance(mtype, str):
        try:
            return MESSAGES[mtype][0]
        except KeyError:
            raise FrameError("unknown message name %r" % (mtype,)) from None
    if mtype not in TYPE_NAMES:
        raise FrameError("unknown message type 0x%02X" % (mtype,))
    return mtype


# ---- header and frame ----------------------------------------------------------------------------
def _header_fields(length):
    return (
        "magic" / Const(MAGIC),
        "version" / Const(VERSION, Int8ul),
        "type" / Int8ul,
        "flags" / Int8ul,
        "src" / Int8ul,
        "dst" / Int8ul,
        "group" / Int8ul,
        "seq" / Int16ul,
        "ack" / Int16ul,
        "length" / length,
    )


# the 14 bytes the header check covers
HEADER_BODY = Struct(*_header_fields(Int16ul))


def _hcheck(data):
    return crc32(data) & 0xFFFF


def _header(length):
    return Struct(
        *_header_fields(length),
        "hcheck" / Checksum(Int16ul, _hcheck, lambda ctx: HEADER_BODY.build(ctx)),
    )


HEADER = _header(Int16ul)


def _payload_length(ctx):
    # header.length when a whole frame is built: the size of the payload built from its fields
    struct = PAYLOADS.get(ctx.type)
    if struct is None:
        raise FrameError("unknown message type %r" % (ctx.type,))
    return len(struct.build(ctx._.payload))


FRAME = Struct(
    "body" / RawCopy(Struct(
        "header" / _header(Rebuild(Int16ul, _payload_length)),
        Check(this.header.length <= MAX_PAYLOAD),
        "payload" / FixedSized(this.header.length,
                               Switch(this.header.type, PAYLOADS, default=Error)),
    )),
    "crc" / Checksum(Int32ul, crc32, this.body.data),
    Terminated,
)


def _plain(obj):
    # construct Containers/ListContainers -> plain dicts/lists, without construct's private keys
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def build_payload(mtype, fields=None):
    """Payload bytes of a message from its fields (a dict; None for an empty payload)."""
    code = type_code(mtype)
    try:
        return PAYLOADS[code].build(fields or {})
    except ConstructError as e:
        raise FrameError("%s payload: %s" % (TYPE_NAMES[code], e)) from e


def parse_payload(mtype, data):
    """Fields (a dict) of a payload; the bytes must be exactly one payload."""
    code = type_code(mtype)
    try:
        return _plain(PAYLOADS[code].parse(bytes(data)))
    except ConstructError as e:
        raise FrameError("%s payload: %s" % (TYPE_NAMES[code], e)) from e


def build_frame(mtype, fields=None, *, flags=0, src=0, dst=0, group=0, seq=0, ack=0):
    """One complete frame. mtype: name ("checkpoint") or type code; fields: payload fields (dict)."""
    code = type_code(mtype)
    header = dict(type=code, flags=flags, src=src, dst=dst, group=group, seq=seq, ack=ack)
    try:
        return FRAME.build(dict(body=dict(value=dict(header=header, payload=fields or {}))))
    except ConstructError as e:
        raise FrameError("%s frame: %s" % (TYPE_NAMES[code], e)) from e


def parse_frame(data):
    """Parse and check one complete frame (magic, version, header check, length, CRC, payload).

    Returns a dict: type, name, flags, src, dst, group, seq, ack, length, hcheck, crc and payload
    (a dict of the payload's fields). Raises FrameError."""
    try:
        c = FRAME.parse(bytes(data))
    except ConstructError as e:
        raise FrameError(str(e)) from e
    h = c.body.value.header
    out = {k: h[k] for k in ("type", "flags", "src", "dst", "group", "seq", "ack", "length", "hcheck")}
    out["name"] = TYPE_NAMES[h.type]
    out["crc"] = c.crc
    out["payload"] = _plain(c.body.value.payload)
    return out


def parse_status_body(data):
    """Fields of the body of an H_REPLY that answers H_STATUS."""
    try:
        return _plain(STATUS_BODY.parse(bytes(data)))
    except ConstructError as e:
        raise FrameError("status body: %s" % (e,)) from e


def build_status_body(fields):
    try:
        return STATUS_BODY.build(fields)
    except ConstructError as e:
        raise FrameError("status body: %s" % (e,)) from e


def field_names(struct):
    """Names of a payload struct's fields in wire order (the firmware codec's argument order)."""
    return [sc.name for sc in struct.subcons if sc.name and not sc.name.startswith("_")]


_FORMAT_KINDS = {"<B": "u8", "<H": "u16", "<L": "u32", "<Q": "u64", "<l": "i32"}


def _kind(con):
    if isinstance(con, FormatField):
        return _FORMAT_KINDS[con.fmtstr]
    if isinstance(con, Rebuild):
        return "count"          # derived when building (records in a batch)
    if isinstance(con, Bytes):
        return "bytes%d" % con.length
    if isinstance(con, (Prefixed,)) or con is GreedyBytes:
        return "bytes"
    if isinstance(con, Array):
        return "records"
    if con is BATCH_MARKER or getattr(con, "subcons", [None])[0] is BATCH_MARKER:
        return "marker"         # optional trailing checkpoint marker: None or {n, t}
    raise TypeError("no kind for %r" % (con,))


def field_kinds(struct):
    """[(name, kind)] of a payload struct in wire order. Kinds: u8 u16 u32 u64 i32 (little-endian
    integers), bytesN (exactly N bytes), bytes (variable, delimited by a length or the frame),
    count (derived: number of records), records (list of RECORD), marker (optional trailing
    checkpoint marker: None or a dict n, t)."""
    return [(sc.name, _kind(sc.subcon)) for sc in struct.subcons
            if sc.name and not sc.name.startswith("_")]


def kind_range(kind):
    """(lowest, highest) value of an integer kind."""
    if kind == "i32":
        return -(1 << 31), (1 << 31) - 1
    bits = {"u8": 8, "count": 8, "u16": 16, "u32": 32, "u64": 64}[kind]
    return 0, (1 << bits) - 1


def positional(name, fields):
    """The fields of message `name` as positional values in wire order (record lists as
    tuples): the argument list of the firmware codec's pack_<name>."""
    out = []
    for fname, kind in field_kinds(MESSAGES[name][1]):
        if kind == "count":
            continue
        v = fields[fname]
        if kind == "records":
            v = [tuple(r[n] for n, _ in field_kinds(RECORD)) for r in v]
        elif kind == "marker":
            v = None if v is None else (v["n"], v["t"])
        out.append(v)
    return out
