"""One operator procedure, two transports: the disaster drill's steps of host_tools/ops/ (the
site lost, ops.failover.failover, read-back, the checker's verdict) run unchanged on the
simulator (SimTransport) and on an emulated rig (SerialTransport over `arcopy rig up` boards),
and both recover consistently. Also: the verdict keeps a pair that refused failover apart."""
import time

import pytest

from test_rig_e2e import cli, drain, rig  # noqa: F401  (rig is a fixture)

from host_tools import ops
from host_tools.check import verdict
from host_tools.check.workload import Workload, WorkloadLog
from host_tools.rig import manager as rigmgr
from host_tools.rig import records
from host_tools.rig import session
from host_tools.rig import workload as rigwl
from host_tools.sim.scenario import CheckpointLog
from host_tools.sim.transport import SimTransport
from host_tools.sim.world import World
from host_tools.transport import Transport
from host_tools.transport.serial_client import SerialTransport
from firmware import wire


def operator_drill(t, site, pairs, log, nvol, vol_blocks, disaster_us=None, cut_at=None, wait_s=0.0):
    """What an operator does after the disaster, over any Transport and Site: lose the
    primaries, let the secondaries notice, fail over, read back, judge."""
    assert isinstance(t, Transport)
    killed = ops.drill.disaster(site, [pairs[i][0] for i in sorted(pairs)])
    t.sleep(wait_s)
    secs = {i: pairs[i][1] for i in pairs}
    out = ops.drill.recover(t, secs, log, nvol, vol_blocks, disaster_us=disaster_us, cut_at=cut_at)
    out["killed"] = killed
    return out


def assert_recovered(out, pairs):
    fo, v, rep = out["failover"], out["verdict"], out["report"]
    assert sorted(out["killed"]) == sorted(p for p, _ in pairs.values())
    assert fo["ok"], fo
    assert sorted(fo["recovered"]) == sorted(s for _, s in pairs.values()), fo
    assert set(fo["codes"].values()) == {wire.S_OK}
    assert v["ok"] and v["verdict"] == "ok", v
    assert v["safety"] == {"violations": 0, "lost_before_cut": 0, "sites_differ": 0}
    assert v["liveness"] == {"no_image": 0, "no_image_yet": 0, "timeouts": 0, "no_common_cut": False}
    assert rep.consistent and rep.writes_recovered > 0, rep.summary()
    assert out["reads"]["failed"] == 0


def test_the_same_failover_procedure_recovers_on_the_simulator_and_on_the_rig(rig):  # noqa: F811
    # -- the simulator: virtual time, the world's host ports ---------------------------------
    pairs = 2
    wl = Workload(kind="ims", pairs=pairs, vols=1, blocks=64, rate=40.0, duration_us=4000000,
                  concurrency=4, seed=5)
    world = World(seed=5, faults="none", workload=wl, pairs=pairs, duration_us=6000000,
                  vol_blocks=64, journal_slots=256, disaster=False)
    ckpts = CheckpointLog(world)
    world.run(5500000)                         # the workload ended at 5 s; copy drained
    world.driver.stop()
    world.disaster_time = world.now
    wl.log.close(world.now)
    sim_pairs = {i: ("p%d" % i, "s%d" % i) for i in range(pairs)}
    out = operator_drill(SimTransport(world), world, sim_pairs, wl.log, 1, 64,
                         disaster_us=world.disaster_time, cut_at=ckpts.first.get, wait_s=3.0)
    ckpts.close()
    assert_recovered(out, sim_pairs)
    assert out["failover"]["target_n"] > 0

    # -- the emulated rig: real firmware processes, pseudo-terminals, wall-clock time ---------
    r = rig("b", "--pairs", 2, "--vol-blocks", 64)
    cli("start-copy", "--dir", r["dir"])
    wl = rigwl.make_workload(r, "ims", 40.0, 1.5, 5)
    log = rigwl.SerialDriver(r, wl).run()
    records.save_log(r, log)
    drain(r)
    t = SerialTransport.from_rig(r)
    try:
        disaster_us = rigwl.mono_us()
        out = operator_drill(t, rigmgr.RigControl(r), session.pairs(r), log, r["nvol"],
                             r["vol_blocks"], disaster_us=disaster_us, wait_s=1.5)
    finally:
        t.close()
    assert_recovered(out, session.pairs(r))
    for name in ("s0", "s1"):
        with SerialTransport.from_rig(r) as t2:
            assert ops.status.get(t2, name)["copy_state"] == wire.CS_FAILED_OVER


def test_a_pair_that_refused_failover_is_liveness_and_its_volume_is_not_judged():
    """The raw volume of a pair without an image holds anything (a resync writes copies in
    place): were it judged, its missing writes would read as violations of the whole group."""
    log = WorkloadLog(writer=1)
    for k, (pair, blk) in enumerate([(0, 1), (1, 1), (0, 2), (1, 2)]):
        log.issue(k + 1, pair, 0, blk, 1000 * (k + 1), dep=k or None)
        log.complete(k + 1, 1000 * (k + 1) + 500)
    log.close(10000)
    vol0 = {1: log.payload(1), 2: log.payload(3)}
    images = {0: {0: vol0}, 1: {0: {}}}               # pair 1: a resync, nothing in place
    rep, v = verdict.judge(log, images, recovered=[0], no_image=[1])
    assert rep.consistent and rep.writes_recovered == 2
    assert v["safety"] == {"violations": 0, "lost_before_cut": 0, "sites_differ": 0}
    assert v["liveness"]["no_image"] == 1 and v["verdict"] == "liveness" and not v["ok"]
    rep, v = verdict.judge(log, images, recovered=[0, 1])    # judged as if it were an image
    assert v["verdict"] == "safety" and v["safety"]["violations"] > 0
    rep, v = verdict.judge(log, images, recovered=[0], no_image_yet=[1])
    assert v["ok"] and v["verdict"] == "ok" and v["liveness"]["no_image_yet"] == 1


def test_verdict_counts_writes_lost_before_the_cut_as_safety():
    log = WorkloadLog(writer=1)
    log.issue(1, 0, 0, 3, 1000)
    log.complete(1, 1500)
    log.close(900000)
    rep, v = verdict.judge(log, {0: {0: {}}}, recovered=[0], cut_at_us=100000)
    assert v["verdict"] == "safety" and v["safety"]["lost_before_cut"] == 1
    assert v["lost_before_cut_ids"] == [1]
    rep, v = verdict.judge(log, {0: {0: {}}}, recovered=[0], cut_at_us=1500 + verdict.SKEW_MARGIN_US)
    assert v["ok"], v                                 # within the skew margin of the cut


@pytest.mark.parametrize("events", [["ckpt_accepted"]])
def test_world_tracer_sees_checkpoints_through_reboots_and_can_be_removed(events):
    world = World(seed=3, faults="none", pairs=2, duration_us=3000000, disaster=False)
    seen = []
    remove = world.add_tracer(lambda b, now, ev, n, t: seen.append((b, now, ev, n, t)))
    world.run(1500000)
    first = [x for x in seen if x[2] in events]
    assert first and all(x[0].startswith("p") for x in first)
    world.kill(["p0"])
    world.restart(["p0"])
    world.run(2500000)
    assert any(x[0] == "p0" and x[1] > 1500000 for x in seen), "the tracer survives a reboot"
    remove()
    n = len(seen)
    world.run(3000000)
    assert len(seen) == n
    assert all(b.node is None or b.node.trace is None for b in world.boards.values())


def test_sim_transport_times_out_in_virtual_time_and_a_destroyed_board_is_gone():
    from host_tools import transport
    world = World(seed=1, faults="none", pairs=1, duration_us=2000000, disaster=False)
    t = SimTransport(world, timeout=0.5)
    world.run(1000000)
    assert ops.status.get(t, "s0")["role"] == wire.ROLE_SECONDARY
    world.kill(["s0"])
    t0 = t.now()
    with pytest.raises(transport.Timeout):
        t.request("s0", wire.T_H_STATUS, idempotent=True)
    assert t.now() - t0 == pytest.approx(0.5, abs=0.01)
    world.boards["p0"].destroy()
    t0 = time.monotonic()
    with pytest.raises(transport.BoardGone):
        t.request("p0", wire.T_H_STATUS)
    assert time.monotonic() - t0 < 1.0
