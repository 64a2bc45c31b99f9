"""The core's trace hook (Node.trace): the events fire with the right (n, T) in a small core network,
and a node without a tracer behaves exactly like one with it."""
from corenet import Net, block_of
from firmware.wire import C_START_COPY, CS_DUPLEX, S_OK

EVENTS = ("ckpt_accepted", "ckpt_held", "release", "reset", "joined", "applied")


class Recorder:
    def __init__(self, net):
        self.net = net
        self.log = []            # (board id, event, n, t, was master)
        for b in net.boards.values():
            b.node.trace = self

    def __call__(self, node, event, n, t):
        assert event in EVENTS, event
        self.log.append((node.me, event, n, t, node.mac.is_master()))

    def of(self, event, board=None):
        return [(n, t) for me, e, n, t, _ in self.log if e == event and (board is None or me == board.id)]


def test_nodes_start_without_a_tracer():
    net = Net(pairs=1)
    assert all(b.node.trace is None for b in net.boards.values())


def test_checkpoint_round_events_carry_the_cut():
    net = Net(pairs=2)
    rec = Recorder(net)
    for i in range(6):
        net.write(net.prim(1 + i % 2), 0, i, block_of("w%d" % i))
        net.advance(150000)
    net.advance(1500000)
    accepted = {b: rec.of("ckpt_accepted", net.prim(b)) for b in (1, 2)}
    assert all(len(a) >= 3 for a in accepted.values())
    for b in (1, 2):
        # T strictly increases at each primary, as the stream's markers must
        ts = [t for n, t in accepted[b]]
        assert ts == sorted(set(ts))
        assert accepted[b][-1] == (net.prim(b).node.role.ckpt_n, net.prim(b).node.role.ckpt_t)
        # a secondary holds only cuts its primary accepted, and its held time is the last one
        held = rec.of("ckpt_held", net.sec(b))
        assert held and set(held) <= set(accepted[b])
        assert held[-1] == (net.sec(b).node.role.ckpt_n, net.sec(b).node.role.ckpt_t)
    # releases and resets are decided by the secondary master only, at cuts every secondary held
    releases = [(n, t) for me, e, n, t, m in rec.log if e == "release"]
    assert releases and all(m for me, e, n, t, m in rec.log if e in ("release", "reset"))
    held_all = set(rec.of("ckpt_held", net.sec(1))) & set(rec.of("ckpt_held", net.sec(2)))
    assert set(releases) <= held_all
    assert [t for n, t in releases] == sorted(set(t for n, t in releases))
    assert set(rec.of("reset")) <= set(releases)
    # every secondary applies each released cut and records it
    for b in (1, 2):
        applied = rec.of("applied", net.sec(b))
        assert set(applied) <= set(releases) and applied
        sb = net.sec(b).store.sb
        assert applied[-1] == (sb.applied_n, sb.applied_t)
    assert rec.of("joined") == []


def test_join_event_at_the_cut_the_primary_joined():
    net = Net(pairs=1, autostart=False)
    p, s = net.prim(1), net.sec(1)
    rec = Recorder(net)
    assert net.write(p, 0, 3, block_of("before the copy")) == S_OK
    assert net.command(p, C_START_COPY) == S_OK
    net.advance(3000000)
    assert p.store.sb.copy_state == CS_DUPLEX == s.store.sb.copy_state
    joined = rec.of("joined", s)
    assert len(joined) == 1
    assert joined[0] in rec.of("ckpt_accepted", p)
    assert joined[0][1] <= s.store.sb.applied_t
    assert net.read(s, 0, 3) == (S_OK, block_of("before the copy"))


def _run(trace):
    net = Net(pairs=2, seed=5)
    if trace:
        Recorder(net)
    for i in range(8):
        net.write(net.prim(1 + i % 2), 0, i, block_of("x%d" % i))
        net.advance(120000)
    net.hold(("peer", net.prim(2).id))
    net.advance(600000)
    net.release(("peer", net.prim(2).id))
    net.advance(1500000)
    return {bid: (bytes(b.disk.data), b.node.stats(net.now), b.node.next_deadline)
            for bid, b in net.boards.items()}


def test_a_tracer_changes_nothing():
    assert _run(trace=True) == _run(trace=False)
