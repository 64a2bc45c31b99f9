"""The roles' per-event timer code with the ticks arithmetic inlined (Primary.deadline and
tick, with the peer's silence inline; Secondary.deadline) against copies of the code it replaced, on random
times (all over the 30-bit tick range, near the wrap and the sign bit) and states."""
import random

import pytest

from firmware.wire import (CS_DUPLEX, CS_PENDING, CS_SIMPLEX, CS_SUSPENDED, HDR_SIZE, MAX_FRAME,
                           PORT_PEER, R_OPERATOR, R_JOURNAL_FULL, ROLE_PRIMARY, F_COPY, T_IDLE,
                           T_PEER_HELLO)
from firmware import codec
from firmware.codec import SZ_IDLE, SZ_PEER_HELLO
from firmware.pairstate import LINK_HELLO, LINK_UP
from firmware.primary import Primary
from firmware.secondary import Secondary
from firmware.ticks import AGE, TICKS_MASK, ticks_add, ticks_diff

# ---- the code before the inlining (reference) -----------------------------------------


def _silent_since_before(p):
    return p.last_rx if ticks_diff(p.last_rx, p.tx_until) > 0 else p.tx_until


def _deadline_before(p, now):
    state = p.store.sb.copy_state
    if state == CS_SUSPENDED:
        return ticks_add(p.last_tx, p.cfg.keepalive_us) if p.reason == R_OPERATOR else None
    if state == CS_PENDING and p.store.bm_total() and \
            p.store.j_depth() < p.cfg.copy_window:
        return now
    if not p.shipping():
        return None
    if p.link != LINK_UP:
        return p.hello_at
    if p.pump_due:
        return now
    d = ticks_add(p.last_tx, p.cfg.keepalive_us)
    if p.fill_at >= 0 and ticks_diff(p.fill_at, d) < 0:
        d = p.fill_at if ticks_diff(p.fill_at, now) > 0 else now
    r = p.sender.timeout_in(now)
    if r is not None and ticks_diff(ticks_add(now, r), d) < 0:
        d = ticks_add(now, r)
    q = ticks_add(_silent_since_before(p), p.cfg.peer_timeout_us)
    return q if ticks_diff(q, d) < 0 else d


def _tick_before(p, now):
    L = p.local(now)
    if L >= AGE:
        p._rebase(now, L)
    state = p.store.sb.copy_state
    if state == CS_SUSPENDED:
        if p.reason == R_OPERATOR and ticks_diff(now, p.last_tx) >= p.cfg.keepalive_us:
            p._notify_suspend(now)
        return
    if state == CS_PENDING:
        p._copy_step(now)
    elif state != CS_DUPLEX:
        return
    if p.link == LINK_UP and ticks_diff(now, _silent_since_before(p)) >= p.cfg.peer_timeout_us:
        p.link = LINK_HELLO
        p.hello_at = now
    if p.link != LINK_UP:
        if ticks_diff(now, p.hello_at) >= 0:
            p.session = (p.session & ~0xFF) | ((p.session + 1) & 0xFF)
            first, resync = p._stream_start()
            codec.pack_peer_hello(p.tx, HDR_SIZE, ROLE_PRIMARY, p.node.me, p.session, first)
            p.node.emit(PORT_PEER, T_PEER_HELLO, p.cfg.peer, SZ_PEER_HELLO,
                        flags=F_COPY if resync or state == CS_PENDING else 0)
            p.hello_at = ticks_add(now, p.cfg.keepalive_us)
        return
    p._pump(now)
    p.pump_due = False
    if ticks_diff(now, p.last_tx) >= p.cfg.keepalive_us:
        p.node.emit(PORT_PEER, T_IDLE, p.cfg.peer, SZ_IDLE, seq=p.sender.next)
        p.last_tx = now


def _secondary_deadline_before(s, now):
    if s.store.sb.copy_state == CS_DUPLEX:
        return ticks_add(s.last_rx, s.cfg.peer_timeout_us)
    return None

# ---- fakes ------------------------------------------------------------------------------


class _Obj:
    pass


class _Store:
    def __init__(self, rng):
        self.sb = _Obj()
        self.sb.copy_state = rng.choice((CS_DUPLEX, CS_DUPLEX, CS_PENDING, CS_SUSPENDED, CS_SIMPLEX))
        self.sb.suspend_reason = rng.choice((R_OPERATOR, R_JOURNAL_FULL))
        self.total = rng.choice((0, 0, 3))
        self.depth = rng.randrange(10)

    def bm_total(self):
        return self.total

    def j_depth(self):
        return self.depth


class _Sender:
    def __init__(self, rng, tick):
        self.flight = rng.choice((0, 0, 2))
        self.sent_at = tick()
        self.rto_us = rng.choice((1, 150000, (1 << 29) - 1))
        self.next = rng.randrange(1 << 16)

    def timeout_in(self, now):
        if self.flight:
            return self.rto_us - ticks_diff(now & TICKS_MASK, self.sent_at)
        return None


class _Node:
    me = 3

    def __init__(self):
        self.log = []

    def emit(self, *a, **k):
        self.log.append(("emit", a, sorted(k.items())))


def _primary(seed):
    rng = random.Random(seed)
    base = rng.choice((0, TICKS_MASK - 5000, (1 << 29) - 3000, rng.randrange(1 << 30)))

    def tick():
        # times near a base (so some comparisons are close), or anywhere
        x = rng.random()
        if x < 0.2:
            # exactly at, or one off, the base and half the tick range away (the sign bit)
            return (base + rng.choice((0, 1, -1, 1 << 29, -(1 << 29), (1 << 29) - 1,
                                       1 - (1 << 29), (1 << 29) + 1))) & TICKS_MASK
        if x < 0.7:
            return (base + rng.randrange(-4000000, 4000000)) & TICKS_MASK
        return rng.randrange(1 << 30)

    p = Primary.__new__(Primary)
    p.store = _Store(rng)
    p.cfg = _Obj()
    p.cfg.keepalive_us = rng.choice((0, 1, 200000, (1 << 28) - 1))
    p.cfg.peer_timeout_us = rng.choice((0, 1, 2000000, (1 << 28) - 1))
    p.cfg.copy_window = 5
    p.cfg.peer = 7
    p.node = _Node()
    p.tx = bytearray(MAX_FRAME)
    p.sender = _Sender(rng, tick)
    p.link = rng.choice((LINK_UP, LINK_UP, LINK_HELLO))
    p.pump_due = rng.random() < 0.2
    p.fill_at = tick() if rng.random() < 0.5 else -1
    p.last_tx, p.last_rx, p.tx_until, p.hello_at = tick(), tick(), tick(), tick()
    p.ep_k = tick()
    p.ep_t = rng.choice((0, rng.randrange(AGE), AGE - 1 - rng.randrange(3000)))
    p.offset = 0
    p.sync_at = p.sync_new = 0
    p.session = rng.randrange(1 << 16)
    # the collaborators tick() calls: recorded, not run
    p._rebase = lambda now, L: p.node.log.append(("rebase", now, L))
    p._notify_suspend = lambda now: p.node.log.append(("notify", now))
    p._copy_step = lambda now: p.node.log.append(("copy", now))
    p._stream_start = lambda: (11, rng.random() < 0.5)
    p._pump = lambda now: p.node.log.append(("pump", now))
    return p, tick


def _state(p):
    return (p.link, p.hello_at, p.session, p.pump_due, p.last_tx, bytes(p.tx), list(p.node.log))


@pytest.mark.parametrize("seed", range(4))
def test_primary_deadline_matches_the_reference(seed):
    for k in range(3000):
        p, tick = _primary(seed * 100000 + k)
        now = tick()
        assert p.deadline(now) == _deadline_before(p, now), k


@pytest.mark.parametrize("seed", range(4))
def test_primary_tick_matches_the_reference(seed):
    for k in range(2000):
        a, tick = _primary(seed * 100000 + k)
        b, tick_b = _primary(seed * 100000 + k)
        now = tick()
        assert tick_b() == now               # (the two fakes draw alike)
        a.tick(now)
        _tick_before(b, now)
        assert _state(a) == _state(b), k


def test_secondary_deadline_matches_the_reference():
    rng = random.Random(5)
    s = Secondary.__new__(Secondary)
    s.store = _Obj()
    s.store.sb = _Obj()
    s.cfg = _Obj()
    for k in range(20000):
        s.store.sb.copy_state = rng.choice((CS_DUPLEX, CS_DUPLEX, CS_PENDING))
        s.cfg.peer_timeout_us = rng.choice((0, 1, 2000000, (1 << 28) - 1, rng.randrange(1 << 28)))
        s.last_rx = rng.choice((0, TICKS_MASK, rng.randrange(1 << 30)))
        now = rng.randrange(1 << 30)
        assert s.deadline(now) == _secondary_deadline_before(s, now), k
