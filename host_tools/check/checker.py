"""Independent consistency checker for recovered secondary images.

It knows only two things: the workload log (what was written where, when it was
issued and when it completed) and the recovered block images. It does not trust,
import or ask the firmware or the simulator anything.

Definitions
-----------
Event order. Every write has an issue event and (unless it never completed) a
completion event. Events are ordered by ``(time_us, seq)``, where ``seq`` is the
log's global event sequence number (``issue_seq``/``complete_seq``, recorded by
``WorkloadLog``); it orders events that share a microsecond, as in virtual time
where a completion and the dependent issue happen at the same instant. A log
without sequence numbers (plain dicts) orders by time only, and then an issue at
the very microsecond of a completion does not count as "after" it, except through
an explicit ``dep`` (below).

Acknowledged write: completed with ``ok`` true. In-flight write: never completed
(its outcome is unknown at the disaster). Failed write: completed with ``ok``
false (the host saw an error; the write may or may not have happened). In-flight
and failed writes may legally be included or not.

Included writes. Each block's writes are totally ordered (the workload never has
two writes to the same block outstanding). The block's visible contents identify
one write V (a valid payload), or none (all zeros). The included writes of the
block are V and every write of that block that completed before V was issued; a
zero block includes none. A write of the block that overlaps V in time (neither
completed before V's issue nor issued after V's completion; impossible with our
workloads) is *ambiguous* and is ignored on both sides of the check. Writes of a
block that is corrupt or unreadable are *unknown* and ignored likewise (the block
itself is reported and makes the image inconsistent).

Consistency. The image is consistent iff no included write was issued after the
completion of an acknowledged write that is not included (a "lost" write), no block
is corrupt and every block could be read. A violation is
the pair (lost write L, included write I) with I issued after L completed: the
image shows an effect without its cause, as the patent's commit record (3) without
the database write (2). An included write whose ``dep`` (the write it waited for)
is lost is a violation too, whatever the timestamps say.

Corrupt blocks: a block that fails the payload CRC (torn by a power cut or
damaged), holds non-zero non-payload bytes, or holds a valid payload that was
never issued by the log's writer, belongs to a different block address, or carries
a per-block version other than the logged one.

RPO. ``recovery_point_us`` is the completion time of the earliest lost
acknowledged write: every write acknowledged before it is in the image, that one
is not. ``rpo_ms = (end_us - recovery_point_us) / 1000``, the span of acknowledged
work that was lost, where ``end_us`` is the disaster instant (the ``disaster_us``
argument, else the log's ``end_us``, else the last acknowledgement in the log).
``rpo_ms`` is 0 when no acknowledged write was lost.

Cost: O(n log n) in the number of writes, plus one read and decode per block.

Standard library only.
"""
from bisect import bisect_left

from host_tools.check import payload as _payload

INCLUDED = "included"
LOST = "not-included"
AMBIGUOUS = "ambiguous"
UNKNOWN = "unknown"


class _W(object):
    __slots__ = ("id", "writer", "pair", "vol", "block", "address", "bver", "dep", "tag",
                 "issue_us", "complete_us", "ok", "ikey", "ckey", "state")

    def brief(self):
        return {"id": self.id, "pair": self.pair, "vol": self.vol, "block": self.block,
                "tag": self.tag, "issue_us": self.issue_us, "complete_us": self.complete_us,
                "ok": self.ok}


class Unreadable(Exception):
    """A block the images cannot provide (missing pair/volume, out of range, read error)."""


def _load_log(log):
    """-> (list of _W, writer or None, end_us or None) from a WorkloadLog, its to_dict(),
    or a plain list of write dicts."""
    writer = end_us = None
    if hasattr(log, "entries"):
        writer, end_us = getattr(log, "writer", None), getattr(log, "end_us", None)
        raw = log.entries
    elif isinstance(log, dict):
        writer, end_us = log.get("writer"), log.get("end_us")
        raw = log["writes"]
    else:
        raw = list(log)
    from host_tools.check.workload import LogEntry
    out = []
    for d in raw:
        if type(d) is LogEntry:
            out.append(_from_entry(d, writer))
            continue
        if isinstance(d, dict):
            get = d.get
        else:                           # a LogEntry (or any object with the same attributes)
            get = lambda k, _d=d: getattr(_d, k, None)   # noqa: E731
        w = _W()
        w.id = get("id")
        if w.id is None:
            raise ValueError("a write of the log has no id")
        w.writer = get("writer")
        if w.writer is None:
            w.writer = writer
        w.pair, w.vol, w.block = int(get("pair")), int(get("vol")), int(get("block"))
        w.address = (w.pair, w.vol, w.block)
        w.bver = get("bver")
        w.dep = get("dep")
        w.tag = get("tag")
        w.issue_us = get("issue_us")
        if w.issue_us is None:
            raise ValueError("write %r of the log has no issue_us" % (w.id,))
        w.complete_us = get("complete_us")
        ok = get("ok")
        if w.complete_us is None:
            w.ok = None
        else:
            w.ok = True if ok is None else bool(ok)
        w.ikey = (w.issue_us, get("issue_seq") or 0)
        w.ckey = None if w.complete_us is None else (w.complete_us, get("complete_seq") or 0)
        w.state = None
        out.append(w)
    return out, writer, end_us


def _from_entry(e, writer):
    """_load_log's reading of one LogEntry (every field is an attribute of it), direct."""
    w = _W()
    w.id = e.id
    if w.id is None:
        raise ValueError("a write of the log has no id")
    w.writer = writer if e.writer is None else e.writer
    w.pair, w.vol, w.block = int(e.pair), int(e.vol), int(e.block)
    w.address = (w.pair, w.vol, w.block)
    w.bver = e.bver
    w.dep = e.dep
    w.tag = e.tag
    w.issue_us = e.issue_us
    if w.issue_us is None:
        raise ValueError("write %r of the log has no issue_us" % (w.id,))
    w.complete_us = c = e.complete_us
    ok = e.ok
    if c is None:
        w.ok = None
    else:
        w.ok = True if ok is None else bool(ok)
    w.ikey = (w.issue_us, e.issue_seq or 0)
    w.ckey = None if c is None else (c, e.complete_seq or 0)
    w.state = None
    return w


def _as_index(k):
    try:
        return int(k)
    except (TypeError, ValueError):
        raise ValueError("image key %r is not a pair/volume/block number" % (k,))


def _child(container, key, what):
    if hasattr(container, "keys"):
        if key in container:
            return container[key]
        if str(key) in container:
            return container[str(key)]
        raise Unreadable("no %s %d in the images" % (what, key))
    if isinstance(container, (list, tuple)):
        if 0 <= key < len(container):
            return container[key]
        raise Unreadable("no %s %d in the images" % (what, key))
    raise TypeError("cannot index images of type %s" % type(container).__name__)


class _Images(object):
    """Uniform read access over the accepted image shapes (see ``check``)."""

    def __init__(self, images):
        self.images = images
        self.fn = images if (callable(images) and not hasattr(images, "keys")) else None

    def read(self, pair, vol, block):
        if self.fn is not None:
            try:
                data = self.fn(pair, vol, block)
            except Unreadable:
                raise
            except Exception as e:
                raise Unreadable("read error: %r" % (e,))
        else:
            v = _child(_child(self.images, pair, "pair"), vol, "volume")
            data = self._read_vol(v, block)
        if data is None:
            return _payload.ZERO_BLOCK
        return bytes(data)

    @staticmethod
    def _read_vol(v, block):
        bs = _payload.BLOCK_SIZE
        if isinstance(v, (bytes, bytearray, memoryview)):
            if block < 0 or (block + 1) * bs > len(v):
                raise Unreadable("block %d beyond the volume image" % block)
            return v[block * bs:(block + 1) * bs]
        if hasattr(v, "keys"):          # sparse: a missing block was never written
            if block in v:
                return v[block]
            return v.get(str(block))
        if isinstance(v, (list, tuple)):
            if 0 <= block < len(v):
                return v[block]
            raise Unreadable("block %d beyond the volume image" % block)
        if callable(v):
            try:
                return v(block)
            except Exception as e:
                raise Unreadable("read error: %r" % (e,))
        raise TypeError("cannot read a volume image of type %s" % type(v).__name__)

    @staticmethod
    def _keys(c):
        if hasattr(c, "keys"):
            return [_as_index(k) for k in c.keys()]
        if isinstance(c, (list, tuple)):
            return range(len(c))
        return ()

    def addresses(self):
        """Every block address the images enumerate (none for a read callable)."""
        if self.fn is not None:
            return
        for p in self._keys(self.images):
            pc = _child(self.images, p, "pair")
            for v in self._keys(pc):
                vc = _child(pc, v, "volume")
                if isinstance(vc, (bytes, bytearray, memoryview)):
                    blocks = range(len(vc) // _payload.BLOCK_SIZE)
                else:
                    blocks = self._keys(vc)
                for b in blocks:
                    yield (p, v, b)


class Report(object):
    """Outcome of ``check``. Fields (all plain data; ``to_dict()`` gives them as JSON):

    consistent          True iff violations_total == 0, no corrupt and no unreadable block
    violations          up to max_violations dicts, one per violating included write, in
                        issue order: {"included": write, "lost": write, "gap_us",
                        "by_dependency", "text"}; "lost" is an acknowledged, not included
                        write that completed before "included" was issued (its ``dep`` if
                        that is lost, else the latest such write); gap_us = included
                        issue_us - lost complete_us
    violations_total    number of included writes issued after the completion of some lost
                        write (or whose dependency is lost)
    violating_pairs     number of (lost, included) pairs with that property
    writes_total        writes in the log
    writes_completed    acknowledged writes (completed ok)
    writes_failed       writes completed with an error
    writes_inflight     writes never completed
    writes_recovered    included writes (any status)
    included_unacked    included writes that were in flight or failed
    lost_acked          acknowledged writes not included
    lost_acked_ids      their ids in completion order (up to max_list)
    writes_ambiguous    writes overlapping the visible write of their block (ignored)
    writes_unknown      writes of corrupt or unreadable blocks (ignored)
    corrupt             list of {"pair","vol","block","status","reason","id"} (id of the
                        payload found, when it decoded)
    unreadable          list of {"pair","vol","block","reason"}
    blocks_checked      blocks read
    blocks_written      blocks read that were not all zeros
    last_ack_us         completion time of the last acknowledged write (None if none)
    end_us              the disaster instant used for the RPO (see module docstring)
    recovery_point_us   completion time of the earliest lost acknowledged write (None)
    rpo_ms              (end_us - recovery_point_us) / 1000, or 0.0 if nothing was lost
    log_warnings        up to max_list descriptions of log anomalies (same-block
                        overlaps, a write issued before its dependency completed, ...)
    log_warnings_total  their number
    """

    FIELDS = ("consistent", "violations", "violations_total", "violating_pairs",
              "writes_total", "writes_completed", "writes_failed", "writes_inflight",
              "writes_recovered", "included_unacked", "lost_acked", "lost_acked_ids",
              "writes_ambiguous", "writes_unknown", "corrupt", "unreadable",
              "blocks_checked", "blocks_written", "last_ack_us", "end_us",
              "recovery_point_us", "rpo_ms", "log_warnings", "log_warnings_total")

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw[f])

    def to_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS}

    def summary(self):
        head = "CONSISTENT" if self.consistent else "INCONSISTENT"
        lines = ["%s: %d writes (%d acknowledged, %d in flight, %d failed), %d recovered, "
                 "%d acknowledged lost, RPO %.3f ms"
                 % (head, self.writes_total, self.writes_completed, self.writes_inflight,
                    self.writes_failed, self.writes_recovered, self.lost_acked, self.rpo_ms)]
        if self.violations_total:
            lines.append("%d violating writes (%d pairs), e.g.:"
                         % (self.violations_total, self.violating_pairs))
            lines.extend("  " + v["text"] for v in self.violations[:5])
        for c in self.corrupt[:5]:
            lines.append("  corrupt block pair %d vol %d block %d: %s"
                         % (c["pair"], c["vol"], c["block"], c["reason"]))
        if len(self.corrupt) > 5:
            lines.append("  ... %d corrupt blocks in all" % len(self.corrupt))
        for u in self.unreadable[:5]:
            lines.append("  unreadable block pair %d vol %d block %d: %s"
                         % (u["pair"], u["vol"], u["block"], u["reason"]))
        if len(self.unreadable) > 5:
            lines.append("  ... %d unreadable blocks in all" % len(self.unreadable))
        if self.log_warnings_total:
            lines.append("%d log warnings, e.g. %s"
                         % (self.log_warnings_total, self.log_warnings[0]))
        return "\n".join(lines)

    __str__ = summary


def _violation(inc, lost, by_dep):
    return {
        "included": inc.brief(),
        "lost": lost.brief(),
        "gap_us": inc.issue_us - lost.complete_us,
        "by_dependency": by_dep,
        "text": ("write %s (pair %d vol %d block %d, issued at %d us) is included, but write %s "
                 "(pair %d vol %d block %d, completed at %d us%s) is not"
                 % (inc.id, inc.pair, inc.vol, inc.block, inc.issue_us, lost.id, lost.pair,
                    lost.vol, lost.block, lost.complete_us,
                    ", its dependency" if by_dep else "")),
    }


def check(log, images, disaster_us=None, max_violations=100, max_list=1000, scan_images=True):
    """Check recovered ``images`` against the workload ``log``; returns a ``Report``.

    ``log``: a ``WorkloadLog``, its ``to_dict()`` (e.g. loaded from JSON), or a list of
    write dicts with at least id, pair, vol, block, issue_us, and complete_us / ok /
    dep / bver / writer / issue_seq / complete_seq when known.

    ``images``: either a callable ``read(pair, vol, block) -> bytes`` (only the blocks the
    log wrote are read), or a mapping (or list) pair -> mapping (or list) vol -> volume,
    where a volume is a raw image (bytes-like, 512 bytes per block), a list of block
    contents (None = zeros), a dict block -> contents (sparse: missing = zeros), or a
    callable ``read(block)``. String keys from JSON are accepted. With a mapping and
    ``scan_images`` true, every block the images hold is read, so stray payloads and
    garbage outside the log's blocks are found too.

    ``disaster_us``: instant of the disaster for the RPO (see the module docstring).
    """
    writes, log_writer, log_end = _load_log(log)
    by_id = {}
    per_block = {}
    for w in writes:
        if w.id in by_id:
            raise ValueError("write id %r appears twice in the log" % (w.id,))
        by_id[w.id] = w
        per_block.setdefault(w.address, []).append(w)

    warnings = []
    nwarn = [0]

    def warn(msg):
        nwarn[0] += 1
        if len(warnings) < max_list:
            warnings.append(msg)

    for addr, ws in per_block.items():
        ws.sort(key=lambda w: w.ikey)
        for a, b in zip(ws, ws[1:]):
            if a.ckey is None or a.ckey > b.ikey:
                warn("writes %s and %s to pair %d vol %d block %d overlap in time"
                     % (a.id, b.id, addr[0], addr[1], addr[2]))
    for w in writes:
        if w.dep is not None:
            d = by_id.get(w.dep)
            if d is None:
                warn("write %s depends on unknown write %s" % (w.id, w.dep))
            elif d.ckey is None or d.ckey > w.ikey:
                warn("write %s was issued before its dependency %s completed" % (w.id, w.dep))

    reader = _Images(images)
    addrs = set(per_block)
    if scan_images:
        addrs.update(reader.addresses())

    corrupt, unreadable = [], []
    blocks_written = 0
    for addr in sorted(addrs):
        ws = per_block.get(addr, ())
        pair, vol, blk = addr
        try:
            data = reader.read(pair, vol, blk)
        except Unreadable as e:
            unreadable.append({"pair": pair, "vol": vol, "block": blk, "reason": str(e)})
            for w in ws:
                w.state = UNKNOWN
            continue
        st = _payload.inspect(data)
        visible = None
        bad = None
        if st.status == _payload.EMPTY:
            pass
        elif st.status == _payload.VALID:
            blocks_written += 1
            p = st.payload
            w = by_id.get(p.serial)
            if p.address != addr:
                bad = ("misplaced payload: write %s of pair %d vol %d block %d"
                       % (p.serial, p.pair, p.vol, p.block))
            elif w is None:
                bad = "payload of write %s, which the log never issued" % p.serial
            elif w.address != addr:
                bad = ("payload of write %s, which the log sent to pair %d vol %d block %d"
                       % (p.serial, w.pair, w.vol, w.block))
            elif w.writer is not None and p.writer != w.writer:
                bad = "payload of write %s by writer %s, the log's is writer %s" % (
                    p.serial, p.writer, w.writer)
            elif w.bver is not None and p.bver != w.bver:
                bad = "payload of write %s with block version %d, the log says %d" % (
                    p.serial, p.bver, w.bver)
            else:
                visible = w
            if bad:
                corrupt.append({"pair": pair, "vol": vol, "block": blk, "status": "invalid",
                                "reason": bad, "id": p.serial})
        else:
            blocks_written += 1
            bad = st.reason
            corrupt.append({"pair": pair, "vol": vol, "block": blk, "status": st.status,
                            "reason": bad, "id": None})
        if bad:
            for w in ws:
                w.state = UNKNOWN
            continue
        if visible is None:
            for w in ws:
                w.state = LOST
            continue
        v = visible
        for w in ws:
            if w is v:
                w.state = INCLUDED
            elif w.ckey is not None and w.ckey <= v.ikey:
                w.state = INCLUDED
            elif v.ckey is not None and w.ikey >= v.ckey:
                w.state = LOST
            else:
                w.state = AMBIGUOUS

    included = [w for w in writes if w.state == INCLUDED]
    lost = sorted((w for w in writes if w.state == LOST and w.ok is True), key=lambda w: w.ckey)
    lost_keys = [w.ckey for w in lost]

    violations = []
    vtotal = vpairs = 0
    included.sort(key=lambda w: w.ikey)
    for inc in included:
        n = bisect_left(lost_keys, inc.ikey)
        d = by_id.get(inc.dep) if inc.dep is not None else None
        dep_lost = d is not None and d.state == LOST and d.ok is True
        if n == 0 and not dep_lost:
            continue
        vtotal += 1
        vpairs += n
        if dep_lost and not d.ckey < inc.ikey:
            vpairs += 1             # causal through dep, though not ordered by the clock
        if len(violations) < max_violations:
            violations.append(_violation(inc, d if dep_lost else lost[n - 1], dep_lost))

    acked = [w.complete_us for w in writes if w.ok is True]
    last_ack = max(acked) if acked else None
    if disaster_us is not None:
        end_us = disaster_us
    elif log_end is not None:
        end_us = log_end
    else:
        end_us = last_ack
    recovery_point = lost[0].complete_us if lost else None
    rpo_ms = 0.0
    if lost and end_us is not None:
        rpo_ms = max(0, end_us - recovery_point) / 1000.0

    return Report(
        consistent=(vtotal == 0 and not corrupt and not unreadable),
        violations=violations,
        violations_total=vtotal,
        violating_pairs=vpairs,
        writes_total=len(writes),
        writes_completed=len(acked),
        writes_failed=sum(1 for w in writes if w.ok is False),
        writes_inflight=sum(1 for w in writes if w.complete_us is None),
        writes_recovered=len(included),
        included_unacked=sum(1 for w in included if w.ok is not True),
        lost_acked=len(lost),
        lost_acked_ids=[w.id for w in lost[:max_list]],
        writes_ambiguous=sum(1 for w in writes if w.state == AMBIGUOUS),
        writes_unknown=sum(1 for w in writes if w.state == UNKNOWN),
        corrupt=corrupt,
        unreadable=unreadable,
        blocks_checked=len(addrs) - len(unreadable),
        blocks_written=blocks_written,
        last_ack_us=last_ack,
        end_us=end_us,
        recovery_point_us=recovery_point,
        rpo_ms=rpo_ms,
        log_warnings=warnings,
        log_warnings_total=nwarn[0],
    )
