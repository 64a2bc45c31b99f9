# Host-side codec: frame encode/decode and the payload helpers only a host uses (kept off a board).
#
# firmware/codec.py holds what a board calls at run time; everything here is used by
# host tools and tests only: encode() / decode() of whole frames, the payloads a host
# builds (H_WRITE, H_READ, H_STATUS, H_COMMAND) or reads (H_REPLY, ERROR, the STATUS body,
# the DIRTY_LIST body), and the whole-batch WRITE_BATCH, RESIGN, IDLE and NAK helpers.
# Same conventions as firmware/codec.py (pack_<name>(buf, off, ...) -> new offset,
# unpack_<name>(mv, off=0, end=None) -> tuple, ValueError naming the field). It uses only
# struct and binascii, so MicroPython test scripts can import it too.
import struct
import binascii

from firmware.wire import (MAGIC0, MAGIC1, VERSION, HDR_SIZE, OVERHEAD, MAX_PAYLOAD, BLOCK_SIZE,
                           HDR_FMT, HCHECK_OFF, P_RESIGN, P_H_WRITE, P_H_READ, P_H_COMMAND, P_ERROR,
                           P_STATUS_BODY, P_DIRTY_HEAD, DIRTY_MAX)
from firmware.codec import (RES, STATUS_FIELDS, SZ_RESIGN, SZ_DIRTY_HEAD, SZ_H_WRITE, SZ_H_READ,
                            SZ_H_COMMAND, SZ_H_REPLY_HEAD, SZ_ERROR, SZ_STATUS_BODY, build_frame,
                            SZ_MARKER, pack_batch_head, pack_record, pack_marker, unpack_batch_head,
                            unpack_marker, unpack_record,
                            _bad, _u8, _u32, _u64, _room, _span, _exact)

__all__ = ("STATUS_FIELDS", "encode", "decode", "unpack_resign", "pack_idle", "unpack_idle",
           "pack_write_batch", "unpack_write_batch", "write_batch_records", "pack_nak", "unpack_nak", "unpack_dirty_list",
           "pack_h_write", "pack_h_read", "pack_h_status", "unpack_h_status", "pack_h_command",
           "unpack_h_reply", "unpack_error", "unpack_status_body")


def encode(mtype, src, dst, payload=b"", seq=0, ack=0, flags=0, group=0):
    """One frame as bytes (allocates)."""
    plen = len(payload)
    if plen > MAX_PAYLOAD:
        raise _bad("frame.length", plen, MAX_PAYLOAD)
    buf = bytearray(plen + OVERHEAD)
    buf[HDR_SIZE:HDR_SIZE + plen] = payload
    build_frame(buf, mtype, flags, src, dst, group, seq, ack, plen)
    return bytes(buf)


def decode(frame):
    """Check one complete frame; -> (mtype, flags, src, dst, group, seq, ack, payload memoryview).
    Raises ValueError naming the first check that failed (allocates; for host tools and tests)."""
    n = len(frame)
    if n < OVERHEAD:
        raise ValueError("frame: %d bytes, shorter than the %d-byte minimum" % (n, OVERHEAD))
    if frame[0] != MAGIC0 or frame[1] != MAGIC1:
        raise ValueError("frame: bad magic")
    mv = memoryview(frame)
    if binascii.crc32(mv[0:HCHECK_OFF]) & 0xFFFF != frame[HCHECK_OFF] | (frame[HCHECK_OFF + 1] << 8):
        raise ValueError("frame: bad header check")
    if frame[2] != VERSION:
        raise ValueError("frame: version %d, expected %d" % (frame[2], VERSION))
    _, _, _, mtype, flags, src, dst, group, seq, ack, plen = struct.unpack_from(HDR_FMT, mv, 0)
    if plen > MAX_PAYLOAD:
        raise ValueError("frame: length %d exceeds %d" % (plen, MAX_PAYLOAD))
    if n != plen + OVERHEAD:
        raise ValueError("frame: %d bytes, header says %d" % (n, plen + OVERHEAD))
    if binascii.crc32(mv) != RES:
        raise ValueError("frame: bad CRC")
    return mtype, flags, src, dst, group, seq, ack, mv[HDR_SIZE:HDR_SIZE + plen]


def unpack_resign(mv, off=0, end=None):
    _exact(mv, off, end, SZ_RESIGN, "resign")
    return struct.unpack_from(P_RESIGN, mv, off)


def _pack_empty(buf, off, what):
    _room(buf, off, 0, what)
    return off


def pack_idle(buf, off):
    return _pack_empty(buf, off, "idle")


def unpack_idle(mv, off=0, end=None):
    _exact(mv, off, end, 0, "idle")
    return ()


def pack_write_batch(buf, off, lseq, t, records, marker=None):
    """WRITE_BATCH payload: the first record's lseq, the base time T0, a sequence of
    (vol, block, dt, data) and an optional trailing checkpoint marker (n, T)."""
    o = pack_batch_head(buf, off, len(records), lseq, t)
    for r in records:
        o = pack_record(buf, o, r[0], r[1], r[2], r[3])
    if marker is not None:
        o = pack_marker(buf, o, marker[0], marker[1])
    if o - off > MAX_PAYLOAD:
        raise ValueError("write_batch: %d bytes, at most %d" % (o - off, MAX_PAYLOAD))
    return o


def unpack_write_batch(mv, off=0, end=None):
    """-> (lseq, T0, [(vol, block, dt, data memoryview)], marker (n, T) or None)."""
    count, lseq, t, o, m = unpack_batch_head(mv, off, end)
    out = []
    for _ in range(count):
        vol, block, dt, data, o = unpack_record(mv, o)
        out.append((vol, block, dt, data))
    return lseq, t, out, (unpack_marker(mv, m, m + SZ_MARKER) if m else None)


def write_batch_records(mv, off=0, end=None):
    """The records of a WRITE_BATCH as the stream carries them: [(vol, block, t, lseq, data)]."""
    lseq, t, recs, _ = unpack_write_batch(mv, off, end)
    return [(v, b, t + dt, lseq + i, d) for i, (v, b, dt, d) in enumerate(recs)]


def pack_nak(buf, off):
    return _pack_empty(buf, off, "nak")


def unpack_nak(mv, off=0, end=None):
    _exact(mv, off, end, 0, "nak")
    return ()


def unpack_dirty_list(mv, off=0, end=None):
    """-> (next block, [blocks])."""
    if end is None:
        end = len(mv)
    if end - off < SZ_DIRTY_HEAD:
        raise ValueError("dirty_list: %d bytes, need at least %d" % (end - off, SZ_DIRTY_HEAD))
    count, nxt = struct.unpack_from(P_DIRTY_HEAD, mv, off)
    if count > DIRTY_MAX or end - off != SZ_DIRTY_HEAD + 4 * count:
        raise ValueError("dirty_list: %d bytes for %d blocks" % (end - off, count))
    o = off + SZ_DIRTY_HEAD
    return nxt, [struct.unpack_from("<I", mv, o + 4 * i)[0] for i in range(count)]


def pack_h_write(buf, off, vol, block, data):
    _u8(vol, "h_write.vol")
    _u32(block, "h_write.block")
    if len(data) != BLOCK_SIZE:
        raise ValueError("h_write.data: %d bytes, expected %d" % (len(data), BLOCK_SIZE))
    _room(buf, off, SZ_H_WRITE, "h_write")
    struct.pack_into(P_H_WRITE, buf, off, vol, block)
    o = off + SZ_H_WRITE - BLOCK_SIZE
    buf[o:o + BLOCK_SIZE] = data
    return off + SZ_H_WRITE


def pack_h_read(buf, off, vol, block):
    _u8(vol, "h_read.vol")
    _u32(block, "h_read.block")
    _room(buf, off, SZ_H_READ, "h_read")
    struct.pack_into(P_H_READ, buf, off, vol, block)
    return off + SZ_H_READ


def pack_h_status(buf, off):
    return _pack_empty(buf, off, "h_status")


def unpack_h_status(mv, off=0, end=None):
    _exact(mv, off, end, 0, "h_status")
    return ()


def pack_h_command(buf, off, command, arg=0, arg2=0):
    _u8(command, "h_command.command")
    _u32(arg, "h_command.arg")
    _u64(arg2, "h_command.arg2")
    _room(buf, off, SZ_H_COMMAND, "h_command")
    struct.pack_into(P_H_COMMAND, buf, off, command, arg, arg2)
    return off + SZ_H_COMMAND


def unpack_h_reply(mv, off=0, end=None):
    """-> (status, body memoryview)."""
    end = _span(mv, off, end, "h_reply")
    if end - off < SZ_H_REPLY_HEAD:
        raise ValueError("h_reply: empty payload")
    return mv[off], memoryview(mv)[off + SZ_H_REPLY_HEAD:end]


def unpack_error(mv, off=0, end=None):
    _exact(mv, off, end, SZ_ERROR, "error")
    return struct.unpack_from(P_ERROR, mv, off)


def unpack_status_body(mv, off=0, end=None):
    _exact(mv, off, end, SZ_STATUS_BODY, "status_body")
    return struct.unpack_from(P_STATUS_BODY, mv, off)
