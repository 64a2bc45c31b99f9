"""Sans-I/O write workloads and the workload log.

A ``Workload`` decides which host write to issue next and is told when writes
complete; it never reads a clock or touches a port, so the same object drives the
virtual-time simulator and the real-time serial bench.

Driver contract::

    wl = Workload("ims", pairs=4, seed=7)
    wl.start(now)
    loop:
        for req in wl.poll(now):        # WriteRequest(id, pair, vol, block, data, dep, tag)
            send req.data to subsystem (pair) req.pair, volume req.vol, block req.block
        ... when the subsystem completes write `id`:  wl.complete(id, now, ok)
        then call poll(now) again; also call it at wl.next_wakeup() (a time in us,
        or None: nothing will happen before the next completion)
        stop when wl.done

The issue time of a write is the ``now`` of the ``poll`` that handed it out; its
completion time is the ``now`` of ``complete``. Both are recorded in ``wl.log``
(a ``WorkloadLog``), together with a global event sequence number that orders events
that share a microsecond. The log, not the workload, is what the consistency checker
reads; it can also regenerate every block's contents (``WorkloadLog.payload``).

``drive_virtual(workload, latency_us)`` is a minimal reference driver in virtual time
(ideal subsystems with a given latency), for tests and quick experiments.

Guarantees:

- Two writes to the same block are never outstanding at the same time, so the writes
  of each block are totally ordered (each issued after the previous one completed).
  A block whose write failed (``ok=False``: an error or a timeout; it may still land at
  the primary later) is never written again.
- A write of a chain is issued only after the previous write of its chain completed;
  ``dep`` names that previous write. A failed write ends its chain.
- Every random choice comes from ``random.Random(seed)``: the same seed and the same
  sequence of calls give the same writes, byte for byte.

Kinds (``kind=``):

- ``"ims"``: the patent's database commit pattern. Each transaction picks a log pair A
  and a data pair B (B != A when there are two or more pairs), then writes a log record
  on A (the next block of A's log area), waits, writes a database block on B (random
  block of B's data area), waits, and writes a commit record on A (the next log block).
  ``concurrency`` transactions run in parallel. The log area is the first
  ``log_blocks`` blocks of volume 0 of every pair; every other block is data area.
- ``"random"``: ``concurrency`` dependent chains of 1..``max_chain`` writes, each to a
  random pair, volume and block.
- ``"hot"``: dependent chains like ``random``, but every write goes to one of
  ``hot_blocks`` hot blocks, which are therefore rewritten often (the per-block
  version ``bver`` climbs).
- ``"seq"``: independent writes walking the blocks in order (write k goes to pair
  k % pairs, the next block of that pair's volumes in turn), up to ``concurrency``
  outstanding.

Rate control: ``rate`` (writes per second) paces the issue of writes of the
``concurrency`` regular streams: at most one write every 1/rate s, no catch-up after a
stall; ``rate=None`` or 0 issues as fast as completions allow. ``burst=n`` adds bursts
that overrun the links: at ``start + burst_at_us`` (and then every ``burst_every_us``
if given, while before the end) n extra streams start at once, unpaced, each running
one chain of the kind's pattern (n transactions, n chains, n hot writes, n sequential
writes); so n writes are outstanding together at the burst instant (for ``hot``, at
most as many as there are free hot blocks).

The workload issues no write at or after ``start + duration_us`` (nor beyond
``max_writes`` writes); ``done`` becomes True once it has stopped and every issued
write has completed. Writes cut by the end may leave transactions unfinished, which is
a legal state for the application.
"""
import json
import math
import random
from collections import deque, namedtuple

from host_tools.check import payload as _payload

KINDS = ("ims", "random", "hot", "seq")

_KIND_TAG = {"random": "plain", "hot": "hot", "seq": "seq"}


class WriteRequest(namedtuple("WriteRequest", "id pair vol block data dep tag")):
    """One write to hand to a subsystem. ``data`` is the 512-byte payload; ``dep`` is the
    id of the write it waited for (None); ``tag`` its role (``"log"``, ``"data"``, ...)."""
    __slots__ = ()


_new_tuple = tuple.__new__     # WriteRequest(*fields) without its Python-level __new__


class LogEntry(object):
    """One write of the log. Times in microseconds; ``complete_us`` and ``ok`` are None
    while the write is outstanding (and stay None if it never completed); ``issue_seq``
    and ``complete_seq`` are the positions of the two events in the log's event order."""
    __slots__ = ("id", "writer", "pair", "vol", "block", "bver", "chain", "step", "tag",
                 "dep", "issue_us", "complete_us", "ok", "issue_seq", "complete_seq")

    FIELDS = __slots__

    def __init__(self, id=None, writer=None, pair=None, vol=None, block=None, bver=None,
                 chain=None, step=None, tag=None, dep=None, issue_us=None, complete_us=None,
                 ok=None, issue_seq=None, complete_seq=None):
        self.id = id
        self.writer = writer
        self.pair = pair
        self.vol = vol
        self.block = block
        self.bver = bver
        self.chain = chain
        self.step = step
        self.tag = tag
        self.dep = dep
        self.issue_us = issue_us
        self.complete_us = complete_us
        self.ok = ok
        self.issue_seq = issue_seq
        self.complete_seq = complete_seq

    @property
    def address(self):
        return (self.pair, self.vol, self.block)

    def to_dict(self):
        # the keys in FIELDS order (one literal: this runs for every write of a checked log)
        return {"id": self.id, "writer": self.writer, "pair": self.pair, "vol": self.vol,
                "block": self.block, "bver": self.bver, "chain": self.chain, "step": self.step,
                "tag": self.tag, "dep": self.dep, "issue_us": self.issue_us,
                "complete_us": self.complete_us, "ok": self.ok, "issue_seq": self.issue_seq,
                "complete_seq": self.complete_seq}

    def __repr__(self):
        return "LogEntry(%s)" % ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.FIELDS)


class WorkloadLog(object):
    """Issue and completion record of every write. Usable on its own (a hand-driven
    scenario calls ``issue``/``complete`` directly) or filled in by a ``Workload``.

    ``start_us``/``end_us``: start of the run and end of the log (set ``end_us`` with
    ``close(t)``, e.g. to the disaster instant); ``meta``: free-form run description.
    """

    FORMAT = "arcopy-workload-log"
    VERSION = 1

    def __init__(self, writer=1, meta=None):
        self.writer = writer
        self.meta = dict(meta or {})
        self.entries = []
        self._by_id = {}
        self._bver = {}
        self._seq = 0
        self.start_us = None
        self.end_us = None

    # -- recording ---------------------------------------------------------------
    def issue(self, id, pair, vol, block, issue_us, dep=None, bver=None, chain=0, step=0,
              tag="plain", writer=None):
        """Record that write ``id`` was handed to subsystem ``pair`` at ``issue_us``.
        ``bver`` defaults to the next version of that block in this log."""
        by_id = self._by_id
        if id in by_id:
            raise ValueError("write id %r issued twice" % (id,))
        addr = (pair, vol, block)
        vers = self._bver
        last = vers.get(addr, 0)
        if bver is None:
            bver = last + 1
        if bver > last:
            vers[addr] = bver
        elif addr not in vers:
            vers[addr] = last
        seq = self._seq = self._seq + 1
        e = LogEntry(id, self.writer if writer is None else writer, pair, vol, block, bver,
                     chain, step, tag, dep, issue_us, None, None, seq, None)
        self.entries.append(e)
        by_id[id] = e
        if self.start_us is None:
            self.start_us = issue_us
        return e

    def complete(self, id, complete_us, ok=True):
        """Record the completion (``ok``) or failure (``ok=False``) of write ``id``."""
        e = self._by_id.get(id)
        if e is None:
            raise KeyError("completion of unknown write id %r" % (id,))
        if e.complete_us is not None:
            raise ValueError("write id %r completed twice" % (id,))
        if complete_us < e.issue_us:
            raise ValueError("write id %r completes at %d before its issue at %d"
                             % (id, complete_us, e.issue_us))
        self._seq += 1
        e.complete_us = complete_us
        e.ok = bool(ok)
        e.complete_seq = self._seq
        return e

    def close(self, end_us):
        """Mark the end of the log (the disaster instant, or the end of the run)."""
        self.end_us = end_us

    # -- queries -----------------------------------------------------------------
    def __len__(self):
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def get(self, id):
        return self._by_id[id]

    def outstanding(self):
        return [e for e in self.entries if e.complete_us is None]

    def payload(self, id):
        """The exact 512 bytes write ``id`` carried (regenerated from the log)."""
        e = self._by_id[id]
        return _payload.encode(e.writer, e.id, e.pair, e.vol, e.block, e.issue_us, e.bver,
                               e.chain, e.step, e.dep, e.tag)

    # -- persistence ---------------------------------------------------------------
    def to_dict(self):
        return {"format": self.FORMAT, "version": self.VERSION, "writer": self.writer,
                "start_us": self.start_us, "end_us": self.end_us, "meta": self.meta,
                "writes": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, d):
        """Rebuild a log from ``to_dict()`` output (or a bare list of write dicts)."""
        if isinstance(d, (list, tuple)):
            d = {"writes": d}
        log = cls(writer=d.get("writer", 1), meta=d.get("meta"))
        for w in d["writes"]:
            e = LogEntry(**{f: w.get(f) for f in LogEntry.FIELDS})
            if e.writer is None:
                e.writer = log.writer
            if e.id in log._by_id:
                raise ValueError("write id %r appears twice" % (e.id,))
            log.entries.append(e)
            log._by_id[e.id] = e
            addr = e.address
            log._bver[addr] = max(log._bver.get(addr, 0), e.bver or 0)
            log._seq = max(log._seq, e.issue_seq or 0, e.complete_seq or 0)
        log.start_us = d.get("start_us")
        log.end_us = d.get("end_us")
        return log

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, separators=(",", ":"))

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))


class _Stream(object):
    """A sequence of dependent chains with at most one outstanding write."""
    __slots__ = ("transient", "chain", "plan", "step", "last")

    def __init__(self, transient):
        self.transient = transient
        self.chain = 0
        self.plan = None
        self.step = 0
        self.last = None


class Workload(object):
    """A deterministic write workload; see the module docstring for the contract."""

    def __init__(self, kind="random", pairs=2, vols=1, blocks=256, rate=200.0,
                 duration_us=1000000, concurrency=4, seed=0, burst=0, burst_at_us=0,
                 burst_every_us=None, max_chain=8, hot_blocks=4, log_blocks=None,
                 max_writes=None, writer=1):
        if kind not in KINDS:
            raise ValueError("unknown workload kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        if pairs < 1 or vols < 1 or blocks < 1:
            raise ValueError("pairs, vols and blocks must be >= 1")
        if concurrency < 0 or burst < 0 or (concurrency == 0 and burst == 0):
            raise ValueError("need concurrency >= 1 or burst >= 1")
        if burst_every_us is not None and burst_every_us <= 0:
            raise ValueError("burst_every_us must be > 0")
        if max_chain < 1:
            raise ValueError("max_chain must be >= 1")
        self.kind = kind
        self.pairs = pairs
        self.vols = vols
        self.blocks = blocks
        self.rate = rate or None
        self.duration_us = duration_us
        self.concurrency = concurrency
        self.seed = seed
        self.burst = burst
        self.burst_at_us = burst_at_us
        self.burst_every_us = burst_every_us
        self.max_chain = max_chain
        self.max_writes = max_writes
        self.writer = writer
        self.rng = random.Random(seed)
        self._addr_bits = (pairs.bit_length(), vols.bit_length(), blocks.bit_length())
        self._tag = None if kind == "ims" else _KIND_TAG[kind]    # None: the plan step's name

        if kind == "ims":
            if log_blocks is None:
                log_blocks = max(2 * concurrency + 2 * burst + 4, blocks // 8)
            log_blocks = min(log_blocks, blocks - 1) if vols == 1 else min(log_blocks, blocks)
            if log_blocks < 2:
                raise ValueError("ims needs room for a log area of >= 2 blocks and a data area")
        else:
            log_blocks = 0
        self.log_blocks = log_blocks
        self._data_per_pair = vols * blocks - log_blocks
        hot_n = min(hot_blocks, pairs * vols * blocks)
        self.hot_set = [(i % pairs, (i // pairs) % vols, i // (pairs * vols)) for i in range(hot_n)]

        self.log = WorkloadLog(writer=writer, meta={
            "kind": kind, "pairs": pairs, "vols": vols, "blocks": blocks, "rate": self.rate,
            "duration_us": duration_us, "concurrency": concurrency, "seed": seed,
            "burst": burst, "burst_at_us": burst_at_us, "burst_every_us": burst_every_us,
            "max_chain": max_chain, "hot_blocks": hot_n, "log_blocks": log_blocks,
            "max_writes": max_writes})

        self._busy = set()              # addresses with an outstanding (or failed) write
        self._poisoned = set()          # addresses of failed writes: never written again
        self._waiting = {}              # write id -> stream
        self._ready = deque()           # regular streams ready to issue
        self._bready = deque()          # burst streams ready to issue
        self._next_id = 1
        self._next_chain = 1
        self._log_cursor = [0] * pairs
        self._seq_cursor = 0
        self._t_next = None             # earliest time of the next paced issue
        self._token_wait = False
        self._poll_hint = None
        self._next_burst = None
        self._end = None
        self._now = None
        self.started = False
        self.stopped = False
        self.issued = 0
        self.completed = 0
        self.failed = 0
        self.abandoned = 0              # writes given up without an outcome (in flight)
        self.max_outstanding = 0

    # -- public interface -----------------------------------------------------------
    @property
    def outstanding(self):
        return len(self._waiting)

    @property
    def done(self):
        return self.started and self.stopped and not self._waiting

    def start(self, now_us):
        if self.started:
            raise RuntimeError("workload already started")
        self.started = True
        self._now = now_us
        self._end = now_us + self.duration_us
        self._t_next = now_us
        self.log.start_us = now_us
        if self.burst:
            self._next_burst = now_us + self.burst_at_us
        for _ in range(self.concurrency):
            s = _Stream(False)
            self._new_chain(s)
            self._ready.append(s)

    def poll(self, now_us):
        """Writes to issue now (possibly none). Records their issue at ``now_us``."""
        if not self.started:
            raise RuntimeError("poll() before start()")
        self._now = now_us
        self._poll_hint = None
        self._token_wait = False
        if not self.stopped:
            mw = self.max_writes        # as _check_stop (inlined: this runs twice per write)
            if now_us >= self._end or (mw is not None and self.issued >= mw):
                self.stopped = True
                self._next_burst = None
        out = []
        if self.stopped:
            return out
        while self._next_burst is not None and now_us >= self._next_burst:
            for _ in range(self.burst):
                s = _Stream(True)
                self._new_chain(s)
                self._bready.append(s)
            if self.burst_every_us:
                self._next_burst += self.burst_every_us
                if self._next_burst >= self._end:
                    self._next_burst = None
            else:
                self._next_burst = None
        if self._bready:                # (an empty queue: _drain would do nothing)
            self._drain(self._bready, now_us, out, paced=False)
        q = self._ready
        if q:
            if self.rate is None:
                self._drain(q, now_us, out, paced=False)
            elif now_us < self._t_next and (self.max_writes is None or self.issued < self.max_writes):
                self._token_wait = True     # what _drain would find first: no token yet
            else:
                self._drain(q, now_us, out, paced=True)
        return out

    def complete(self, write_id, now_us, ok=True):
        """Tell the workload that write ``write_id`` completed (``ok``) or failed."""
        s = self._waiting.pop(write_id, None)
        if s is None:
            raise KeyError("completion of unknown or already completed write %r" % (write_id,))
        e = self.log.complete(write_id, now_us, ok)
        if ok:
            self._busy.discard((e.pair, e.vol, e.block))
        else:
            # A failed write (error or timeout) may still land at the primary later;
            # never writing its block again keeps each block's order unambiguous.
            self._poisoned.add((e.pair, e.vol, e.block))
        self._now = now_us
        self.completed += 1
        if not ok:
            self.failed += 1
        s.last = write_id
        s.step += 1
        if not ok or s.step >= len(s.plan):
            if s.transient:
                s = None            # a burst stream runs one chain only
            else:
                self._new_chain(s)
        if s is not None:
            (self._bready if s.transient else self._ready).append(s)
        if not self.stopped:
            mw = self.max_writes        # as _check_stop, inlined
            if now_us >= self._end or (mw is not None and self.issued >= mw):
                self.stopped = True
                self._next_burst = None
            else:
                self._poll_hint = now_us

    def abandon(self, write_id):
        """Give up on write ``write_id`` without an outcome (the subsystem died with it
        outstanding): the log keeps it in flight (it may or may not have happened), its
        block is never written again, and its chain ends (nothing may depend on it), so
        the stream goes on with a new chain."""
        s = self._waiting.pop(write_id, None)
        if s is None:
            raise KeyError("abandon of unknown or already completed write %r" % (write_id,))
        e = self.log.get(write_id)
        self._poisoned.add(e.address)
        self.abandoned += 1
        if s.transient:
            s = None
        else:
            self._new_chain(s)
            self._ready.append(s)
        self._check_stop(self._now if self._now is not None else e.issue_us)
        if not self.stopped:
            self._poll_hint = self._now

    def next_wakeup(self):
        """Time (us) at which ``poll`` should be called even if no write completes before,
        or None. A value <= the current time means: poll now."""
        if not self.started or self.stopped:    # (done implies stopped)
            return None
        # the earliest of the end, the poll hint, the next burst and the next token (ties: the
        # first of them, as min() of that list)
        w = self._end
        t = self._poll_hint
        if t is not None and t < w:
            w = t
        t = self._next_burst
        if t is not None and t < w:
            w = t
        if self._token_wait and self._ready:
            t = int(math.ceil(self._t_next))
            if t < w:
                w = t
        return w

    # -- internals --------------------------------------------------------------------
    def _check_stop(self, now_us):
        if not self.stopped and (now_us >= self._end or
                                 (self.max_writes is not None and self.issued >= self.max_writes)):
            self.stopped = True
            self._next_burst = None

    def _drain(self, q, now_us, out, paced):
        blocked = None
        mw = self.max_writes
        while q:
            if mw is not None and self.issued >= mw:
                self.stopped = True
                break
            if paced and now_us < self._t_next:
                self._token_wait = True
                break
            s = q.popleft()
            req = self._issue(s, now_us)
            if req is None:
                if blocked is None:
                    blocked = []
                blocked.append(s)
                continue
            out.append(req)
            if paced:
                t = self._t_next          # max(t, now_us): t on a tie, as max() keeps the first
                self._t_next = (t if t >= now_us else now_us) + 1e6 / self.rate
        if blocked:
            # streams blocked on a busy block keep their place at the head of the queue
            q.extendleft(reversed(blocked))

    def _new_chain(self, s):
        rng = self.rng
        s.chain = self._next_chain
        self._next_chain += 1
        s.step = 0
        s.last = None
        if self.kind == "ims":
            a = rng.randrange(self.pairs)
            if self.pairs > 1:
                b = rng.randrange(self.pairs - 1)
                if b >= a:
                    b += 1
            else:
                b = a
            s.plan = (("log", a), ("data", b), ("commit", a))
        elif self.kind == "seq":
            s.plan = (("seq", None),)
        else:
            s.plan = ((self.kind, None),) * rng.randint(1, self.max_chain)

    def _pick(self, what, pair):
        """Address for the next write of a plan step, or None if none is free now."""
        rng, busy = self.rng, self._busy
        if what == "random":
            if type(rng) is random.Random:
                # rng.randrange(n) for n >= 1 is rng._randbelow(n), which for the Mersenne
                # Twister is getrandbits(n.bit_length()) redrawn while >= n: the same draws,
                # inlined (three per write; tests/test_simspeed.py checks they are equal)
                bits = rng.getrandbits
                pairs, vols, blocks = self.pairs, self.vols, self.blocks
                kp, kv, kb = self._addr_bits
                for _ in range(16):
                    p = bits(kp)
                    while p >= pairs:
                        p = bits(kp)
                    v = bits(kv)
                    while v >= vols:
                        v = bits(kv)
                    b = bits(kb)
                    while b >= blocks:
                        b = bits(kb)
                    addr = (p, v, b)
                    if addr not in busy:
                        return addr
                return None
            below = rng.randrange
            pairs, vols, blocks = self.pairs, self.vols, self.blocks
            for _ in range(16):
                addr = (below(pairs), below(vols), below(blocks))
                if addr not in busy:
                    return addr
            return None
        if what == "log" or what == "commit":
            for _ in range(self.log_blocks):
                blk = self._log_cursor[pair]
                self._log_cursor[pair] = (blk + 1) % self.log_blocks
                if (pair, 0, blk) not in busy:
                    return (pair, 0, blk)
            return None
        if what == "data":
            for _ in range(16):
                k = self.log_blocks + rng.randrange(self._data_per_pair)
                addr = (pair, k // self.blocks, k % self.blocks)
                if addr not in busy:
                    return addr
            return None
        if what == "hot":
            free = [a for a in self.hot_set if a not in busy]
            return rng.choice(free) if free else None
        if what == "seq":
            for _ in range(self.pairs * self.vols * self.blocks):
                k = self._seq_cursor
                pos = (k // self.pairs) % (self.vols * self.blocks)
                addr = (k % self.pairs, pos // self.blocks, pos % self.blocks)
                if addr in self._poisoned:
                    self._seq_cursor = k + 1
                    continue
                if addr in busy:
                    return None
                self._seq_cursor = k + 1
                return addr
            return None
        raise AssertionError(what)

    def _issue(self, s, now_us):
        what, pair = s.plan[s.step]
        addr = self._pick(what, pair)
        if addr is None:
            return None
        tag = self._tag or what
        wid = self._next_id
        self._next_id = wid + 1
        p, v, b = addr
        last, chain, step = s.last, s.chain, s.step
        bver = self.log.issue(wid, p, v, b, now_us, last, None, chain, step, tag).bver
        data = _payload.encode(self.writer, wid, p, v, b, now_us, bver, chain, step, last, tag)
        self._busy.add(addr)
        waiting = self._waiting
        waiting[wid] = s
        self.issued += 1
        if len(waiting) > self.max_outstanding:
            self.max_outstanding = len(waiting)
        return _new_tuple(WriteRequest, (wid, p, v, b, data, last, tag))


def drive_virtual(workload, latency_us, start_us=0, until_us=None):
    """Run ``workload`` in virtual time against ideal subsystems and return its log.

    A reference driver for tests and quick experiments (no replication is modelled):
    each write completes ``latency_us`` after its issue, where ``latency_us`` is an int
    or a callable ``f(request) -> int``, or None for a write that never completes.
    ``until_us``: the disaster instant; no event at or after it happens, and the log is
    closed there. Completions due at the same instant are delivered in write-id order,
    then the workload is polled.
    """
    import heapq
    now = start_us
    workload.start(now)
    heap = []
    idle = 0
    while True:
        for r in workload.poll(now):
            lat = latency_us(r) if callable(latency_us) else latency_us
            if lat is not None:
                heapq.heappush(heap, (now + lat, r.id))
        if workload.done:
            break
        nw = workload.next_wakeup()
        cands = [max(nw, now)] if nw is not None else []
        if heap:
            cands.append(heap[0][0])
        if not cands:
            break                       # only writes that never complete remain
        t = min(cands)
        if until_us is not None and t >= until_us:
            break
        idle = idle + 1 if (t == now and not (heap and heap[0][0] <= now)) else 0
        if idle > 2:
            raise RuntimeError("workload asks to be polled again at %d without progress" % now)
        now = t
        while heap and heap[0][0] <= now:
            workload.complete(heapq.heappop(heap)[1], now)
    if until_us is not None:
        workload.log.close(until_us)
    else:
        workload.log.close(now)
    return workload.log
