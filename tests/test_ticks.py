"""Board time as 30-bit ticks (firmware/ticks.py): the arithmetic at its edges, the HALs' Clock,
and cores that run for minutes across the wrap, so that the aging of kept local times
(Node.tick every AGE / 2) and the primary's local-clock rebase (Primary._rebase) happen."""
from firmware import wire
from firmware.ticks import (AGE, TICKS_MASK, Clock, ticks_add, ticks_age, ticks_diff,
                            ticks_past)
from tests.corenet import Net, block_of
from firmware.wire import T_H_WRITE

PERIOD = TICKS_MASK + 1


def test_ticks_diff_and_add_across_the_wrap():
    for a in (0, 1, 12345, PERIOD // 2, PERIOD - 1, PERIOD - 7):
        for d in (0, 1, 999, -1, -999, (1 << 29) - 1, -(1 << 29)):
            b = ticks_add(a, d)
            assert 0 <= b <= TICKS_MASK
            assert b == (a + d) % PERIOD
            assert ticks_diff(b, a) == d
    assert ticks_diff(5, TICKS_MASK - 4) == 10 and ticks_diff(TICKS_MASK - 4, 5) == -10
    # a longer step is cut to the largest ticks_diff resolves
    assert ticks_diff(ticks_add(100, 1 << 40), 100) == (1 << 29) - 1


def test_age_and_past():
    now = 1000
    assert ticks_age(now, now - 5) == now - 5
    old = ticks_add(now, -(AGE + 17))
    assert ticks_diff(now, ticks_age(now, old)) == AGE
    # "never" (0) for a clock past 2**29 reads as ahead; ticks_past makes it long past
    late = (1 << 29) + 5
    assert ticks_diff(0, late) > 0
    assert ticks_diff(late, ticks_past(late, 0)) == AGE
    assert ticks_past(late, late - 3) == late - 3


class RawTicks:
    """A raw counter with a given wrap period (2**30 on the rp2, 2**62 on the unix port)."""

    def __init__(self, period, start):
        self.period = period
        self.raw = start

    def ticks_us(self):
        return self.raw

    def sleep_us(self, us):
        self.raw = (self.raw + us) % self.period


def test_clock_reads_start_and_wraps_with_any_raw_period():
    for period in (1 << 30, 1 << 62):
        tm = RawTicks(period, period - 3000)
        c = Clock(tm, PERIOD - 1000)
        assert c.ticks() == PERIOD - 1000 and c.now() == PERIOD - 1000
        tm.sleep_us(2500)
        assert c.ticks() == 1500 and c.wraps == 1
        assert c.now() == PERIOD + 1500          # unwrapped, for a HAL's own pacing
        tm.sleep_us(700)
        assert c.ticks() == 2200 and c.now() == PERIOD + 2200
    tm = RawTicks(1 << 30, 777)
    assert Clock(tm).ticks() == 777              # no start: the raw counter as it is


def _write(net, board, blk, data):
    """A host write, its reply waited for (the commit wait may hold it a while)."""
    tag = net.request(board, T_H_WRITE, bytes([0]) + blk.to_bytes(4, "little") + data)
    for _ in range(100):
        if tag in board.replies:
            return board.replies[tag][0]
        net.advance(10000)
    return None


def test_cores_run_for_minutes_across_the_wrap():
    # pair 1's primary is the bus master, its clock starts 2 s below the wrap; pair 2's
    # primary follows it from 1.5 s below 2**29 (where a "never" of 0 turns into "ahead");
    # the secondary master starts 3 s below the wrap. 7 minutes in 20 ms steps (cheap;
    # members miss their bus slots meanwhile, so no cut is taken): the kept local times
    # are aged (every AGE / 2 = 134 s) and the primaries' local clocks rebased; then in
    # 1 ms steps everything works as before.
    top = PERIOD - 1000                           # net time starts at 1000
    net = Net(pairs=2, ckpt_interval_us=10 ** 9,
              clocks={1: (top - 2000000, 0), 2: ((1 << 29) - 1500000, 50), 101: (top - 3000000, -30)})
    net.advance(1000000)
    assert _write(net, net.prim(1), 1, block_of("a")) == wire.S_OK
    p1, p2 = net.prim(1).node.role, net.prim(2).node.role
    elections = [b.node.mac.elections for b in net.boards.values()]
    net.advance(7 * 60000000, step=20000)
    net.advance(2000000)
    assert [b.node.mac.elections for b in net.boards.values()] == elections
    assert _write(net, net.prim(2), 8, block_of("late")) == wire.S_OK
    n = net.sec(2).store.sb.applied_n
    p1.next_ckpt = net.prim(1).t(net.now)        # cut now
    net.advance(1000000)
    assert net.sec(2).store.sb.applied_n > n
    assert net.read(net.sec(2), 0, 8) == (wire.S_OK, block_of("late"))
    assert net.read(net.sec(1), 0, 1) == (wire.S_OK, block_of("a"))
    for b in net.boards.values():
        assert b.node.store.sb.copy_state == wire.CS_DUPLEX
        assert 0 <= b.node.next_deadline <= TICKS_MASK
    # local clocks rebased (kept below AGE) while sequence times went on; the follower's
    # clock is within its bound of the master's
    now1, now2 = net.prim(1).t(net.now), net.prim(2).t(net.now)
    assert p1.local(now1) < AGE and p2.local(now2) < AGE
    assert p1.ep_k != 0 and p2.syncs > 1000
    t1, t2 = p1.clock_now(now1), p2.clock_now(now2)
    # (frames arrive in no time here, so a beacon's time, which counts its airtime and the
    # frames sent before it, is read a few ms early: the follower runs that much ahead)
    assert 0 <= t2 - t1 < 10000, (t1, t2)
    assert t1 > 7 * 60000000                      # the group's time went on across the rebases


def test_a_member_gone_for_ten_minutes_stays_gone():
    # the secondary master (101) last heard 102 ten minutes ago: without the aging of kept
    # times (Node.tick -> BusMac.age) that time would read as recent again once 2**29 us
    # old, 102 would count as alive, and under policy continue the group would wait for it
    from firmware.wire import POLICY_CONTINUE
    top = PERIOD - 1000
    net = Net(pairs=2, ckpt_interval_us=10 ** 9, policy=POLICY_CONTINUE,
              clocks={1: (top - 2000000, 0), 101: (top - 3000000, 0)})
    net.advance(1000000)
    s1 = net.sec(1)
    net.kill(net.sec(2))
    net.advance(10 * 60000000, step=20000)
    net.advance(2000000)
    assert _write(net, net.prim(1), 3, block_of("b")) == wire.S_OK
    n = s1.store.sb.applied_n
    net.prim(1).node.role.next_ckpt = net.prim(1).t(net.now)
    net.advance(1000000)
    assert s1.store.sb.applied_n > n
    assert net.read(s1, 0, 3) == (wire.S_OK, block_of("b"))


def test_timeouts_longer_than_a_kept_time_can_age_are_refused():
    import pytest
    from firmware.config import Config, ConfigError
    for name in ("keepalive_us", "peer_timeout_us", "member_timeout_us", "rto_us"):
        with pytest.raises(ConfigError, match=name):
            Config(node=1, role=1, peer=2, site_nodes=[1], **{name: AGE})
        assert getattr(Config(node=1, role=1, peer=2, site_nodes=[1], **{name: AGE - 1}), name) == AGE - 1
