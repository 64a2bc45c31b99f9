# The receive side of one port: bytes -> deframer -> node, with garbage accounting
# and the quiet-line rule. Shared by main.py (which polls real UARTs) and the
# simulator's board harness (which gets delivery callbacks), so both runtimes treat
# a line the same way.
#
# Quiet-line rule: a frame cut short (its sender died, or the line dropped bytes)
# would keep the deframer waiting for bytes that never come, swallowing the next
# frames as its payload. When the line has been silent for QUIET_US with a frame
# pending, that frame is given up and reported as garbage.
#
# Garbage runs: bytes the deframer discards (hunting for the magic, rejected
# candidate frames, abandoned frames, overflow) are reported to the node once per
# run, not once per chunk: a run ends when a valid frame is found (reported just
# before that frame is delivered) or when the line has been quiet for QUIET_US.
# node.on_garbage(now, port, n) gets n = the bytes discarded in the run.
from firmware.wire import const
from firmware.ticks import TICKS_MASK, ticks_diff

QUIET_US = const(100000)    # below the peer keepalive (200 ms): retries cannot keep a dead frame alive
_HALF = const(0x20000000)   # firmware/ticks.py: a tick difference's sign bit


class PortRx:
    def __init__(self, node, port, deframer):
        """deframer: a Deframer (or anything with its feed/next/abandon, frame fields,
        payload, discarded and buf: the bytes buffered, next() finding nothing while empty)."""
        self.node = node
        self.port = port
        self.d = deframer
        self.buf = deframer.buf
        self.last_rx = None
        self.garbage = 0          # bytes discarded, as of the last report
        self.frames = 0

    def data(self, now, chunk):
        """Bytes arrived at local time now."""
        last = self.last_rx
        # ticks_diff(now, last) > QUIET_US, inlined
        if last is not None and QUIET_US < (now - last) & TICKS_MASK < _HALF:
            self._quiet(now)          # anything pending predates a silence: it is dead
        self.last_rx = now
        d = self.d
        d.feed(chunk)
        buf = self.buf
        node = self.node
        port = self.port
        # as _drain (inlined: this runs for every chunk); no call of next() once the buffer
        # is empty (it would find nothing)
        while buf and d.next():
            e = d.discarded
            if e != self.garbage:     # the garbage before this frame, if any: one run
                node.on_garbage(now, port, e - self.garbage)
                self.garbage = e
            self.frames += 1
            node.on_frame(now, port, d.mtype, d.flags, d.src, d.dst, d.group, d.seq, d.ack,
                          d.payload)

    def idle(self, now):
        """Nothing arrived (call when a poll finds the port empty)."""
        if self.last_rx is not None and ticks_diff(now, self.last_rx) > QUIET_US:
            self._quiet(now)
            self.last_rx = None       # quiet handled: nothing to compare with an old tick

    def _quiet(self, now):
        if self.d.abandon():
            self._drain(now)
        self._report(now)             # the run, if any, ends with the silence

    def _report(self, now):
        e = self.d.discarded          # see Deframer.discarded
        if e != self.garbage:
            self.node.on_garbage(now, self.port, e - self.garbage)
            self.garbage = e

    def _drain(self, now):
        d = self.d
        node = self.node
        port = self.port
        while d.next():
            self._report(now)         # the garbage before this frame, if any: one run
            self.frames += 1
            node.on_frame(now, port, d.mtype, d.flags, d.src, d.dst, d.group, d.seq, d.ack,
                          d.payload)
