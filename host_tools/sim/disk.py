"""Simulated block devices for the store and the simulator.

Both classes speak MicroPython's block device protocol (``readblocks``,
``writeblocks``, ``ioctl``), so firmware/store.py runs on them unchanged.

- ``RamDisk(nblocks)``: a disk image in a bytearray; ``from_file`` / ``to_file``
  load and save it as a raw image.
- ``FaultyDisk(inner, rng)``: wraps a device; counts reads and writes, and can cut
  the power at a chosen future block write (``arm_power_cut``). The cut raises
  ``PowerCut`` from the device; the victim block is either not written at all or,
  in torn mode, written with a random-length prefix of the new contents and the
  rest left old. After the cut the device is dead (every call raises PowerCut)
  until ``power_on()``. Every random choice comes from the given
  ``random.Random``, so a run is reproducible from its seed.
"""

BLOCK_SIZE = 512

IOCTL_INIT = 1
IOCTL_DEINIT = 2
IOCTL_SYNC = 3
IOCTL_BLK_COUNT = 4
IOCTL_BLK_SIZE = 5


class PowerCut(Exception):
    """The simulated board lost power during (or before) a block device call."""


class DiskWriteError(Exception):
    """Raised by FaultyDisk for an armed 'raise' write failure."""


def _check_buf(n, buf, nblocks):
    ln = len(buf)
    if ln == 0 or ln % BLOCK_SIZE:
        raise ValueError("buffer length %d is not a positive multiple of %d" % (ln, BLOCK_SIZE))
    cnt = ln // BLOCK_SIZE
    if n < 0 or n + cnt > nblocks:
        raise ValueError("blocks %d..%d outside device of %d blocks" % (n, n + cnt - 1, nblocks))
    return cnt


class RamDisk:
    def __init__(self, nblocks, fill=0):
        self.nblocks = nblocks
        if fill:
            self.data = bytearray(bytes((fill,)) * (nblocks * BLOCK_SIZE))
        else:
            self.data = bytearray(nblocks * BLOCK_SIZE)

    # -- block device protocol --
    def readblocks(self, n, buf, offset=0):
        if offset:
            start = n * BLOCK_SIZE + offset
            if start < 0 or start + len(buf) > len(self.data):
                raise ValueError("read beyond the device")
            buf[:] = self.data[start:start + len(buf)]
            return 0
        cnt = _check_buf(n, buf, self.nblocks)
        start = n * BLOCK_SIZE
        buf[:] = self.data[start:start + cnt * BLOCK_SIZE]
        return 0

    def writeblocks(self, n, buf, offset=0):
        if offset:
            start = n * BLOCK_SIZE + offset
            if start < 0 or start + len(buf) > len(self.data):
                raise ValueError("write beyond the device")
            self.data[start:start + len(buf)] = buf
            return 0
        ln = len(buf)
        if ln == BLOCK_SIZE and 0 <= n < self.nblocks:       # the usual case: one block
            start = n * BLOCK_SIZE
            self.data[start:start + BLOCK_SIZE] = buf
            return 0
        cnt = _check_buf(n, buf, self.nblocks)
        start = n * BLOCK_SIZE
        self.data[start:start + cnt * BLOCK_SIZE] = buf
        return 0

    def ioctl(self, op, arg):
        if op == IOCTL_BLK_COUNT:
            return self.nblocks
        if op == IOCTL_BLK_SIZE:
            return BLOCK_SIZE
        if op in (IOCTL_INIT, IOCTL_DEINIT, IOCTL_SYNC):
            return 0
        return None

    # -- helpers --
    def block(self, n):
        """Contents of block n (a copy)."""
        return bytes(self.data[n * BLOCK_SIZE:(n + 1) * BLOCK_SIZE])

    def clone(self):
        d = RamDisk.__new__(RamDisk)
        d.nblocks = self.nblocks
        d.data = bytearray(self.data)
        return d

    @classmethod
    def from_file(cls, path):
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) % BLOCK_SIZE:
            raise ValueError("%s: image size %d is not a multiple of %d" % (path, len(raw), BLOCK_SIZE))
        d = cls.__new__(cls)
        d.nblocks = len(raw) // BLOCK_SIZE
        d.data = bytearray(raw)
        return d

    def to_file(self, path):
        with open(path, "wb") as f:
            f.write(self.data)


class FaultyDisk:
    def __init__(self, inner, rng):
        self.inner = inner
        self.rng = rng
        self.reads = 0           # blocks read
        self.writes = 0          # blocks written (completed, including a torn victim)
        self.read_calls = 0
        self.write_calls = 0
        self.dead = False
        self.cuts = 0
        self._cut_at = None      # value of self.writes at which the victim write happens
        self._torn = False
        self._bad_at = None
        self._bad_mode = None
        self.last_cut_block = None
        self.last_cut_prefix = None

    # -- fault control --
    def arm_power_cut(self, after_writes, torn=False):
        """Cut the power at a future block write: `after_writes` more block writes
        complete normally, the next one is the victim (not written, or torn)."""
        if after_writes < 0:
            raise ValueError("after_writes must be >= 0")
        self._cut_at = self.writes + after_writes
        self._torn = torn

    def disarm(self):
        self._cut_at = None
        self._bad_at = None

    def arm_write_failure(self, after_writes, mode="silent"):
        """Make one future block write fail: mode 'silent' drops it and reports
        success (as a flaky SD card may), 'status' drops it and returns -5 (EIO),
        'raise' drops it and raises DiskWriteError."""
        if mode not in ("silent", "status", "raise"):
            raise ValueError("bad mode %r" % (mode,))
        self._bad_at = self.writes + after_writes
        self._bad_mode = mode

    def power_on(self):
        """Bring a dead disk back (the board reboots); pending faults are cleared."""
        self.dead = False
        self._cut_at = None
        self._bad_at = None

    def _cut(self):
        self.dead = True
        self.cuts += 1
        self._cut_at = None
        raise PowerCut("power cut at block write #%d" % self.writes)

    # -- block device protocol --
    def readblocks(self, n, buf, offset=0):
        if self.dead:
            raise PowerCut("device is off")
        self.read_calls += 1
        inner = self.inner
        if not offset and len(buf) == BLOCK_SIZE and type(inner) is RamDisk \
                and 0 <= n < inner.nblocks:
            # the usual case: one block of a RAM disk (RamDisk.readblocks, inlined)
            self.reads += 1
            start = n * BLOCK_SIZE
            buf[:] = inner.data[start:start + BLOCK_SIZE]
            return 0
        self.reads += max(1, len(buf) // BLOCK_SIZE)
        return self.inner.readblocks(n, buf, offset) if offset else self.inner.readblocks(n, buf)

    def writeblocks(self, n, buf, offset=0):
        if self.dead:
            raise PowerCut("device is off")
        if offset:
            raise ValueError("FaultyDisk supports whole-block writes only")
        self.write_calls += 1
        if len(buf) == BLOCK_SIZE and self._cut_at is None and self._bad_at is None:
            # the usual case: one block, nothing armed
            inner = self.inner
            if type(inner) is RamDisk and 0 <= n < inner.nblocks:
                start = n * BLOCK_SIZE
                inner.data[start:start + BLOCK_SIZE] = buf
            else:
                inner.writeblocks(n, buf)       # it checks the range
            self.writes += 1
            return 0
        cnt = _check_buf(n, buf, self.inner.ioctl(IOCTL_BLK_COUNT, 0))
        if self._cut_at is None and self._bad_at is None:
            # nothing armed: the blocks are written as they are, in one call
            self.inner.writeblocks(n, buf)
            self.writes += cnt
            return 0
        mv = memoryview(buf)
        status = 0
        for i in range(cnt):
            blk = mv[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE]
            if self._cut_at is not None and self.writes >= self._cut_at:
                self.last_cut_block = n + i
                if self._torn:
                    k = self.rng.randint(0, BLOCK_SIZE)
                    self.last_cut_prefix = k
                    if k:
                        old = bytearray(BLOCK_SIZE)
                        self.inner.readblocks(n + i, old)
                        old[0:k] = blk[0:k]
                        self.inner.writeblocks(n + i, old)
                        self.writes += 1
                else:
                    self.last_cut_prefix = 0
                self._cut()
            if self._bad_at is not None and self.writes >= self._bad_at:
                mode = self._bad_mode
                self._bad_at = None
                self.writes += 1
                if mode == "raise":
                    raise DiskWriteError("write of block %d failed" % (n + i))
                if mode == "status":
                    status = -5
                continue
            self.inner.writeblocks(n + i, blk)
            self.writes += 1
        return status

    def ioctl(self, op, arg):
        if self.dead:
            raise PowerCut("device is off")
        return self.inner.ioctl(op, arg)
