"""SET_MODE and SET_POLICY at run time (protocol/SPEC.md section 6): a primary in sync mode
completes a host write only on its secondary's ACK, a secondary in sync mode rolls forward
at failover; both commands are saved in the superblock, win over the config file at boot
and show in STATUS.

Driven through tests/corenet.py (real Node objects, real codec and deframers, RAM disks),
plus one run of the simulator that switches modes under a workload and is judged by the
consistency checker."""
import pytest

from corenet import Net, block_of
from firmware.wire import (BLOCK_SIZE, C_SET_MODE, C_SET_POLICY, MODE_CLOCK, MODE_CLOCKLESS,
                           MODE_SYNC, POLICY_CONTINUE, POLICY_FREEZE, S_BAD_COMMAND, S_BAD_STATE,
                           S_OK, S_WRONG_ROLE, T_H_WRITE)
from firmware.store import SB_SAVED
from firmware import codec

FIELDS = codec.STATUS_FIELDS


def st(net, board):
    return dict(zip(FIELDS, net.status(board)))


def vol_block(board, blk, vol=0):
    buf = bytearray(BLOCK_SIZE)
    board.store.read_block(vol, blk, buf)
    return bytes(buf)


def send_write(net, board, blk, data, vol=0):
    return net.request(board, T_H_WRITE, bytes([vol]) + blk.to_bytes(4, "little") + data)


def write_done(net, board, blk, data, limit_us=1000000):
    """A host write, waited for: -> its status (None: no reply within limit_us)."""
    tag = send_write(net, board, blk, data)
    waited = 0
    while tag not in board.replies and waited < limit_us:
        net.advance(1000)
        waited += 1000
    return board.replies.get(tag, (None, b""))[0]


def set_group_mode(net, mode):
    """The operator's order (SPEC section 6): to sync, every primary, then (once a cut
    taken after the switch is applied) every secondary; to clock, every secondary first."""
    pairs = range(1, net.pairs + 1)
    first, then = ([net.prim(p) for p in pairs], [net.sec(p) for p in pairs])
    if mode != MODE_SYNC:
        first, then = then, first
    for b in first:
        assert net.command(b, C_SET_MODE, mode) == S_OK
    net.advance(1500000)                      # cuts after the switch are released and applied
    for b in then:
        assert net.command(b, C_SET_MODE, mode) == S_OK


def test_status_shows_the_mode_and_policy_set_and_a_reboot_keeps_them():
    net = Net(pairs=1)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    assert (st(net, p)["mode"], st(net, s)["mode"]) == (MODE_CLOCK, MODE_CLOCK)
    assert st(net, s)["policy"] == POLICY_FREEZE
    set_group_mode(net, MODE_SYNC)
    assert net.command(s, C_SET_POLICY, POLICY_CONTINUE) == S_OK
    assert (st(net, p)["mode"], st(net, s)["mode"]) == (MODE_SYNC, MODE_SYNC)
    assert st(net, s)["policy"] == POLICY_CONTINUE
    assert s.node.role.policy == POLICY_CONTINUE
    assert (s.store.sb.mode, s.store.sb.policy) == (MODE_SYNC | SB_SAVED, POLICY_CONTINUE | SB_SAVED)
    # a retry writes nothing
    gen = s.store.sb.generation
    assert net.command(s, C_SET_MODE, MODE_SYNC) == S_OK
    assert net.command(s, C_SET_POLICY, POLICY_CONTINUE) == S_OK
    assert s.store.sb.generation == gen
    # reboot with the config file's values: the saved ones win
    for b in (p, s):
        net.kill(b)
        b.cfg.mode, b.cfg.policy = MODE_CLOCK, POLICY_FREEZE
        net.reboot(b)
    net.advance(1000000)
    assert (st(net, p)["mode"], st(net, s)["mode"]) == (MODE_SYNC, MODE_SYNC)
    assert st(net, s)["policy"] == POLICY_CONTINUE
    assert s.node.role.policy == POLICY_CONTINUE
    # the primary still waits for its peer after the reboot
    net.hold(("peer", p.id))
    tag = send_write(net, p, 3, block_of("after-boot"))
    net.advance(50000)
    assert tag not in p.replies
    net.release(("peer", p.id))
    net.advance(50000)
    assert p.replies[tag][0] == S_OK
    # and back: saved as clock, still winning over a config that says sync
    set_group_mode(net, MODE_CLOCK)
    assert net.command(s, C_SET_POLICY, POLICY_FREEZE) == S_OK
    for b in (p, s):
        net.kill(b)
        b.cfg.mode, b.cfg.policy = MODE_SYNC, POLICY_CONTINUE
        net.reboot(b)
    assert (st(net, p)["mode"], st(net, s)["mode"]) == (MODE_CLOCK, MODE_CLOCK)
    assert st(net, s)["policy"] == POLICY_FREEZE


def test_a_store_never_set_keeps_the_config_files_mode_and_policy():
    net = Net(pairs=1, mode=MODE_SYNC, policy=POLICY_CONTINUE)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    assert (s.store.sb.mode, s.store.sb.policy) == (0, 0)
    assert (st(net, p)["mode"], st(net, s)["mode"], st(net, s)["policy"]) == \
        (MODE_SYNC, MODE_SYNC, POLICY_CONTINUE)
    # the same value by command: now the operator's, saved over a config that changes later
    assert net.command(p, C_SET_MODE, MODE_SYNC) == S_OK
    assert net.command(s, C_SET_POLICY, POLICY_CONTINUE) == S_OK
    assert (p.store.sb.mode, s.store.sb.policy) == (MODE_SYNC | SB_SAVED, POLICY_CONTINUE | SB_SAVED)
    gen = p.store.sb.generation
    assert net.command(p, C_SET_MODE, MODE_SYNC) == S_OK
    assert p.store.sb.generation == gen
    for b in (p, s):
        net.kill(b)
        b.cfg.mode, b.cfg.policy = MODE_CLOCK, POLICY_FREEZE
        net.reboot(b)
    assert (st(net, p)["mode"], st(net, s)["policy"]) == (MODE_SYNC, POLICY_CONTINUE)
    assert st(net, s)["mode"] == MODE_CLOCK                  # never commanded: the config's


def test_bad_arguments_wrong_role_and_clockless_boards():
    net = Net(pairs=1)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    gen = (p.store.sb.generation, s.store.sb.generation)
    for b in (p, s):
        for arg in (MODE_CLOCKLESS, 3, 0xFFFFFFFF):
            assert net.command(b, C_SET_MODE, arg) == S_BAD_COMMAND
    assert net.command(s, C_SET_POLICY, 2) == S_BAD_COMMAND
    # the argument is checked before the role (SPEC section 5's order)
    assert net.command(p, C_SET_POLICY, 2) == S_BAD_COMMAND
    assert net.command(p, C_SET_POLICY, POLICY_CONTINUE) == S_WRONG_ROLE
    assert (p.store.sb.generation, s.store.sb.generation) == gen     # nothing was written
    assert (st(net, p)["mode"], st(net, s)["mode"]) == (MODE_CLOCK, MODE_CLOCK)
    # clockless stamping is the whole site's configuration: never switched at run time
    cl = Net(pairs=1, mode=MODE_CLOCKLESS)
    cl.advance(1000000)
    for b in (cl.prim(1), cl.sec(1)):
        assert cl.command(b, C_SET_MODE, MODE_SYNC) == S_BAD_STATE
        assert cl.command(b, C_SET_MODE, MODE_CLOCK) == S_BAD_STATE
        assert cl.command(b, C_SET_MODE, MODE_CLOCKLESS) == S_BAD_COMMAND
        assert st(cl, b)["mode"] == MODE_CLOCKLESS


def test_sync_write_completes_on_the_peers_ack_and_a_switch_to_clock_completes_waiters():
    net = Net(pairs=1)
    net.advance(1000000)
    p = net.prim(1)
    net.hold(("peer", p.id))
    # clock: complete at once, whatever the link does
    assert net.write(p, 0, 1, block_of("async")) == S_OK
    assert net.command(p, C_SET_MODE, MODE_SYNC) == S_OK
    tag = send_write(net, p, 2, block_of("sync"))
    net.advance(300000)
    assert tag not in p.replies                   # durable here, not yet at the secondary
    net.release(("peer", p.id))
    net.advance(100000)
    assert p.replies[tag][0] == S_OK
    assert p.node.role.acked_lseq >= p.node.role.next_lseq - 1
    # a write waiting for its ACK when the primary goes back to clock completes at once
    net.hold(("peer", p.id))
    tag = send_write(net, p, 3, block_of("waiting"))
    net.advance(100000)
    assert tag not in p.replies
    assert net.command(p, C_SET_MODE, MODE_CLOCK) == S_OK
    assert p.replies[tag][0] == S_OK
    assert not p.node.role.sync_wait
    assert net.write(p, 0, 4, block_of("async again")) == S_OK
    net.release(("peer", p.id))
    net.advance(2000000)
    assert vol_block(net.sec(1), 3) == block_of("waiting")


def test_async_to_sync_to_async_on_a_running_pair_group():
    net = Net(pairs=2)
    net.advance(1000000)
    for p in (1, 2):
        for b in range(4):
            assert net.write(net.prim(p), 0, b, block_of("base%d.%d" % (p, b))) == S_OK
    set_group_mode(net, MODE_SYNC)
    for p in (1, 2):
        for b in range(4, 8):
            assert write_done(net, net.prim(p), b, block_of("sync%d.%d" % (p, b))) == S_OK
    net.advance(2000000)
    # back to clock, secondaries first: writes complete at once again
    set_group_mode(net, MODE_CLOCK)
    net.hold(("peer", net.prim(1).id))
    assert net.write(net.prim(1), 0, 9, block_of("x")) == S_OK
    net.release(("peer", net.prim(1).id))
    net.advance(2000000)
    for p in (1, 2):
        for b in (0, 5):
            assert vol_block(net.sec(p), b) == vol_block(net.prim(p), b)


def test_failover_in_sync_mode_recovers_every_acknowledged_write():
    net = Net(pairs=2)
    net.advance(1000000)
    set_group_mode(net, MODE_SYNC)
    for p in (1, 2):
        for b in range(6):
            assert write_done(net, net.prim(p), b, block_of("old%d.%d" % (p, b))) == S_OK
    net.advance(1000000)
    # acknowledged writes after the newest released cut: journaled at the secondary only
    acked = {}
    for i, p in enumerate((1, 2, 1, 2)):
        blk = 10 + i
        data = block_of("acked%d.%d" % (p, blk))
        assert write_done(net, net.prim(p), blk, data) == S_OK
        acked[(p, blk)] = data
    for (p, blk), data in acked.items():
        assert vol_block(net.sec(p), blk) != data          # not applied: beyond the release
    net.disaster()
    net.advance(3000000)
    assert set(net.failover().values()) == {S_OK}
    for (p, blk), data in acked.items():
        assert vol_block(net.sec(p), blk) == data
    for p in (1, 2):
        for b in range(6):
            assert vol_block(net.sec(p), b) == block_of("old%d.%d" % (p, b))


def test_after_switching_back_to_clock_the_failover_recovers_the_released_cut():
    net = Net(pairs=2)
    net.advance(1000000)
    set_group_mode(net, MODE_SYNC)
    set_group_mode(net, MODE_CLOCK)
    for p in (1, 2):
        for b in range(6):
            assert net.write(net.prim(p), 0, b, block_of("cut%d.%d" % (p, b))) == S_OK
    net.advance(2000000)
    cut = [net.sec(p).store.sb.applied_t for p in (1, 2)]
    # acknowledged at once, shipped, but never inside a released cut
    for p in (1, 2):
        assert net.write(net.prim(p), 0, 2, block_of("late%d" % p)) == S_OK
    net.advance(5000)
    assert all(net.sec(p).store.j_depth() for p in (1, 2))
    net.disaster()
    net.advance(3000000)
    assert set(net.failover().values()) == {S_OK}
    ts = [net.sec(p).store.sb.applied_t for p in (1, 2)]
    assert ts[0] == ts[1] >= max(cut)                  # one cut for the whole group
    for p in (1, 2):
        for b in range(6):
            assert vol_block(net.sec(p), b) == block_of("cut%d.%d" % (p, b))


def test_secondary_goes_sync_only_once_no_asynchronous_record_is_held():
    net = Net(pairs=1)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    assert net.write(p, 0, 1, block_of("async")) == S_OK
    net.advance(5000)
    assert s.node.role.async_held()                    # journaled, not yet applied
    assert net.command(p, C_SET_MODE, MODE_SYNC) == S_OK
    assert net.command(s, C_SET_MODE, MODE_SYNC) == S_BAD_STATE
    assert st(net, s)["mode"] == MODE_CLOCK
    net.advance(1500000)                               # released and applied
    assert not s.node.role.async_held()
    assert net.command(s, C_SET_MODE, MODE_SYNC) == S_OK
    assert st(net, s)["mode"] == MODE_SYNC


def test_sync_secondary_does_not_roll_forward_over_an_asynchronous_record():
    """The primary left sync mode before its secondary did (the wrong order): the records
    it wrote since came without F_SYNC, so the secondary recovers to the cut instead."""
    net = Net(pairs=1)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    set_group_mode(net, MODE_SYNC)
    assert write_done(net, p, 1, block_of("sync")) == S_OK
    net.advance(1500000)
    assert net.command(p, C_SET_MODE, MODE_CLOCK) == S_OK
    assert net.write(p, 0, 1, block_of("async")) == S_OK
    net.advance(5000)
    assert s.node.role.async_held()
    net.disaster()
    net.advance(3000000)
    assert set(net.failover().values()) == {S_OK}
    assert vol_block(s, 1) == block_of("sync")


def test_reboots_in_a_sync_group_keep_the_roll_forward():
    """Whether a record was written synchronously is RAM only: after a reboot a board takes
    its journal as written in the mode in effect, so a sync group still rolls forward."""
    net = Net(pairs=1)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    set_group_mode(net, MODE_SYNC)
    # a record still in the primary's journal when it reboots goes out with F_SYNC
    net.hold(("peer", p.id))
    send_write(net, p, 1, block_of("before the reboot"))
    net.advance(50000)
    net.kill(p)
    net.release(("peer", p.id))
    net.reboot(p)
    net.advance(1000000)
    assert vol_block(s, 1) == block_of("before the reboot")
    assert s.node.role.async_top == 0                   # every record came with F_SYNC
    assert write_done(net, p, 2, block_of("acked")) == S_OK
    # the secondary reboots holding that record: still rolled forward at failover
    net.kill(s)
    net.reboot(s)
    assert s.node.role.async_top == 0 and not s.node.role.async_held()
    net.advance(300000)
    assert write_done(net, p, 3, block_of("acked too")) == S_OK
    net.disaster()
    net.advance(3000000)
    assert set(net.failover().values()) == {S_OK}
    assert vol_block(s, 2) == block_of("acked") and vol_block(s, 3) == block_of("acked too")


@pytest.mark.parametrize("seed,last", [(11, "sync"), (12, "sync"), (13, "clock")])
def test_the_simulator_switching_modes_under_a_workload_stays_consistent(seed, last):
    """A workload on two pairs while the operator switches the group clock -> sync ->
    clock -> sync (-> clock) through ops/, over the simulator's host ports, then a disaster
    under load: the checker finds the recovered images consistent, and in sync mode no
    acknowledged write lost."""
    from firmware import wire
    from host_tools.check.workload import Workload
    from host_tools.ops import pairs as oppairs
    from host_tools.sim.scenario import CheckpointLog, recover, verdict_keys
    from host_tools.sim.transport import SimTransport
    from host_tools.sim.world import World

    pairs = 2
    wl = Workload(kind="ims", pairs=pairs, vols=1, blocks=64, rate=60.0, duration_us=10000000,
                  concurrency=4, seed=seed)
    world = World(seed=seed, faults="none", workload=wl, pairs=pairs, duration_us=12000000,
                  vol_blocks=64, journal_slots=256, disaster=False,
                  config={"peer_timeout_us": 1000000})
    ckpts = CheckpointLog(world)
    t = SimTransport(world)
    prims = ["p%d" % i for i in range(pairs)]
    secs = ["s%d" % i for i in range(pairs)]

    def switch(mode):
        # the operator's own procedure (arcopy set-mode): the group's order of boards
        res = oppairs.set_mode(t, {i: (prims[i], secs[i]) for i in range(pairs)}, mode)
        assert sorted(res) == sorted(prims + secs) and set(res.values()) == {wire.S_OK}, res

    try:
        world.run(2500000)
        switch(wire.MODE_SYNC)
        t.sleep(1.0)
        switch(wire.MODE_CLOCK)
        t.sleep(1.0)
        switch(wire.MODE_SYNC)
        if last == "clock":
            t.sleep(0.5)
            switch(wire.MODE_CLOCK)
        t.sleep(0.3)
        mode = wire.MODE_SYNC if last == "sync" else wire.MODE_CLOCK
        for b in prims + secs:
            assert world.boards[b].node.cfg.mode == mode
        assert world.now < 1000000 + 10000000          # the workload is still running
        world.disaster()
        world.run(world.now + 3000000)
        wl.log.close(world.disaster_time)
        res = recover(world, wl.log, world.secondaries, ckpts, last, world.disaster_time)
    finally:
        ckpts.close()
    v = verdict_keys(res)
    rep = res["report"]
    assert v["safety"]["violations"] == 0, rep.summary()
    assert rep.consistent, rep.summary()
    assert v["safety"]["lost_before_cut"] == 0 and v["ok"], v
    assert rep.writes_completed > 100 and rep.writes_recovered > 0
    if last == "sync":
        assert not rep.lost_acked_ids, rep.summary()     # RPO 0


def test_failover_first_sets_secondaries_left_in_different_modes_to_async():
    """An interrupted set-mode can leave one secondary in SYNC (it would roll its journal
    forward) and another in CLOCK (it stops at the released cut): the operator's failover
    puts every secondary in CLOCK first, so the group recovers to one cut."""
    from firmware import wire
    from host_tools.ops import command as opcmd
    from host_tools.ops import failover as opfailover
    from host_tools.ops import status as opstatus
    from host_tools.sim.transport import SimTransport
    from host_tools.sim.world import World

    world = World(seed=3, faults="none", workload=None, pairs=2, duration_us=3000000,
                  vol_blocks=64, journal_slots=128, disaster=False)
    t = SimTransport(world)
    world.run(2000000)
    assert opcmd.command(t, "p1", wire.C_SET_MODE, wire.MODE_SYNC) == wire.S_OK
    assert opcmd.command(t, "s1", wire.C_SET_MODE, wire.MODE_SYNC,
                         retry_on=opcmd.RETRY + (wire.S_BAD_STATE,)) == wire.S_OK
    modes = {n: s["mode"] for n, s in opstatus.collect(t, ["s0", "s1"]).items()}
    assert modes == {"s0": wire.MODE_CLOCK, "s1": wire.MODE_SYNC}
    world.kill(["p0", "p1"])
    said = []
    out = opfailover.failover(t, ["s0", "s1"], settle_timeout=5.0, log=said.append)
    assert sorted(out["recovered"]) == ["s0", "s1"], out
    assert any("different modes" in m for m in said), said
    modes = {n: s["mode"] for n, s in opstatus.collect(t, ["s0", "s1"]).items()}
    assert modes == {"s0": wire.MODE_CLOCK, "s1": wire.MODE_CLOCK}
