"""Overload is visible to the host: a write a primary completes while its pair does not protect
it as configured (suspended, or its oldest unacknowledged entry older than cut_age_max_us) is
answered OK with the header flag EXPOSED (SPEC section 8, "Exposed writes")."""
from firmware.wire import (CS_DUPLEX, CS_SUSPENDED, C_RESUME, C_SUSPEND, F_EXPOSED, F_REPLY,
                           R_JOURNAL_FULL, R_OPERATOR, S_OK, T_H_WRITE)
from firmware import codec
from firmware.config import Config, ConfigError
import pytest

from tests.corenet import Net, block_of


def st(net, board):
    return dict(zip(codec.STATUS_FIELDS, net.status(board)))


def write(net, board, blk, tag_text="x"):
    """-> (status, flags) of one host write's reply."""
    tag = net.request(board, T_H_WRITE, bytes([0]) + blk.to_bytes(4, "little") + block_of(tag_text))
    return board.replies[tag][0], board.reply_flags[tag]


def wait_state(net, board, state, limit_us=20000000):
    waited = 0
    while board.store.sb.copy_state != state and waited < limit_us:
        net.advance(50000)
        waited += 50000
    assert board.store.sb.copy_state == state


def test_duplex_writes_carry_no_flag_auto_suspended_ones_do():
    net = Net(pairs=2, journal_slots=16, pace_max_us=0)
    net.advance(1000000)
    p1, p2 = net.prim(1), net.prim(2)
    assert write(net, p1, 1) == (S_OK, F_REPLY)            # DUPLEX, stream current: no flag
    net.hold(("peer", p1.id))
    replies = [write(net, p1, b % 40, "o%d" % b) for b in range(40)]
    assert [r[0] for r in replies] == [S_OK] * 40          # every write done, durable
    assert p1.store.sb.copy_state == CS_SUSPENDED and st(net, p1)["suspend_reason"] == R_JOURNAL_FULL
    flagged = [bool(f & F_EXPOSED) for _, f in replies]
    first = flagged.index(True)
    # the journal filled, then the auto-suspend: every write from the one that found the
    # journal full on is answered OK + EXPOSED, none before it
    assert not any(flagged[:first]) and all(flagged[first:]) and first < 16, flagged
    assert all(f & F_REPLY for _, f in replies)
    assert p1.node.c["writes_exposed"] == 40 - first
    # the other pair is not suspended and its stream is current: its writes are not flagged
    assert write(net, p2, 2) == (S_OK, F_REPLY)
    # resumed and joined: protected again
    net.release(("peer", p1.id))
    assert net.command(p1, C_RESUME) == S_OK
    wait_state(net, p1, CS_DUPLEX)
    net.advance(500000)
    assert write(net, p1, 3) == (S_OK, F_REPLY)


def test_operator_suspended_writes_are_flagged():
    net = Net(pairs=1)
    net.advance(1000000)
    p = net.prim(1)
    assert net.command(p, C_SUSPEND) == S_OK and st(net, p)["suspend_reason"] == R_OPERATOR
    assert write(net, p, 4) == (S_OK, F_REPLY | F_EXPOSED)


def test_cut_age_rule_flags_writes_once_the_oldest_unacknowledged_entry_is_too_old():
    # a journal large enough for the outage: no suspend, only the age rule
    net = Net(pairs=1, journal_slots=256, pace_max_us=0, cut_age_max_us=1000000)
    net.advance(1000000)
    p = net.prim(1)
    net.hold(("peer", p.id))
    assert write(net, p, 1) == (S_OK, F_REPLY)             # just journaled: lag ~0
    net.advance(600000)
    assert write(net, p, 2) == (S_OK, F_REPLY)             # oldest unacked 0.6 s old
    assert st(net, p)["lag_us"] <= 1000000
    net.advance(600000)
    assert st(net, p)["lag_us"] > 1000000
    assert write(net, p, 3) == (S_OK, F_REPLY | F_EXPOSED)  # 1.2 s: older than the limit
    assert p.store.sb.copy_state == CS_DUPLEX
    # the link comes back, the secondary acknowledges: the stream is current, no flag
    net.release(("peer", p.id))
    net.advance(3000000)
    assert st(net, p)["lag_us"] < 1000000
    assert write(net, p, 4) == (S_OK, F_REPLY)


def test_cut_age_rule_off_and_paced_completions_flagged_at_release():
    net = Net(pairs=1, journal_slots=256, pace_max_us=0, cut_age_max_us=0)
    net.advance(1000000)
    p = net.prim(1)
    net.hold(("peer", p.id))
    write(net, p, 1)
    net.advance(10000000)
    assert write(net, p, 2) == (S_OK, F_REPLY)             # 0: the age rule is off
    # a paced completion is judged when it leaves
    net2 = Net(pairs=1, journal_slots=32, pace_threshold=8, pace_max_us=2400000,
              cut_age_max_us=100000)
    net2.advance(1000000)
    q = net2.prim(1)
    net2.hold(("peer", q.id))
    tags = [net2.request(q, T_H_WRITE, bytes([0]) + b.to_bytes(4, "little") + block_of("p"))
            for b in range(12)]
    early = [t for t in tags if t in q.replies]
    assert early and all(q.reply_flags[t] == F_REPLY for t in early)   # below the threshold
    net2.advance(2000000)
    assert all(q.replies[t][0] == S_OK for t in tags)
    late = [t for t in tags if q.reply_flags[t] & F_EXPOSED]
    assert late and tags[-1] in late and not set(late) & set(early)   # released after 0.1 s


def test_cut_age_max_us_is_checked():
    base = dict(node=1, role=1, peer=2, site_nodes=[1])
    assert Config(**base).cut_age_max_us == 5000000
    with pytest.raises(ConfigError):
        Config(cut_age_max_us=-1, **base)
    with pytest.raises(ConfigError):
        Config(cut_age_max_us=1 << 30, **base)
