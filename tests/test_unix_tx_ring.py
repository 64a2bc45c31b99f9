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


MP_SCRIPT = r"""
import gc, sys
sys.path.insert(0, "boards/unix")
import unix_hal

class Clock:
    def __init__(self):
        self.t = 1000
    def now(self):
        return self.t
    def sleep_us(self, us):
        if us > 0:
            self.t += us

class Line:
    def __init__(self):
        self.n = 0
    def write(self, b):
        self.n += len(b)
        return len(b)

def run(port, clock, line, frame, rounds, grown):
    # rounds of a burst of 10 frames (far more than the line takes meanwhile); the heap in
    # use is sampled at the top of each burst, when the most bytes wait
    for _ in range(rounds):
        for _ in range(10):
            port.write(frame)
        gc.collect()
        grown[0] = max(grown[0], gc.mem_alloc() - grown[1])
        while port.tx_pending():
            clock.sleep_us(1000)
            port.pump(clock.now() * 64)

out = []
for name, ring, queue, size in (("peer", 4372, True, 4116), ("bus", 512, False, 300)):
    clock = Clock()
    line = Line()
    port = unix_hal.Port(line, 115200, clock, name, ring=ring, queue=queue, sleep_us=clock.sleep_us)
    frame = bytes(size)
    grown = [0, 0]
    run(port, clock, line, frame, 1, [0, 0])
    gc.collect()
    grown[1] = gc.mem_alloc()
    run(port, clock, line, frame, 40, grown)
    out.append("%s %d %d" % (name, grown[0], line.n))
print(" ".join(out))
"""


def test_the_ring_does_not_grow_in_micropython():
    """In the MicroPython unix port itself: bursts of 10 frames through each kind of port, and the
    heap in use after a collection, sampled at the top of each burst, stays where it was (the old
    queue grew by every byte not yet on the line: 41 KB for 10 peer frames)."""
    import shutil
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mp = os.path.join(root, ".venv", "bin", "micropython")
    if not os.path.exists(mp):
        mp = shutil.which("micropython")
    if mp is None:
        pytest.skip("no MicroPython unix port")
    p = subprocess.run([mp, "-c", MP_SCRIPT], cwd=root, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    words = p.stdout.split()
    got = {words[i]: (int(words[i + 1]), int(words[i + 2])) for i in range(0, len(words), 3)}
    assert got["peer"][1] == 410 * 4116 and got["bus"][1] == 410 * 300
    assert got["peer"][0] < 1024 and got["bus"][0] < 1024, got
