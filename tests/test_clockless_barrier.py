# Clockless mode's checkpoint barrier: a write stamped T + 1 is acknowledged only once every
# primary of the group has taken checkpoint T, so a checkpoint broadcast that reaches one board
# late (a bus collision garbled it, a board read its bus late) cannot put a later write in a cut
# without an earlier acknowledged one.
import pytest

from host_tools.check.workload import Workload
from host_tools.sim.drills import run_ops
from host_tools.sim.world import World
from firmware import wire
from test_clock_bound import CutAudit


def test_failback_drill_with_collisions_recovers_a_consistent_cut():
    # the fault campaign's find: p0 took checkpoint 18 and acknowledged a write stamped 19; p2
    # missed the broadcast (a collision) and stamped a later write 18, inside cut 18
    r = run_ops("failback", seed=0, pairs=4, mode="clockless", faults="collision")
    assert r["safety"] == {"violations": 0, "lost_before_cut": 0, "sites_differ": 0}, r["safety"]
    assert r["ok"], (r["verdict"], r["liveness"], r["op_failures"])
    assert r["writes_completed"] > 300


def _audit(seed, faults, seconds=4.0):
    # unpaced dependent chains across boards (100 us host round trip): a checkpoint that one
    # board takes a few hundred us after another is enough to break a cut without the barrier
    d_us = int(seconds * 1e6)
    wl = Workload(kind="random", pairs=4, vols=1, blocks=128, rate=0, duration_us=d_us,
                  concurrency=2, seed=seed)
    w = World(seed=seed, faults=faults, workload=wl, pairs=4, duration_us=d_us + 1500000,
              disaster=False, vol_blocks=128, journal_slots=256, peer_baud=921600,
              host_latency_us=50, workload_start_us=1000000,
              config={"mode": wire.MODE_CLOCKLESS, "peer_timeout_us": 1000000})
    a = CutAudit(w)
    w.run()
    assert len(a.cuts) > 10 and len(a.stamps) > 300
    return len(a.inconsistent(wl.log)), len(a.cuts)


@pytest.mark.parametrize("faults", ["none", "collision"])
def test_every_clockless_cut_is_consistent(faults):
    # before the barrier: 2-6 inconsistent cuts of 28 on each of these seeds
    res = [_audit(s, faults) for s in (0, 1)]
    assert sum(b for b, n in res) == 0, res


def test_a_member_that_missed_the_checkpoint_holds_back_the_masters_replies():
    # step by step (tests/corenet.py): the bus frames to p2 are held while the master cuts T,
    # so p2 neither takes T nor sees the beacons that confirm it
    from corenet import Net, block_of
    from firmware.wire import S_NOT_READY, S_OK, T_H_WRITE
    net = Net(pairs=2, mode=wire.MODE_CLOCKLESS, ckpt_interval_us=10 ** 9)
    net.advance(1000000)
    p1, p2 = net.prim(1), net.prim(2)
    assert p1.node.mac.is_master()
    net.hold(("busto", p2.id))
    T = p1.node.role.ckpt_t + 1
    p1.node.role.next_ckpt = 0
    net.advance(60000)
    assert p1.node.role.ckpt_t == T and p2.node.role.ckpt_t == T - 1
    # the master's write is stamped T + 1: its reply waits for p2 to take T
    tag = net.request(p1, T_H_WRITE, bytes([0]) + (1).to_bytes(4, "little") + block_of("m"))
    net.advance(30000)
    assert tag not in p1.replies
    # p2 still holds a lease from a beacon before the hold: its write is stamped T (in cut T)
    assert net.write(p2, 0, 2, block_of("a")) == S_OK
    # three cycles without a beacon that counts it: no lease, journaled writes refused
    net.advance(150000)
    assert net.write(p2, 0, 3, block_of("b")) == S_NOT_READY
    assert tag not in p1.replies
    # the checkpoint (and the beacons) reach p2: it reports T, the master confirms it
    net.release(("busto", p2.id))
    net.advance(200000)
    assert p2.node.role.ckpt_t >= T
    assert p1.replies[tag][0] == S_OK
    assert net.write(p2, 0, 4, block_of("c")) == S_OK
