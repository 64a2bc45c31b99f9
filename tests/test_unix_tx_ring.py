"""The unix HAL's transmitter (boards/unix/unix_hal.py, Port): a fixed ring allocated once, like
a UART's TX ring, paced at the line rate. A full ring blocks the writer until the line has
drained room (the site bus and the host port, as rp2_hal's BusPort and a blocking UART write);
the peer port never blocks: frames that do not fit wait, whole, for room (rp2_hal's PeerPort).
Run under CPython with a fake clock and a fake line."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "boards", "unix"))
import unix_hal  # noqa: E402


class Clock:
    def __init__(self):
        self.t = 1000

    def now(self):
        return self.t

    def sleep_us(self, us):
        if us > 0:
            self.t += us


class Line:
    """The pty: takes every byte, remembers when (clock time) each write happened."""

    def __init__(self, clock):
        self.clock = clock
        self.data = bytearray()
        self.writes = []

    def write(self, b):
        self.data += bytes(b)
        self.writes.append((self.clock.t, len(b)))
        return len(b)


def frames(n, size):
    return [bytes((k * 7 + i) & 0xFF for i in range(size)) for k in range(n)]


def drain(port, clock, until_us=10 ** 7):
    end = clock.t + until_us
    while port.tx_pending() and clock.t < end:
        clock.sleep_us(1000)
        port.pump(clock.now() * 64)


@pytest.mark.parametrize("ring", [64, 1000])
def test_a_full_ring_blocks_the_writer_until_the_line_drains(ring):
    clock = Clock()
    line = Line(clock)
    port = unix_hal.Port(line, 115200, clock, "bus", ring=ring, sleep_us=clock.sleep_us)
    storage = port.ring
    sent = frames(12, 300)
    t0 = clock.t
    for f in sent:
        assert port.write(f) == len(f)
        # never more waiting than the ring holds
        assert port.tx_pending() <= ring
    drain(port, clock)
    assert bytes(line.data) == b"".join(sent)
    # 3600 bytes at 115200 baud (86.8 us a byte) cannot leave before the line took them
    assert clock.t - t0 >= (len(line.data) - ring) * 86
    assert port.ring is storage and len(port.ring) == ring and port.blocked_us > 0


def test_the_peer_port_never_blocks_and_keeps_whole_frames_in_order():
    clock = Clock()
    line = Line(clock)
    port = unix_hal.Port(line, 115200, clock, "peer", ring=4372, queue=True,
                         sleep_us=clock.sleep_us)
    storage = port.ring
    sent = frames(5, 4116)
    t0 = clock.t
    for f in sent:
        port.write(f)
    assert clock.t == t0                       # the loop was never held up
    assert port.queued == 4 and port.tx_pending() == 5 * 4116
    drain(port, clock)
    assert bytes(line.data) == b"".join(sent)
    assert port.ring is storage and len(port.ring) == 4372 and port.blocked_us == 0


def test_pacing_matches_the_line_rate():
    clock = Clock()
    line = Line(clock)
    port = unix_hal.Port(line, 115200, clock, "bus", ring=512, sleep_us=clock.sleep_us)
    port.write(bytes(200))
    port.pump(clock.now() * 64)
    assert len(line.data) == 0                 # nothing can have left yet
    clock.sleep_us(100 * 87)                   # 100 character times (86.8 us each)
    port.pump(clock.now() * 64)
    assert 99 <= len(line.data) <= 101
    drain(port, clock)
    assert len(line.data) == 200 and port.due64() == -1
