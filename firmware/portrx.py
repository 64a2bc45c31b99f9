# The receive side of one port: bytes -> deframer -> node, with garbage accounting
# and the quiet-line rule. Shared by main.py (which polls real UARTs) and the
# simulator's board harness (which gets delivery callbacks), so both runtimes treat
# a line the same way.
#
# Quiet-line rule: a frame cut short (its sender died, or the line dropped bytes)
# would keep the deframer waiting for bytes that never come, swallowing the next
# frames as its payload. When the line has been silent for QUIET_US with a frame
# pending, that frame is given up and reported as garbage.
from firmware.wire import const

QUIET_US = const(100000)    # below the peer keepalive (200 ms): retries cannot keep a dead frame alive


class PortRx:
    def __init__(self, node, port, deframer):
        self.node = node
        self.port = port
        self.d = deframer
        self.last_rx = None
        self.garbage = 0
        self.frames = 0

    def data(self, now, chunk):
        """Bytes arrived at local time now."""
        d = self.d
        if self.last_rx is not None and now - self.last_rx > QUIET_US:
            d.abandon()               # anything pending predates a silence: it is dead
        self.last_rx = now
        d.feed(chunk)
        self._drain(now)

    def idle(self, now):
        """Nothing arrived (call when a poll finds the port empty)."""
        if self.last_rx is not None and now - self.last_rx > QUIET_US and self.d.abandon():
            self._drain(now)

    def _drain(self, now):
        d = self.d
        node = self.node
        port = self.port
        while d.next():
            self.frames += 1
            node.on_frame(now, port, d.mtype, d.flags, d.src, d.dst, d.group, d.seq, d.ack,
                          d.payload)
        e = (d.bad_magic + d.bad_version + d.bad_hcheck + d.bad_length + d.bad_crc
             + d.overflow + d.abandoned)
        if e != self.garbage:
            node.on_garbage(now, port, e - self.garbage)
            self.garbage = e
