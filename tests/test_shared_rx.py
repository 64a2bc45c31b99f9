"""The ports' receive path with one frame scratch shared by every port's deframer (heap diet,
issue #14): partial frames on one port survive frames arriving on another, a scratch too small
is refused, and firmware/main.py's Board builds its deframers that way."""
import random

import pytest

from firmware import wire
from firmware.deframer import Deframer
from firmware.portrx import PortRx
from protocol import hostcodec


def _frames(src, n, big):
    out = []
    for k in range(n):
        plen = (k * 977) % (big + 1)
        payload = bytes((src * 31 + k + i) & 0xFF for i in range(plen))
        out.append(hostcodec.encode(wire.T_WRITE_BATCH, src, 9, payload, seq=k))
    return out


class Sink:
    def __init__(self):
        self.got = {}
        self.garbage = 0

    def on_frame(self, now, port, mtype, flags, src, dst, group, seq, ack, payload):
        # the payload is only valid during the call: copy it, as the node consumes it there
        self.got.setdefault(port, []).append(bytes(payload))

    def on_garbage(self, now, port, n):
        self.garbage += n


def _ports(shared):
    sizes = (wire.MAX_HOST_PAYLOAD, wire.MAX_BUS_PAYLOAD, wire.MAX_PAYLOAD)
    scratch = Deframer.scratch_for(sizes) if shared else None
    sink = Sink()
    rx = [PortRx(sink, p, Deframer(sizes[p], scratch=scratch)) for p in range(3)]
    return sink, rx, scratch


@pytest.mark.parametrize("seed", range(6))
def test_interleaved_partial_frames_from_three_ports_share_one_scratch(seed):
    rnd = random.Random(seed)
    streams = [_frames(1, 12, wire.MAX_HOST_PAYLOAD), _frames(2, 12, wire.MAX_BUS_PAYLOAD),
               _frames(3, 8, wire.MAX_PAYLOAD)]
    want = {p: [f[wire.HDR_SIZE:-4] for f in streams[p]] for p in range(3)}
    data = [b"".join(s) for s in streams]
    sink, rx, scratch = _ports(shared=True)
    assert all(r.d._s is scratch for r in rx)
    pos = [0, 0, 0]
    now = 0
    while any(pos[p] < len(data[p]) for p in range(3)):
        p = rnd.randrange(3)
        if pos[p] >= len(data[p]):
            continue
        k = rnd.randint(1, 512)           # main.py reads at most 512 bytes per poll
        rx[p].data(now, memoryview(data[p])[pos[p]:pos[p] + k])
        pos[p] += k
        now += 10
    assert sink.got == want and sink.garbage == 0
    assert all(r.d.overflow == 0 for r in rx)


def test_a_scratch_smaller_than_the_deframers_capacity_is_refused():
    with pytest.raises(ValueError):
        Deframer(wire.MAX_PAYLOAD, scratch=bytearray(wire.MAX_FRAME))
    ok = Deframer.scratch_for((wire.MAX_PAYLOAD,))
    assert len(ok) == Deframer(wire.MAX_PAYLOAD).capacity


def test_the_board_builds_one_scratch_for_its_ports():
    from tests.test_main_loop import FakeHal
    from firmware import main
    b = main.Board(FakeHal())
    scratches = {id(r.d._s) for r in b.rx_ports}
    assert len(scratches) == 1
