# Frame and payload codec (struct + binascii only; runs unchanged on MicroPython and CPython).
#
# Only what a board calls is here (every function costs RAM on a Pico); the host-only helpers
# (encode(), decode(), the payloads only a host builds or reads) are in protocol/hostcodec.py.
# Frames:   build_frame() writes header, header check and CRC trailer around a payload that the
#           caller has already packed at buf[HDR_SIZE:].
# Payloads: pack_<name>(buf, off, ...) -> new offset for what a board sends, and
#           unpack_<name>(mv, off=0, end=None) -> tuple for what it receives. pack_* check every
#           field against its wire width and the buffer size; unpack_* require mv[off:end] to be exactly the payload (end defaults to len(mv)).
#           Both raise ValueError with the message and field named, never IndexError/struct.error.
#
# Allocation: build_frame() and the pack_* functions allocate nothing (they work under
# micropython.heap_lock()). That needs care with CRC-32: on a 32-bit MicroPython an int >= 2**30 is a
# heap object, and binascii.crc32 returns one for 3 of 4 inputs. When that allocation fails, the CRC is
# found through results that are small ints by construction (see _crc_small_into). binascii.crc32 also
# takes whole objects only, and slicing allocates, so exact-length copies go through private
# bytearrays that are resized within their capacity (no allocation on MicroPython).
# The module-level scratch buffers make this module non-reentrant (one caller at a time).
import struct
import binascii
from array import array

from firmware.wire import (MAGIC0, MAGIC1, VERSION, HDR_SIZE, CRC_SIZE, MAX_PAYLOAD, MAX_FRAME,
                  BLOCK_SIZE, HDR_FMT, HCHECK_OFF, RECORD_HDR, RECORD_SIZE,
                  P_COPY_ACTIVE, P_CLOCK_SYNC, P_CHECKPOINT, P_RELEASE, P_UPDATE_COMPLETE, P_RESET_UIP,
                  P_RESIGN, P_HELD, P_MARKER, P_JOIN, P_BATCH_HEAD, P_RECORD, P_ACK, P_PEER_HELLO, P_H_WRITE, P_H_READ,
                  P_H_COMMAND, P_H_REPLY, P_ERROR, P_STATUS_BODY, P_SUSPEND, P_DIRTY_HEAD,
                  DIRTY_MAX)

# ---- payload sizes ------------------------------------------------------------
SZ_COPY_ACTIVE = struct.calcsize(P_COPY_ACTIVE)
SZ_CLOCK_SYNC = struct.calcsize(P_CLOCK_SYNC)
SZ_CHECKPOINT = struct.calcsize(P_CHECKPOINT)
SZ_RELEASE = struct.calcsize(P_RELEASE)
SZ_UPDATE_COMPLETE = struct.calcsize(P_UPDATE_COMPLETE)
SZ_RESET_UIP = struct.calcsize(P_RESET_UIP)
SZ_RESIGN = struct.calcsize(P_RESIGN)
SZ_HELD = struct.calcsize(P_HELD)
SZ_MARKER = struct.calcsize(P_MARKER)
SZ_JOIN = struct.calcsize(P_JOIN)
SZ_BATCH_HEAD = struct.calcsize(P_BATCH_HEAD)
SZ_ACK = struct.calcsize(P_ACK)
SZ_PEER_HELLO = struct.calcsize(P_PEER_HELLO)
SZ_SUSPEND = struct.calcsize(P_SUSPEND)
SZ_DIRTY_HEAD = struct.calcsize(P_DIRTY_HEAD)
SZ_IDLE = 0
SZ_NAK = 0
SZ_H_STATUS = 0
SZ_H_WRITE = struct.calcsize(P_H_WRITE) + BLOCK_SIZE
SZ_H_READ = struct.calcsize(P_H_READ)
SZ_H_COMMAND = struct.calcsize(P_H_COMMAND)
SZ_H_REPLY_HEAD = struct.calcsize(P_H_REPLY)
SZ_ERROR = struct.calcsize(P_ERROR)
SZ_STATUS_BODY = struct.calcsize(P_STATUS_BODY)
# records a WRITE_BATCH holds at most (with a trailing marker: 7 of 512-byte blocks)
MAX_BATCH = (MAX_PAYLOAD - SZ_BATCH_HEAD - SZ_MARKER) // RECORD_SIZE
MAX_REPLY_BODY = MAX_PAYLOAD - SZ_H_REPLY_HEAD

_U8 = 0xFF
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_EMPTY = b""
_PAD4 = b"\0\0\0\0"

# ---- CRC-32 -----------------------------------------------------------------------
# RES: crc32 of any message followed by its own CRC (little-endian) -- the CRC "residue".
RES = 0x2144DF1C
# HCHECK_INIT: crc32(header[0:16], HCHECK_INIT) < 0x10000 exactly when header[14:16] holds the right
# header check (crc32 of the first 14 bytes, low 16 bits): appending those two bytes fixes the top 16
# bits of the CRC at 0x41D9, and this start value cancels them.
HCHECK_INIT = 0xAAEBF250
_POLY = 0xEDB88320


def crc32(buf, crc=0):
    """CRC-32 (zlib / binascii / crcmod 'crc-32') of a whole buffer, optionally continuing from crc."""
    return binascii.crc32(buf, crc)


def _linv_tables():
    # The map L(x) = "advance the CRC register over 32 zero bits" is linear over GF(2); these nibble
    # tables give L^-1 as (low, high) 16-bit halves so it can be applied with small ints only.
    basis = []
    for j in range(32):
        r = 1 << j
        for _ in range(32):      # one CRC step backwards per bit
            if r & 0x80000000:
                r = (((r ^ _POLY) << 1) | 1) & _U32
            else:
                r = (r << 1) & _U32
        basis.append(r)
    lo = array("H", bytes(256))
    hi = array("H", bytes(256))
    for nib in range(8):
        for v in range(16):
            x = 0
            for b in range(4):
                if (v >> b) & 1:
                    x ^= basis[nib * 4 + b]
            lo[nib * 16 + v] = x & 0xFFFF
            hi[nib * 16 + v] = x >> 16
    return lo, hi


_LI_LO, _LI_HI = _linv_tables()
# candidate trailers c_k = L^-1(k << 30), as 16-bit halves
_CAND_LO = (0x0000, 0x44C9, 0x8FD3, 0xCB1A)
_CAND_HI = (0x0000, 0xC022, 0x5B35, 0x9B17)


def _crc_small_into(s, n, dst, doff):
    # s: bytearray of exactly n + 4 bytes whose first n bytes are the message. Writes crc32(s[0:n])
    # little-endian at dst[doff:doff+4] without ever creating an int >= 2**30: with trailer c the
    # CRC of the whole is RES ^ L(c ^ crc); of the four candidates c_k exactly one makes it < 2**30,
    # and from that small value crc = L^-1(value ^ RES ^ (k << 30)). Clobbers s[n:n+4].
    for k in range(4):
        struct.pack_into("<HH", s, n, _CAND_LO[k], _CAND_HI[k])
        try:
            g = binascii.crc32(s)
        except MemoryError:      # heap locked: the result needed a long int, so not this candidate
            continue
        if g >> 30:               # heap not locked: same case, the long int was allocated
            continue
        g ^= RES
        x = g & 0xFFFF
        lo = 0
        hi = 0
        j = 0
        for i in range(8):
            if i == 4:
                x = (g >> 16) ^ (k << 14)
            lo ^= _LI_LO[j + (x & 15)]
            hi ^= _LI_HI[j + (x & 15)]
            x >>= 4
            j += 16
        struct.pack_into("<HH", dst, doff, lo, hi)
        return
    raise RuntimeError("crc: no candidate matched")   # unreachable: one of four always does


_H14 = bytearray(HCHECK_OFF)
_H18 = bytearray(HCHECK_OFF + 4)
_T4 = bytearray(4)
_S = bytearray(MAX_FRAME + 4)
_S[0:] = _EMPTY          # length 0, capacity kept for in-place growth


def _crc_prefix_into(src, n, dst, doff):
    # crc32(src[0:n]) little-endian into dst[doff:doff+4]; src must hold at least n + 4 bytes.
    s = _S
    s[0:] = src           # copy (grows within capacity)
    s[n:] = _EMPTY        # exact length n
    try:
        struct.pack_into("<I", dst, doff, binascii.crc32(s))
        return
    except MemoryError:
        pass
    s[n:] = _PAD4
    _crc_small_into(s, n, dst, doff)


# ---- range checks -----------------------------------------------------------------
def _bad(what, v, hi):
    return ValueError("%s out of range 0..%d: %r" % (what, hi, v))


def _u8(v, what):
    if not isinstance(v, int) or v < 0 or v > _U8:
        raise _bad(what, v, _U8)


def _u16(v, what):
    if not isinstance(v, int) or v < 0 or v > _U16:
        raise _bad(what, v, _U16)


def _u32(v, what):
    if not isinstance(v, int) or v < 0 or v > _U32:
        raise _bad(what, v, _U32)


def _u64(v, what):
    if not isinstance(v, int) or v < 0 or v > _U64:
        raise _bad(what, v, _U64)


def _room(buf, off, size, what):
    if not isinstance(off, int) or off < 0 or off + size > len(buf):
        raise ValueError("%s: needs %d bytes at offset %r, buffer holds %d" % (what, size, off, len(buf)))


def _span(mv, off, end, what):
    # validated end of the region mv[off:end]
    n = len(mv)
    if end is None:
        end = n
    if not isinstance(off, int) or not isinstance(end, int) or off < 0 or end > n or off > end:
        raise ValueError("%s: bad region [%r:%r] of a %d-byte buffer" % (what, off, end, n))
    return end


def _exact(mv, off, end, size, what):
    if end is None and off == 0 and len(mv) == size and isinstance(off, int):
        return                    # the usual case: the whole payload
    end = _span(mv, off, end, what)
    if end - off != size:
        raise ValueError("%s: payload is %d bytes, expected %d" % (what, end - off, size))


# ---- frames -------------------------------------------------------------------------
def build_frame(buf, mtype, flags, src, dst, group, seq, ack, plen, view=None):
    """Complete a frame in place: the payload is already at buf[HDR_SIZE:HDR_SIZE+plen]; write the
    header with its check and the CRC trailer. Returns the frame length. Allocates nothing (for a buf
    of at most MAX_FRAME + 4 bytes; a longer one grows a scratch buffer once).
    view: None, or a memoryview of buf for a caller that allocates anyway (it copies the frame out
    next): the CRC is then taken through a slice of it (one small object, and on MicroPython the
    CRC may be a long int) instead of a copy of the whole buf into the scratch."""
    try:
        ok = not ((mtype | flags | src | dst | group) >> 8 or (seq | ack) >> 16 or plen >> 13) \
            and plen <= MAX_PAYLOAD
    except TypeError:             # not ints: the checks below say which
        ok = False
    if not ok:
        _frame_fields(mtype, flags, src, dst, group, seq, ack, plen)
    n = HDR_SIZE + plen
    if n + CRC_SIZE > len(buf):
        _room(buf, 0, n + CRC_SIZE, "frame")
    h = _H14
    struct.pack_into(HDR_FMT, h, 0, MAGIC0, MAGIC1, VERSION, mtype, flags, src, dst, group, seq, ack, plen)
    try:
        hc = binascii.crc32(h) & 0xFFFF
    except MemoryError:
        h = _H18
        struct.pack_into(HDR_FMT, h, 0, MAGIC0, MAGIC1, VERSION, mtype, flags, src, dst, group, seq, ack, plen)
        _crc_small_into(h, HCHECK_OFF, _T4, 0)
        hc = _T4[0] | (_T4[1] << 8)
    buf[0:HCHECK_OFF] = _H14      # the header as packed above (same length: no resize), then the check
    buf[HCHECK_OFF] = hc & 0xFF
    buf[HCHECK_OFF + 1] = hc >> 8
    if view is not None:
        struct.pack_into("<I", buf, n, binascii.crc32(view[:n]))
        return n + CRC_SIZE
    # _crc_prefix_into(buf, n, buf, n), inlined
    s = _S
    s[0:] = buf
    s[n:] = _EMPTY
    try:
        struct.pack_into("<I", buf, n, binascii.crc32(s))
    except MemoryError:
        s[n:] = _PAD4
        _crc_small_into(s, n, buf, n)
    return n + CRC_SIZE


def _frame_fields(mtype, flags, src, dst, group, seq, ack, plen):
    # the header fields one by one (raises ValueError naming the first one out of range)
    _u8(mtype, "frame.type")
    _u8(flags, "frame.flags")
    _u8(src, "frame.src")
    _u8(dst, "frame.dst")
    _u8(group, "frame.group")
    _u16(seq, "frame.seq")
    _u16(ack, "frame.ack")
    if not isinstance(plen, int) or plen < 0 or plen > MAX_PAYLOAD:
        raise _bad("frame.length", plen, MAX_PAYLOAD)
    raise AssertionError("frame fields in range")     # unreachable: the fast check failed


# ---- site bus payloads --------------------------------------------------------------
def pack_copy_active(buf, off, role, peer, copy_state, mode, incarnation):
    _u8(role, "copy_active.role")
    _u8(peer, "copy_active.peer")
    _u8(copy_state, "copy_active.copy_state")
    _u8(mode, "copy_active.mode")
    _u32(incarnation, "copy_active.incarnation")
    _room(buf, off, SZ_COPY_ACTIVE, "copy_active")
    struct.pack_into(P_COPY_ACTIVE, buf, off, role, peer, copy_state, mode, incarnation)
    return off + SZ_COPY_ACTIVE


def unpack_copy_active(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_COPY_ACTIVE or not isinstance(off, int):
        _exact(mv, off, end, SZ_COPY_ACTIVE, "copy_active")         # (the whole payload needs no call)
    return struct.unpack_from(P_COPY_ACTIVE, mv, off)


def pack_clock_sync(buf, off, t, rnd, peer=0, tag=0, hold=0):
    if not (isinstance(t, int) and isinstance(rnd, int) and isinstance(off, int)
            and 0 <= t <= _U64 and 0 <= rnd <= _U32 and 0 <= off and off + SZ_CLOCK_SYNC <= len(buf)
            and isinstance(peer, int) and isinstance(tag, int) and isinstance(hold, int)
            and 0 <= peer <= 255 and 0 <= tag <= _U32 and 0 <= hold <= _U32):
        _u64(t, "clock_sync.t")
        _u32(rnd, "clock_sync.round")
        _u8(peer, "clock_sync.peer")
        _u32(tag, "clock_sync.tag")
        _u32(hold, "clock_sync.hold")
        _room(buf, off, SZ_CLOCK_SYNC, "clock_sync")
    struct.pack_into(P_CLOCK_SYNC, buf, off, t, rnd, peer, tag, hold)
    return off + SZ_CLOCK_SYNC


def unpack_clock_sync(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_CLOCK_SYNC or not isinstance(off, int):
        _exact(mv, off, end, SZ_CLOCK_SYNC, "clock_sync")         # (the whole payload needs no call)
    return struct.unpack_from(P_CLOCK_SYNC, mv, off)


def _pack_nt(fmt, size, what_n, what_t, what, buf, off, n, t):
    # one test for the usual case; the checks one by one name what is wrong
    if not (isinstance(n, int) and isinstance(t, int) and isinstance(off, int)
            and 0 <= n <= _U32 and 0 <= t <= _U64 and 0 <= off and off + size <= len(buf)):
        _u32(n, what_n)
        _u64(t, what_t)
        _room(buf, off, size, what)
    struct.pack_into(fmt, buf, off, n, t)
    return off + size


def pack_checkpoint(buf, off, n, t):
    return _pack_nt(P_CHECKPOINT, SZ_CHECKPOINT, "checkpoint.n", "checkpoint.t", "checkpoint", buf, off, n, t)


def unpack_checkpoint(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_CHECKPOINT or not isinstance(off, int):
        _exact(mv, off, end, SZ_CHECKPOINT, "checkpoint")         # (the whole payload needs no call)
    return struct.unpack_from(P_CHECKPOINT, mv, off)


def pack_held(buf, off, n, t):
    return _pack_nt(P_HELD, SZ_HELD, "held.n", "held.t", "held", buf, off, n, t)


def unpack_held(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_HELD or not isinstance(off, int):
        _exact(mv, off, end, SZ_HELD, "held")         # (the whole payload needs no call)
    return struct.unpack_from(P_HELD, mv, off)


def pack_marker(buf, off, n, t):
    return _pack_nt(P_MARKER, SZ_MARKER, "marker.n", "marker.t", "marker", buf, off, n, t)


def unpack_marker(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_MARKER or not isinstance(off, int):
        _exact(mv, off, end, SZ_MARKER, "marker")         # (the whole payload needs no call)
    return struct.unpack_from(P_MARKER, mv, off)


def pack_join(buf, off, n, t):
    return _pack_nt(P_JOIN, SZ_JOIN, "join.n", "join.t", "join", buf, off, n, t)


def unpack_join(mv, off=0, end=None):
    _exact(mv, off, end, SZ_JOIN, "join")
    return struct.unpack_from(P_JOIN, mv, off)


def pack_release(buf, off, n, t):
    return _pack_nt(P_RELEASE, SZ_RELEASE, "release.n", "release.t", "release", buf, off, n, t)


def unpack_release(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_RELEASE or not isinstance(off, int):
        _exact(mv, off, end, SZ_RELEASE, "release")         # (the whole payload needs no call)
    return struct.unpack_from(P_RELEASE, mv, off)


def pack_update_complete(buf, off, n, t):
    return _pack_nt(P_UPDATE_COMPLETE, SZ_UPDATE_COMPLETE, "update_complete.n", "update_complete.t",
                    "update_complete", buf, off, n, t)


def unpack_update_complete(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_UPDATE_COMPLETE or not isinstance(off, int):
        _exact(mv, off, end, SZ_UPDATE_COMPLETE, "update_complete")         # (the whole payload needs no call)
    return struct.unpack_from(P_UPDATE_COMPLETE, mv, off)


def pack_reset_uip(buf, off, n):
    _u32(n, "reset_uip.n")
    _room(buf, off, SZ_RESET_UIP, "reset_uip")
    struct.pack_into(P_RESET_UIP, buf, off, n)
    return off + SZ_RESET_UIP


def unpack_reset_uip(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_RESET_UIP or not isinstance(off, int):
        _exact(mv, off, end, SZ_RESET_UIP, "reset_uip")         # (the whole payload needs no call)
    return struct.unpack_from(P_RESET_UIP, mv, off)


def pack_resign(buf, off, node, reason):
    _u8(node, "resign.node")
    _u8(reason, "resign.reason")
    _room(buf, off, SZ_RESIGN, "resign")
    struct.pack_into(P_RESIGN, buf, off, node, reason)
    return off + SZ_RESIGN


# ---- peer link payloads ---------------------------------------------------------------
def pack_batch_head(buf, off, count, lseq, t):
    """Head of a WRITE_BATCH: record count (1..MAX_BATCH), lseq of the first record, base time T0;
    records follow at the returned offset (record i has lseq + i and time T0 + its dt). Packing the
    records first and the head last is fine: the head has a fixed size."""
    if not (isinstance(count, int) and isinstance(lseq, int) and isinstance(t, int) and isinstance(off, int)
            and 1 <= count <= MAX_BATCH and 0 <= lseq <= _U32 and 0 <= t <= _U64 and 0 <= off
            and off + SZ_BATCH_HEAD <= len(buf)):
        if not isinstance(count, int) or count < 1 or count > MAX_BATCH:
            raise ValueError("write_batch.count out of range 1..%d: %r" % (MAX_BATCH, count))
        _u32(lseq, "write_batch.lseq")
        _u64(t, "write_batch.t")
        _room(buf, off, SZ_BATCH_HEAD, "write_batch")
    struct.pack_into(P_BATCH_HEAD, buf, off, count, lseq, t)
    return off + SZ_BATCH_HEAD


def unpack_batch_head(mv, off=0, end=None):
    """-> (count, lseq of the first record, T0, offset of the first record, offset of the trailing
    checkpoint marker or 0 when the batch has none). The payload must be exactly the head, count
    records and, optionally, one marker (SZ_MARKER bytes)."""
    end = _span(mv, off, end, "write_batch")
    n = end - off
    if n < SZ_BATCH_HEAD:
        raise ValueError("write_batch: %d bytes, the head needs %d" % (n, SZ_BATCH_HEAD))
    count, lseq, t = struct.unpack_from(P_BATCH_HEAD, mv, off)
    if count < 1:
        raise ValueError("write_batch: record count 0")
    r = off + SZ_BATCH_HEAD
    m = r + count * RECORD_SIZE
    if m == end:
        return count, lseq, t, r, 0
    if m + SZ_MARKER == end:
        return count, lseq, t, r, m
    raise ValueError("write_batch: %d bytes for %d records (%d, or %d with a marker)"
                     % (n, count, m - off, m - off + SZ_MARKER))


def pack_record(buf, off, vol, block, dt, data):
    """One write record: volume, block, time offset from the batch's T0, and BLOCK_SIZE data bytes."""
    if not (isinstance(vol, int) and isinstance(block, int) and isinstance(dt, int) and isinstance(off, int)
            and 0 <= vol <= _U8 and 0 <= block <= _U32 and 0 <= dt <= _U32 and 0 <= off
            and len(data) == BLOCK_SIZE and off + RECORD_SIZE <= len(buf)):
        _u8(vol, "record.vol")                # the checks one by one, naming what is wrong
        _u32(block, "record.block")
        _u32(dt, "record.dt")
        if len(data) != BLOCK_SIZE:
            raise ValueError("record.data: %d bytes, expected %d" % (len(data), BLOCK_SIZE))
        _room(buf, off, RECORD_SIZE, "record")
    struct.pack_into(P_RECORD, buf, off, vol, block, dt)
    off += RECORD_HDR
    buf[off:off + BLOCK_SIZE] = data
    return off + BLOCK_SIZE


def unpack_record(mv, off=0, end=None):
    """-> (vol, block, dt, data memoryview of BLOCK_SIZE bytes, offset after the record)."""
    end = _span(mv, off, end, "record")
    if end - off < RECORD_SIZE:
        raise ValueError("record: %d bytes left, a record is %d" % (end - off, RECORD_SIZE))
    vol, block, dt = struct.unpack_from(P_RECORD, mv, off)
    d0 = off + RECORD_HDR
    return vol, block, dt, memoryview(mv)[d0:d0 + BLOCK_SIZE], d0 + BLOCK_SIZE


def pack_ack(buf, off, lseq):
    if not (isinstance(lseq, int) and isinstance(off, int) and 0 <= lseq <= _U32
            and 0 <= off and off + SZ_ACK <= len(buf)):
        _u32(lseq, "ack.lseq")
        _room(buf, off, SZ_ACK, "ack")
    struct.pack_into(P_ACK, buf, off, lseq)
    return off + SZ_ACK


def unpack_ack(mv, off=0, end=None):
    if end is not None or off or len(mv) != SZ_ACK or not isinstance(off, int):
        _exact(mv, off, end, SZ_ACK, "ack")         # (the whole payload needs no call)
    return struct.unpack_from(P_ACK, mv, off)


def pack_peer_hello(buf, off, role, node, incarnation, lseq):
    _u8(role, "peer_hello.role")
    _u8(node, "peer_hello.node")
    _u32(incarnation, "peer_hello.incarnation")
    _u32(lseq, "peer_hello.lseq")
    _room(buf, off, SZ_PEER_HELLO, "peer_hello")
    struct.pack_into(P_PEER_HELLO, buf, off, role, node, incarnation, lseq)
    return off + SZ_PEER_HELLO


def unpack_peer_hello(mv, off=0, end=None):
    _exact(mv, off, end, SZ_PEER_HELLO, "peer_hello")
    return struct.unpack_from(P_PEER_HELLO, mv, off)


def pack_suspend(buf, off, reason):
    _u8(reason, "suspend.reason")
    _room(buf, off, SZ_SUSPEND, "suspend")
    struct.pack_into(P_SUSPEND, buf, off, reason)
    return off + SZ_SUSPEND


def unpack_suspend(mv, off=0, end=None):
    _exact(mv, off, end, SZ_SUSPEND, "suspend")
    return struct.unpack_from(P_SUSPEND, mv, off)


# ---- host port payloads -----------------------------------------------------------
def pack_dirty_list(buf, off, nxt, blocks, count):
    """Reply body to C_DIRTY_LIST: count, next block to ask for, then blocks[0:count]."""
    if not isinstance(count, int) or count < 0 or count > DIRTY_MAX:
        raise ValueError("dirty_list.count out of range 0..%d: %r" % (DIRTY_MAX, count))
    _u32(nxt, "dirty_list.next")
    _room(buf, off, SZ_DIRTY_HEAD + 4 * count, "dirty_list")
    struct.pack_into(P_DIRTY_HEAD, buf, off, count, nxt)
    o = off + SZ_DIRTY_HEAD
    for i in range(count):
        _u32(blocks[i], "dirty_list.block")
        struct.pack_into("<I", buf, o, blocks[i])
        o += 4
    return o


def unpack_h_write(mv, off=0, end=None):
    """-> (vol, block, data memoryview of BLOCK_SIZE bytes)."""
    if end is not None or off or len(mv) != SZ_H_WRITE or not isinstance(off, int):
        _exact(mv, off, end, SZ_H_WRITE, "h_write")             # (the whole payload needs no call)
    vol, block = struct.unpack_from(P_H_WRITE, mv, off)
    o = off + SZ_H_WRITE - BLOCK_SIZE
    return vol, block, memoryview(mv)[o:o + BLOCK_SIZE]


def unpack_h_read(mv, off=0, end=None):
    _exact(mv, off, end, SZ_H_READ, "h_read")
    return struct.unpack_from(P_H_READ, mv, off)


def unpack_h_command(mv, off=0, end=None):
    _exact(mv, off, end, SZ_H_COMMAND, "h_command")
    return struct.unpack_from(P_H_COMMAND, mv, off)


def pack_h_reply(buf, off, status, body=b""):
    """Reply to a host request: status (S_*) and a body that depends on the request (a block for
    H_READ, a status body for H_STATUS, empty otherwise)."""
    if not (isinstance(status, int) and 0 <= status <= _U8):
        _u8(status, "h_reply.status")
    blen = len(body)
    if blen > MAX_REPLY_BODY:
        raise ValueError("h_reply.body: %d bytes, at most %d" % (blen, MAX_REPLY_BODY))
    if not (isinstance(off, int) and 0 <= off and off + SZ_H_REPLY_HEAD + blen <= len(buf)):
        _room(buf, off, SZ_H_REPLY_HEAD + blen, "h_reply")
    buf[off] = status
    o = off + SZ_H_REPLY_HEAD
    if blen:
        buf[o:o + blen] = body
    return o + blen


def pack_error(buf, off, code, mtype, detail):
    _u8(code, "error.code")
    _u8(mtype, "error.mtype")
    _u16(detail, "error.detail")
    _room(buf, off, SZ_ERROR, "error")
    struct.pack_into(P_ERROR, buf, off, code, mtype, detail)
    return off + SZ_ERROR


# field order of the STATUS body (the H_REPLY body answering H_STATUS)
STATUS_FIELDS = ("role", "node", "copy_state", "flags", "mode", "policy", "master", "peer",
                 "ckpt_n", "ckpt_t", "released_n", "applied_n", "applied_t", "uip_n", "uip_t",
                 "journal_depth", "journal_capacity", "writes_completed", "records_sent",
                 "records_acked", "seq_time_us", "skew_us", "clock_err_us", "lag_us",
                 "frames_bad", "records_rejected", "dirty_blocks", "copy_done", "copy_total",
                 "pace_us", "pace_threshold", "pace_max_us", "suspend_reason", "heap_peak")
_STATUS_CODES = P_STATUS_BODY[1:]


def pack_status_body(buf, off, *fields):
    """STATUS body from its fields in STATUS_FIELDS order (see wire.P_STATUS_BODY)."""
    if len(fields) != len(STATUS_FIELDS):
        raise ValueError("status_body: %d fields given, expected %d" % (len(fields), len(STATUS_FIELDS)))
    for i in range(len(fields)):
        c = _STATUS_CODES[i]
        v = fields[i]
        if c == "i":
            if not isinstance(v, int) or v < -0x80000000 or v > 0x7FFFFFFF:
                raise ValueError("status_body.%s out of range -2147483648..2147483647: %r" % (STATUS_FIELDS[i], v))
        elif c == "B":
            _u8(v, STATUS_FIELDS[i])
        elif c == "I":
            _u32(v, STATUS_FIELDS[i])
        else:
            _u64(v, STATUS_FIELDS[i])
    _room(buf, off, SZ_STATUS_BODY, "status_body")
    struct.pack_into(P_STATUS_BODY, buf, off, *fields)
    return off + SZ_STATUS_BODY

