"""The emulated rig's transmitters send whole frames: a frame's bytes reach the line together once
its last byte's line time has passed, never earlier (host_tools/rig/board.py PtyPort, the unix
HAL's Port); the hub still counts two overlapping transmissions as a collision when the first is
already over by the time the second arrives (host_tools/rig/hub.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "boards", "unix"))
import unix_hal  # noqa: E402
from host_tools.rig import board, hub  # noqa: E402

BT = 10000000.0 / 115200            # one byte at 115200 baud, us


class FakeClock:
    def __init__(self):
        self.t = 1000

    def us(self):
        return self.t

    def now(self):
        return self.t

    def sleep_us(self, us):
        if us > 0:
            self.t += us


def _pty_port(clock):
    r, w = os.pipe()
    os.set_blocking(r, False)
    return board.PtyPort(w, 115200, clock, "bus", frames=True), r


def _read(fd):
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


def test_pty_port_sends_a_frame_whole_at_its_end_and_never_before():
    clock = FakeClock()
    port, r = _pty_port(clock)
    a, b = bytes(range(41)), bytes(range(100, 132))
    t0 = clock.t
    port.write(a)
    port.write(b)                   # queued behind a
    assert port.due() == t0 + 41 * BT
    got = []
    for step in range(0, 8000, 50):
        clock.t = t0 + step
        port.pump(clock.t)
        d = _read(r)
        if d:
            got.append((step, d))
    # one write per frame, each at the first pump after its last byte's line time
    assert [d for _, d in got] == [a, b]
    assert got[0][0] >= 41 * BT and got[0][0] - 41 * BT < 50
    assert got[1][0] >= 73 * BT and got[1][0] - 73 * BT < 50
    assert not port.q and not port.ends


def test_pty_port_sends_what_is_due_when_the_loop_polls_it():
    clock = FakeClock()
    port, r = _pty_port(clock)
    port.write(b"x" * 20)
    clock.t += 20 * BT + 1
    assert port.read_into(bytearray(16)) == 0     # nothing to read here, but the frame left
    assert _read(r) == b"x" * 20


def _unix_port(ring, clock, queue=False):
    class Line:
        def __init__(self):
            self.writes = []

        def write(self, b):
            self.writes.append((clock.t, bytes(b)))
            return len(b)

        def readinto(self, buf):
            return None
    line = Line()
    return unix_hal.Port(line, 115200, clock, "bus", ring=ring, queue=queue,
                         sleep_us=clock.sleep_us, frames=True), line


def test_unix_port_sends_whole_frames_at_their_end():
    clock = FakeClock()
    port, line = _unix_port(512, clock)
    t0 = clock.t
    port.write(bytes(41))
    port.write(bytes(range(32)))
    for step in range(0, 8000, 50):
        clock.t = t0 + step
        port.pump(clock.t * 64)
    assert [len(d) for _, d in line.writes] == [41, 32]
    assert line.writes[0][0] - t0 >= 41 * BT and line.writes[1][0] - t0 >= 73 * BT
    assert port.nf == 0 and port.rlen == 0


def test_unix_port_frame_larger_than_its_ring_still_goes_out_at_the_line_rate():
    # a host reply longer than the ring: the writer waits for room, the bytes leave in grains
    clock = FakeClock()
    port, line = _unix_port(64, clock)
    t0 = clock.t
    port.write(bytes(200))
    while port.tx_pending():
        clock.sleep_us(1000)
        port.pump(clock.t * 64)
    assert sum(len(d) for _, d in line.writes) == 200
    sent = 0
    for t, d in line.writes:        # never ahead of the line
        sent += len(d)
        assert sent <= (t - t0) / BT + 1


def test_unix_port_queue_mode_keeps_frames_whole():
    clock = FakeClock()
    port, line = _unix_port(300, clock, queue=True)
    t0 = clock.t
    for n in (200, 200, 50):        # the second waits whole in the queue for ring room
        port.write(bytes(n))
    for step in range(0, 60000, 100):
        clock.t = t0 + step
        port.pump(clock.t * 64)
    at = {}                         # what reached the line at each instant (a frame across
    for t, d in line.writes:        # the ring's end is two writes in one pump)
        at[t] = at.get(t, 0) + len(d)
    assert list(at.values()) == [200, 200, 50]


class _Ep:
    def __init__(self, name):
        self.board = name
        self.tx_mute = False
        self.got = bytearray()

    def deliver(self, data):
        self.got += data


def test_hub_counts_a_collision_with_a_transmission_already_over():
    line = hub.Line("bus:P", 115200, True)
    a, b, c = _Ep("p0"), _Ep("p1"), _Ep("p2")
    line.members = [a, b, c]
    t = 1000000
    line.send(a, bytes(41), t)                  # a's frame: [t - 41 BT, t]
    line.run(t + 5000)                          # delivered and over
    assert not line.active and line.collisions == 0
    # b's frame arrives whole 3 ms later: it started 41 BT before, inside a's
    line.send(b, bytes(41), t + 3000)
    assert line.collisions == 1
    assert c.got[41:] != bytes(41)              # b's overlapping bytes garbled for receivers
