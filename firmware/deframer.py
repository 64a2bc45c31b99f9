# Stream deframer: arbitrary chunks in, validated frames out, every rejection counted.
#
#   d = Deframer(max_payload)
#   d.feed(chunk)                 # copy bytes in (bounded; overflow is counted, never raises)
#   while d.next():               # True when a validated frame is ready
#       use d.mtype, d.flags, d.src, d.dst, d.group, d.seq, d.ack, d.plen and
#       d.frame[d.poff:d.poff + d.plen]   (d.frame: bytearray holding exactly the frame)
#       or d.payload                      (a memoryview of exactly the payload; allocates)
#   d.buf                         # the bytes buffered (read only): while empty, next() is False
#
# Resync rule: hunt for the magic; validate the header check before trusting anything else in the
# header; then the version; then the length (<= max_payload); wait for the whole frame; check the
# CRC. On any failure after the magic, drop the two magic bytes and hunt again from there, so a frame
# that starts inside a rejected one is still found.
#
# feed() and next() allocate nothing for valid input (they run under micropython.heap_lock()):
# both buffers are bytearrays resized in place within a fixed capacity (MicroPython keeps the
# storage), CRCs are checked through results that are small ints for a valid frame, and header
# fields are read by indexing. `frame` stays valid until the next call of next().
import binascii

from firmware.wire import MAGIC0, MAGIC1, VERSION, HDR_SIZE, OVERHEAD, MAX_PAYLOAD, HCHECK_OFF
from firmware.codec import RES, HCHECK_INIT

_MAGIC = b"\xA5\x5C"
_EMPTY = b""

try:
    _BufferError = BufferError
except NameError:            # MicroPython: resizing with a live memoryview is allowed there
    _BufferError = ValueError

try:
    bytearray(2).find(_MAGIC, 1)
    _HAS_FIND = True
except (AttributeError, TypeError):
    _HAS_FIND = False


def _find_magic(b, start):
    if _HAS_FIND:
        return b.find(_MAGIC, start)
    end = len(b) - 1
    i = start
    while i < end:
        if b[i] == MAGIC0 and b[i + 1] == MAGIC1:
            return i
        i += 1
    return -1


class Deframer:
    def __init__(self, max_payload=MAX_PAYLOAD, slack=512, scratch=None):
        """max_payload: longest payload accepted (frames claiming more are counted in bad_length).
        slack: room beyond one maximal frame; feeding chunks of at most `slack` bytes and draining
        with next() after each feed never overflows.
        scratch: a bytearray of at least `capacity` bytes (Deframer.scratch_for) to hold the frame
        under check, shared with other deframers (build them all before any is fed: its length
        is checked here); then `frame`/`payload` stay valid only until the next next() on any
        deframer that shares it. None: a scratch of its own."""
        if not isinstance(max_payload, int) or max_payload < 0 or max_payload > MAX_PAYLOAD:
            raise ValueError("max_payload out of range 0..%d: %r" % (MAX_PAYLOAD, max_payload))
        if not isinstance(slack, int) or slack < 0:
            raise ValueError("slack must be a non-negative int: %r" % (slack,))
        self.max_payload = max_payload
        self.capacity = max_payload + OVERHEAD + slack
        self._in = bytearray(self.capacity)      # bytes received and not yet consumed
        self._in[0:] = _EMPTY
        self.buf = self._in      # the same, for readers (PortRx): next() finds nothing while empty
        # _s: exact-length copy of the header or frame under check. Allocated at full length,
        # then cut to length by next(): MicroPython keeps the storage, so regrowing within it
        # never allocates
        if scratch is None:
            scratch = bytearray(self.capacity)
            scratch[0:] = _EMPTY
        elif not isinstance(scratch, bytearray) or len(scratch) < self.capacity:
            raise ValueError("scratch must be a bytearray of at least %d bytes" % self.capacity)
        self._s = scratch
        self._need = 0           # length of the frame whose header at _in[0] is validated, else 0
        # the last frame
        self.frame = self._s
        self.poff = HDR_SIZE
        self.mtype = 0
        self.flags = 0
        self.src = 0
        self.dst = 0
        self.group = 0
        self.seq = 0
        self.ack = 0
        self.plen = 0
        # counters
        self.frames = 0
        self.bad_magic = 0       # bytes discarded while hunting for the magic
        self.bad_hcheck = 0
        self.bad_version = 0
        self.bad_length = 0
        self.bad_crc = 0
        self.overflow = 0        # bytes dropped by feed() because the buffer was full
        self.abandoned = 0       # frames given up by abandon()
        self.discarded = 0       # bytes thrown away: bad_magic + overflow + 2 per rejection or
                                 # abandoned frame (each drops exactly its two magic bytes)

    @staticmethod
    def scratch_for(max_payloads, slack=512):
        """One frame scratch for deframers of these max_payloads (and slack), to share."""
        m = 0
        for p in max_payloads:
            if p > m:
                m = p
        return bytearray(m + OVERHEAD + slack)

    @property
    def payload(self):
        return memoryview(self.frame)[HDR_SIZE:HDR_SIZE + self.plen]

    @property
    def pending(self):
        """Bytes buffered and not yet consumed."""
        return len(self._in)

    @property
    def rejected(self):
        """Candidate frames rejected after their magic (header check, version, length, CRC)."""
        return self.bad_hcheck + self.bad_version + self.bad_length + self.bad_crc

    def feed(self, chunk):
        """Append a chunk (bytes, bytearray or memoryview). A chunk that does not fit is dropped
        whole and its length added to `overflow`. -> number of bytes taken (len(chunk) or 0)."""
        b = self._in
        n = len(chunk)
        m = len(b)
        if m + n > self.capacity:
            self.overflow += n
            self.discarded += n
            return 0
        b[m:] = chunk
        return n

    def reset(self):
        """Forget buffered bytes (e.g. after reopening the port). Counters are kept."""
        self._in[0:] = _EMPTY
        self._need = 0

    def abandon(self):
        """Give up on a validated header that is still waiting for the rest of its frame (call when
        the line has been quiet longer than a frame takes): counted in `abandoned`, and the hunt
        resumes after its magic. -> True if there was one."""
        if not self._need:
            return False
        self._need = 0
        self.abandoned += 1
        self.discarded += 2
        self._in[0:2] = _EMPTY
        return True

    def next(self):
        """Advance to the next valid frame. -> True when one is ready (see the attributes)."""
        b = self._in
        while True:
            n = len(b)
            need = self._need
            if not need:
                if n < 2:
                    if n == 1 and b[0] != MAGIC0:
                        b[0:] = _EMPTY
                        self.bad_magic += 1
                        self.discarded += 1
                    return False
                if b[0] != MAGIC0 or b[1] != MAGIC1:
                    i = _find_magic(b, 1)
                    if i < 0:        # keep a trailing first magic byte: its partner may come next
                        i = n - 1 if b[n - 1] == MAGIC0 else n
                    b[0:i] = _EMPTY
                    self.bad_magic += i
                    self.discarded += i
                    continue
                if n < HDR_SIZE:
                    return False
                plen = b[HCHECK_OFF - 2] | (b[HCHECK_OFF - 1] << 8)
                if n == plen + OVERHEAD and plen <= self.max_payload:
                    # the buffer is exactly one candidate frame (the usual case: a frame per
                    # chunk): one copy. Its CRC on the copy, then the header check on the
                    # buffer cut to the header (consumed whole anyway if the frame is good)
                    s = self._s
                    try:
                        s[0:] = b
                    except _BufferError:
                        s = self._s = bytearray(self.capacity)
                        s[0:] = b
                    try:
                        ok = binascii.crc32(s) == RES
                    except MemoryError:
                        ok = False
                    if ok and s[2] == VERSION:
                        b[HDR_SIZE:] = _EMPTY
                        try:
                            ok = binascii.crc32(b, HCHECK_INIT) < 0x10000
                        except MemoryError:
                            ok = False
                        if ok:
                            b[0:] = _EMPTY
                            return self._take(s, plen)
                        b[0:] = s        # as it was
                    # something is wrong with it: the checks one by one below count what
                # _s = exactly the header (a copy of the buffer cut to length)
                s = self._s
                try:
                    s[0:] = b
                    s[HDR_SIZE:] = _EMPTY
                except _BufferError:     # CPython: a caller still holds a view of the last frame
                    s = self._s = bytearray(self.capacity)
                    s[0:] = b
                    s[HDR_SIZE:] = _EMPTY
                try:
                    ok = binascii.crc32(s, HCHECK_INIT) < 0x10000
                except MemoryError:
                    ok = False
                if not ok:
                    self.bad_hcheck += 1
                    self.discarded += 2
                    b[0:2] = _EMPTY
                    continue
                if s[2] != VERSION:
                    self.bad_version += 1
                    self.discarded += 2
                    b[0:2] = _EMPTY
                    continue
                plen = s[HCHECK_OFF - 2] | (s[HCHECK_OFF - 1] << 8)
                if plen > self.max_payload:
                    self.bad_length += 1
                    self.discarded += 2
                    b[0:2] = _EMPTY
                    continue
                need = self._need = plen + OVERHEAD
            if n < need:
                return False
            # _s = exactly the frame
            s = self._s
            try:
                s[0:] = b
                s[need:] = _EMPTY
            except _BufferError:
                s = self._s = bytearray(self.capacity)
                s[0:] = b
                s[need:] = _EMPTY
            try:
                ok = binascii.crc32(s) == RES
            except MemoryError:      # heap locked and the CRC needed a long int: not RES
                ok = False
            self._need = 0
            if not ok:
                self.bad_crc += 1
                self.discarded += 2
                b[0:2] = _EMPTY
                continue
            b[0:need] = _EMPTY
            return self._take(s, need - OVERHEAD)

    def _take(self, s, plen):
        # a valid frame (exactly, in s) with plen payload bytes: publish its header fields
        self.frame = s
        self.mtype = s[3]
        self.flags = s[4]
        self.src = s[5]
        self.dst = s[6]
        self.group = s[7]
        self.seq = s[8] | (s[9] << 8)
        self.ack = s[10] | (s[11] << 8)
        self.plen = plen
        self.frames += 1
        return True
