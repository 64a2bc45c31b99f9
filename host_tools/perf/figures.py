"""The figures that say how well and how fast: `arcopy perf` sections measured side by side.

    arcopy perf async-sync goodput rpo ckpt-cost copy-latency heap [--quick] [--json FILE]

Every figure is measured in one run and reported as a ratio or a median next to its reference
(never asserted in a timed test):

  async-sync    host write latency p50/p99, asynchronous vs synchronous mode, at peer-link round
                trips of 2, 20 and 100 ms (simulator)
  goodput       peer-link goodput as a fraction of the line rate, one record per frame vs batched,
                at a saturating load (simulator)
  rpo           RPO at a random disaster for checkpoint intervals 50 ms .. 2 s, median over seeds,
                as a ratio to (interval + one record's transfer time) (simulator)
  ckpt-cost     checkpoint round cost for 2 .. 32 pairs: bus frames per round and ms from
                CHECKPOINT (primary master) to RESET_UIP (secondary master), growth per pair
  copy-latency  host write latency with copy active vs no copy, in the simulator and on the
                emulated rig (two rigs up at once, rounds alternating; host_tools/perf/rig_latency.py)
  heap          firmware peak heap per board in real MicroPython (tests/mpy/t_boot.py)

The simulator runs are observed, never steered: `Observer` takes the firmware's trace events
(``World.add_tracer``) and the buses' and links' ``on_send`` hooks to timestamp what happens, and
samples node statistics from scheduler events; nothing is wrapped or replaced, and none of it
changes a decision of the core.
"""
import math
import os
import re
import statistics
import subprocess
import sys

from firmware import codec
from firmware import wire
from host_tools.perf.registry import section
from host_tools.sim.rng import FaultOptions
from host_tools.sim.world import World
from host_tools.check.workload import Workload

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BAUD = 115200
BITS_PER_BYTE = 10
# a WRITE_BATCH frame carrying one record: the unit of transfer at the peer baud
ONE_RECORD_FRAME = wire.OVERHEAD + codec.SZ_BATCH_HEAD + wire.RECORD_SIZE
MODES = {"clock": wire.MODE_CLOCK, "sync": wire.MODE_SYNC, "clockless": wire.MODE_CLOCKLESS}
MTYPE_NAMES = {wire.T_COPY_ACTIVE: "COPY_ACTIVE", wire.T_CLOCK_SYNC: "CLOCK_SYNC",
               wire.T_CHECKPOINT: "CHECKPOINT", wire.T_RELEASE: "RELEASE",
               wire.T_UPDATE_COMPLETE: "UPDATE_COMPLETE", wire.T_RESET_UIP: "RESET_UIP",
               wire.T_RESIGN: "RESIGN", wire.T_IDLE: "IDLE", wire.T_WRITE_BATCH: "WRITE_BATCH",
               wire.T_ACK: "ACK", wire.T_NAK: "NAK", wire.T_PEER_HELLO: "PEER_HELLO", wire.T_HELD: "HELD",
               wire.T_MARKER: "MARKER", wire.T_JOIN: "JOIN"}
# frames that exist because of checkpoint rounds (the rest: beacons, heartbeats, clock reports)
ROUND_TYPES = (wire.T_CHECKPOINT, wire.T_HELD, wire.T_RELEASE, wire.T_UPDATE_COMPLETE, wire.T_RESET_UIP)
_HDR_TYPE = 3                       # offset of the message type in the frame header


def transfer_ms(nbytes, baud=BAUD):
    return nbytes * BITS_PER_BYTE * 1000.0 / baud


# ---- small statistics helpers ------------------------------------------------------------------
def pct(xs, p):
    """Nearest-rank percentile of a list (sorted or not); None for an empty list."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def r3(x, nd=3):
    return None if x is None else round(x, nd)


def slope(xs, ys):
    """Least-squares slope of ys over xs (None with fewer than two distinct points)."""
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    if den == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den


def progress(items, desc):
    """Iterate with a progress bar on stderr (only when stderr is a terminal)."""
    items = list(items)
    try:
        from tqdm import tqdm
    except ImportError:                 # pragma: no cover - tqdm is a pinned dependency
        return items
    return tqdm(items, desc=desc, unit="run", file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())


def write_latencies_us(log, since_us=None):
    """Completion minus issue time of every acknowledged write (issued at or after since_us)."""
    return [e.complete_us - e.issue_us for e in log
            if e.ok and e.complete_us is not None and (since_us is None or e.issue_us >= since_us)]


# ---- building an observed world -------------------------------------------------------------------
def build_world(seed=1, pairs=4, duration_s=10.0, start_s=1.5, rate=20.0, kind="random",
                concurrency=4, mode="clock", ckpt_ms=200.0, peer_latency_us=1000, peer_baud=BAUD,
                batch_max=7, autostart=True, journal_slots=512, vol_blocks=128, burst=0,
                burst_at_s=0.0, disk_factory=None, config=None, peer_ber=0.0, peer_frame_loss=0.0):
    """A fault-free World (no disaster unless the caller calls world.disaster()) with a
    workload from start_s to duration_s; rate None means no host writes at all; peer_ber and
    peer_frame_loss make the peer links noisy (bit errors, whole transmissions lost).
    Returns (world, workload or None)."""
    d_us = int(duration_s * 1e6)
    start_us = int(start_s * 1e6)
    fo = FaultOptions.from_seed(seed, frozenset(), pairs, d_us)   # clock offsets from the seed
    fo.peer_latency_us = int(peer_latency_us)
    fo.peer_ber = peer_ber
    fo.peer_frame_loss = peer_frame_loss
    cfg = {"mode": MODES[mode], "ckpt_interval_us": int(ckpt_ms * 1000), "batch_max": batch_max,
           "peer_timeout_us": max(1000000, 4 * int(peer_latency_us) + 500000)}
    cfg.update(config or {})
    wl = None
    if rate is not None:
        wl = Workload(kind=kind, pairs=pairs, vols=1, blocks=vol_blocks, rate=rate,
                      duration_us=max(1, d_us - start_us), concurrency=concurrency, seed=seed,
                      burst=burst, burst_at_us=int(burst_at_s * 1e6))
    world = World(seed=seed, workload=wl, fault_options=fo, pairs=pairs, duration_us=d_us,
                  vol_blocks=vol_blocks, journal_slots=journal_slots, bus_baud=BAUD,
                  peer_baud=peer_baud, autostart=autostart, workload_start_us=start_us,
                  config=cfg, disk_factory=disk_factory)
    return world, wl


class Observer:
    """Timestamps what a World does, without steering it.

    - checkpoints, from the firmware's trace events (``world.add_tracer``): ``issued[T]`` (first
      accepted by a primary, "ckpt_accepted": the master issues it; its number in ``labels[T]``),
      ``held[T][board]`` (a secondary journaled the marker, "ckpt_held"), ``released[T]`` (the
      secondary master decided the release, "release"), ``reset[T]`` (the secondary master
      decided RESET_UIP, "reset");
    - frames: ``frames`` = [(virtual us, where, mtype, nbytes)] for every transmission on the
      buses ("bus-p", "bus-s") and peer links ("peer<i>:a>b" primary to secondary, ":b>a"),
      from the buses' and links' ``on_send`` hooks;
    - samples: ``every(period_us, fn)`` calls fn(now) from scheduler events.
    Virtual times are the simulator's (the host PC's) microseconds. ``close()`` detaches it all.
    """

    def __init__(self, world, frames=True):
        self.world = world
        self.issued = {}
        self.labels = {}
        self.held = {}
        self.released = {}
        self.reset = {}
        self.frames = []
        self._undo = [world.add_tracer(self._trace)]
        if frames:
            for bus in (world.bus_p, world.bus_s):
                self._tap(bus, bus.name)
            for link in world.links:
                self._tap(link, (link.name + ":a>b", link.name + ":b>a"))

    def _trace(self, board, now, event, n, t):
        if event == "ckpt_accepted":
            if t not in self.issued:
                self.issued[t] = now
                self.labels[t] = n
        elif event == "ckpt_held":
            self.held.setdefault(t, {}).setdefault(board, now)
        elif event == "release":
            self.released.setdefault(t, now)
        elif event == "reset":
            self.reset.setdefault(t, now)

    def _tap(self, obj, where):
        """Record every send(x, data) of a bus or link through its on_send hook."""
        if obj.on_send is not None:
            raise RuntimeError("%s is already observed" % obj.name)
        frames = self.frames
        sched = self.world.sched

        def on_send(x, data):
            w = where if isinstance(where, str) else where[x]
            frames.append((sched.now, w, data[_HDR_TYPE] if len(data) > _HDR_TYPE else -1, len(data)))
        obj.on_send = on_send

        def detach():
            obj.on_send = None
        self._undo.append(detach)

    def every(self, period_us, fn, until_us=None):
        sched = self.world.sched

        def tick():
            fn(sched.now)
            if until_us is None or sched.now + period_us <= until_us:
                sched.after(period_us, tick)
        sched.after(period_us, tick)

    def rounds(self):
        """[(T, issued, all held, released, reset)] of every checkpoint the secondaries reset,
        times in virtual us (all held: None if a marker was never seen)."""
        out = []
        for t in sorted(self.reset):
            if t not in self.issued:
                continue
            h = self.held.get(t)
            out.append((t, self.issued[t], max(h.values()) if h else None,
                        self.released.get(t), self.reset[t]))
        return out

    def frame_counts(self, t0, t1, where_prefix=None, types=None):
        n = 0
        for at, where, mt, _ in self.frames:
            if t0 <= at < t1 and (where_prefix is None or where.startswith(where_prefix)) \
                    and (types is None or mt in types):
                n += 1
        return n

    def close(self):
        while self._undo:
            self._undo.pop()()


class CountingDisk:
    """A block device wrapper that counts block writes (the cost a board pays on its SD card);
    ``in_host_write`` counts those made while the firmware's ``Primary.host_write`` is on the
    call stack (read from the stack, nothing wrapped), i.e. before the host gets its reply."""

    def __init__(self, inner):
        self.inner = inner
        self.writes = 0
        self.in_host_write = 0

    def writeblocks(self, n, buf, *rest):
        k = len(buf) // wire.BLOCK_SIZE or 1
        self.writes += k
        if _called_from(_host_write_code()):
            self.in_host_write += k
        return self.inner.writeblocks(n, buf, *rest)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _host_write_code():
    from firmware import primary
    return primary.Primary.host_write.__code__


def _called_from(code):
    """True if a frame running `code` is on the caller's stack."""
    f = sys._getframe(2)
    while f is not None:
        if f.f_code is code:
            return True
        f = f.f_back
    return False


def counting_disks():
    """(disk_factory, {board name: CountingDisk})."""
    from host_tools.sim.world import _default_disk_factory
    disks = {}

    def factory(name, cfg, rng, nblocks):
        d = CountingDisk(_default_disk_factory(name, cfg, rng, nblocks))
        disks[name] = d
        return d
    return factory, disks


# ---- section: async-sync ----------------------------------------------------------------------------
RTTS_MS = (2, 20, 100)


def latency_run(mode, rtt_ms, seed, quick, pairs=4, rate=20.0):
    dur = 12.0 if quick else 40.0
    world, wl = build_world(seed=seed, pairs=pairs, duration_s=dur, rate=rate, mode=mode,
                            peer_latency_us=rtt_ms * 500)
    world.run()
    failed = sum(1 for e in wl.log if e.ok is False)
    return write_latencies_us(wl.log), failed


@section("async-sync", "host write latency, asynchronous vs synchronous mode, at peer round trips "
                       "of 2, 20, 100 ms (simulator)")
def perf_async_sync(quick):
    seeds = (1,) if quick else (1, 2, 3)
    rows = []
    failed_total = 0
    runs = [(rtt, mode, seed) for rtt in RTTS_MS for mode in ("clock", "sync") for seed in seeds]
    lat = {}
    for rtt, mode, seed in progress(runs, "async-sync"):
        xs, failed = latency_run(mode, rtt, seed, quick)
        lat.setdefault((rtt, mode), []).extend(xs)
        failed_total += failed
    for rtt in RTTS_MS:
        a = lat[(rtt, "clock")]
        s = lat[(rtt, "sync")]
        a50, a99, s50, s99 = (pct(a, 50) / 1000.0, pct(a, 99) / 1000.0,
                              pct(s, 50) / 1000.0, pct(s, 99) / 1000.0)
        rows.append([rtt, r3(a50), r3(a99), r3(s50), r3(s99), r3(s50 / a50, 1), r3(s99 / a99, 1),
                     len(a), len(s)])
    return {
        "tables": [{
            "title": "host write latency (ms), 4 pairs, 20 writes/s (dependent random chains), "
                     "peer link %d baud" % BAUD,
            "columns": ["round trip ms", "async p50", "async p99", "sync p50", "sync p99",
                        "sync/async p50", "sync/async p99", "async writes", "sync writes"],
            "rows": rows}],
        "notes": [
            "asynchronous latency is the host port round trip the simulator models (2 x 200 us): the "
            "simulator charges no time for disk or CPU, so it is the protocol's share only",
            "synchronous latency = peer round trip + the record's own wire time (%d-byte frame = %.1f ms "
            "at %d baud) + queueing behind other records on the link" % (
                ONE_RECORD_FRAME, transfer_ms(ONE_RECORD_FRAME), BAUD),
            "%d seed(s) pooled per row; %d write(s) refused (not counted)" % (len(seeds), failed_total),
        ],
    }


# ---- section: goodput -------------------------------------------------------------------------------
NOISY = dict(peer_ber=5e-6, peer_frame_loss=0.03)      # a noisy peer line (as in the fault drills)


def goodput_run(batch_max, seed, quick, pairs=2, ckpt_ms=200.0, noisy=False):
    """Saturating load (offered ~1.4x what a link carries); goodput measured over a window that
    starts once a backlog exists and ends with the workload."""
    dur = 14.0 if quick else 60.0
    warm_s = 3.0
    per_link = BAUD / BITS_PER_BYTE / ONE_RECORD_FRAME          # records/s one link carries unbatched
    rate = 1.4 * per_link * pairs
    world, wl = build_world(seed=seed, pairs=pairs, duration_s=dur, rate=rate, concurrency=16,
                            batch_max=batch_max, ckpt_ms=ckpt_ms,
                            journal_slots=2048 if not quick else 1024, **(NOISY if noisy else {}))
    obs = Observer(world)
    samples = {}
    t0 = int((1.5 + warm_s) * 1e6)
    t1 = int(dur * 1e6)

    def snap(now):
        samples[now] = [b.stats().get("records_received", 0) for b in world.secondaries]
    world.sched.schedule(t0, lambda: snap(t0))
    world.sched.schedule(t1 - 1, lambda: snap(t1 - 1))
    try:
        world.run()
    finally:
        obs.close()
    a, b = samples[t0], samples[t1 - 1]
    dt = (t1 - 1 - t0) / 1e6
    recs = [y - x for x, y in zip(a, b)]
    line = BAUD / BITS_PER_BYTE
    fracs = [r * wire.BLOCK_SIZE / dt / line for r in recs]
    data_frames = obs.frame_counts(t0, t1, "peer", (wire.T_WRITE_BATCH,))
    ab = [(at, w, mt, n) for at, w, mt, n in obs.frames if t0 <= at < t1 and w.endswith("a>b")]
    busy = sum(n for _, _, _, n in ab) * BITS_PER_BYTE / BAUD / dt / pairs
    failed = sum(1 for e in wl.log if e.ok is False)
    return {"goodput": statistics.mean(fracs), "per_link": fracs, "records_per_s": sum(recs) / dt / pairs,
            "records_per_frame": sum(recs) / data_frames if data_frames else None,
            "line_busy": busy, "failed": failed, "offered": rate / pairs}


@section("goodput", "peer-link goodput as a fraction of line rate, one record per frame vs batched, "
                    "saturating load (simulator)")
def perf_goodput(quick):
    seeds = (1,) if quick else (1, 2)
    rows = []
    res = {}
    notes = []
    variants = ((1, 200.0, "one record per frame"), (7, 200.0, "batched (batch_max 7)"),
                (7, 1000.0, "batched, 1 s checkpoints"), (7, 50.0, "batched, 50 ms checkpoints"),
                (7, 200.0, "batched, noisy link"))
    runs = [(v, s) for v in variants for s in seeds]
    for v, s in progress(runs, "goodput"):
        res.setdefault(v, []).append(goodput_run(v[0], s, quick, ckpt_ms=v[1], noisy="noisy" in v[2]))
    full = codec.MAX_BATCH
    for v in variants:
        bm, ckpt_ms, label = v
        rs = res[v]
        g = statistics.median(r["goodput"] for r in rs)
        nrec = 1 if bm == 1 else min(bm, full)
        ceiling = nrec * wire.BLOCK_SIZE / (wire.OVERHEAD + codec.SZ_BATCH_HEAD + nrec * wire.RECORD_SIZE)
        rpf = [r["records_per_frame"] for r in rs if r["records_per_frame"]]
        rows.append([label, bm, int(ckpt_ms), r3(statistics.median(r["records_per_s"] for r in rs), 2),
                     round(statistics.median(r["records_per_s"] for r in rs) * wire.BLOCK_SIZE),
                     BAUD // BITS_PER_BYTE, r3(g), r3(ceiling), r3(statistics.median(rpf) if rpf else None, 2),
                     r3(statistics.median(r["line_busy"] for r in rs))])
        if any(r["failed"] for r in rs):
            notes.append("%s: %d write(s) refused (journal full?)" % (label, sum(r["failed"] for r in rs)))
    g7 = rows[1][6]
    notes[:0] = [
        "goodput = record data bytes journaled by the secondaries per second / (baud / 10), per link, "
        "median over %d seed(s); 2 pairs offered %.1f writes/s each (1.4x an unbatched link)"
        % (len(seeds), res[variants[0]][0]["offered"]),
        "ceiling = data bytes / wire bytes of a frame of that many records (%d-byte head, %d-byte record "
        "header); a checkpoint marker ends its batch (%d bytes inside the frame after stream records, a "
        "%d-byte MARKER frame otherwise), so batches are shorter than batch_max when markers come more "
        "often than batch_max records"
        % (codec.SZ_BATCH_HEAD, wire.RECORD_HDR, codec.SZ_MARKER, wire.OVERHEAD + codec.SZ_MARKER),
        "line busy = bytes handed to the primary's UART in the window x 10 / baud / window length "
        "(frames straddling the window's edges make it exact only to about one frame)",
        "noisy link: bit error rate %.0e and %.0f %% of transmissions lost on each peer line (go-back-N "
        "resends; batches shrink after a go-back and grow back on clean acknowledgements)"
        % (NOISY["peer_ber"], 100 * NOISY["peer_frame_loss"]),
        "goal: >= 0.95 batched (200 ms checkpoints): %s (%.3f)" % ("met" if g7 >= 0.95 else "NOT met", g7),
    ]
    return {"tables": [{
        "title": "peer-link goodput at %d baud 8N1, saturating load" % BAUD,
        "columns": ["framing", "batch_max", "ckpt ms", "records/s per link", "data B/s", "line B/s",
                    "goodput (of line)", "ceiling", "records per data frame", "line busy"],
        "rows": rows}], "notes": notes}


# ---- section: rpo -------------------------------------------------------------------------------------
INTERVALS_MS = (50, 100, 200, 500, 1000, 2000)


@section("rpo", "RPO at a random disaster vs checkpoint interval, median over seeds, as a ratio to "
                "(interval + one record's transfer) (simulator)")
def perf_rpo(quick):
    from host_tools.sim.scenario import run_scenario
    seeds = tuple(range(1, 4)) if quick else tuple(range(1, 22))
    dur = 8.0 if quick else 16.0
    rec_ms = transfer_ms(ONE_RECORD_FRAME)
    res = {}
    runs = [(iv, s) for iv in INTERVALS_MS for s in seeds]
    for iv, s in progress(runs, "rpo"):
        r = run_scenario(seed=s, pairs=4, duration_s=dur, faults="none", kind="ims", rate=40.0,
                         ckpt_interval_ms=iv, settle_s=3.0)
        res.setdefault(iv, []).append(r)
    rows = []
    for iv in INTERVALS_MS:
        rs = res[iv]
        rpos = [r["rpo_ms"] for r in rs]
        ref = iv + rec_ms
        med = statistics.median(rpos)
        rows.append([iv, len(rs), sum(1 for r in rs if r["consistent"]), r3(med, 1), r3(max(rpos), 1),
                     r3(ref, 1), r3(med / ref), r3(max(rpos) / ref),
                     round(statistics.median(r["lost_acked"] for r in rs))])
    return {"tables": [{
        "title": "RPO at a random disaster (4 pairs, ims workload 40 writes/s, no other faults, "
                 "%g s runs)" % dur,
        "columns": ["interval ms", "runs", "consistent", "RPO median ms", "RPO max ms",
                    "interval + record ms", "median / ref", "max / ref", "lost acked (median)"],
        "rows": rows}], "notes": [
        "RPO = disaster instant - completion of the earliest acknowledged write the recovered image "
        "lacks (the checker's figure); ref = interval + %.1f ms (one %d-byte record frame at %d baud)"
        % (rec_ms, ONE_RECORD_FRAME, BAUD),
        "the disaster instant comes from the seed, so each interval sees the same %d instants" % len(seeds),
        "what is lost is the work since the newest checkpoint whose round had completed, so the RPO "
        "lies between one round time and interval + round time; the ref counts only one record's "
        "transfer, so max / ref can exceed 1 by the bus rounds (see ckpt-cost)",
    ]}


# ---- section: ckpt-cost --------------------------------------------------------------------------------
PAIRS = (2, 4, 8, 16, 32)


def ckpt_run(pairs, seed, quick):
    """Idle peer links (no host writes), default checkpoint interval; rounds counted from the
    first RESET_UIP to the end."""
    dur = 8.0 if quick else 24.0
    world, _ = build_world(seed=seed, pairs=pairs, duration_s=dur, rate=None, vol_blocks=16,
                           journal_slots=64)
    obs = Observer(world)
    try:
        world.run()
    finally:
        obs.close()
    rounds = obs.rounds()
    if len(rounds) < 2:
        return None
    t0 = rounds[0][4]
    t1 = world.now
    in_win = [r for r in rounds if r[4] > t0]
    frames_all = obs.frame_counts(t0, t1, "bus")
    frames_round = obs.frame_counts(t0, t1, "bus", ROUND_TYPES)
    n = len(in_win)
    return {"cycle_ms": world.boards["p0"].cfg.cycle_us / 1000.0,
            "lat": [(r[4] - r[1]) / 1000.0 for r in rounds],
            "rel": [(r[3] - r[1]) / 1000.0 for r in rounds if r[3] is not None],
            "rounds": n, "frames_all": frames_all / n if n else None,
            "frames_round": frames_round / n if n else None,
            "issued": len(obs.issued)}


@section("ckpt-cost", "checkpoint round cost for 2..32 pairs: bus frames per round, ms from "
                      "CHECKPOINT to RESET_UIP, growth per added pair (simulator)")
def perf_ckpt_cost(quick):
    seeds = (1,) if quick else (1, 2, 3)
    res = {}
    runs = [(p, s) for p in PAIRS for s in seeds]
    for p, s in progress(runs, "ckpt-cost"):
        r = ckpt_run(p, s, quick)
        if r is not None:
            res.setdefault(p, []).append(r)
    rows = []
    med = {}
    fr = {}
    for p in PAIRS:
        rs = res.get(p, [])
        lat = [x for r in rs for x in r["lat"]]
        rel = [x for r in rs for x in r["rel"]]
        if not lat:
            rows.append([p, None, 0, None, None, None, None, None])
            continue
        med[p] = statistics.median(lat)
        fr[p] = statistics.mean(r["frames_round"] for r in rs)
        rows.append([p, r3(rs[0]["cycle_ms"], 1), sum(r["rounds"] for r in rs), r3(med[p], 1),
                     r3(pct(lat, 90), 1), r3(statistics.median(rel), 1) if rel else None,
                     r3(fr[p], 1), r3(statistics.mean(r["frames_all"] for r in rs), 1)])
    growth = []
    ps = [p for p in PAIRS if p in med]
    for a, b in zip(ps, ps[1:]):
        growth.append(["%d -> %d" % (a, b), r3((med[b] - med[a]) / (b - a), 2),
                       r3((fr[b] - fr[a]) / (b - a), 2)])
    growth.append(["least squares, all", r3(slope(ps, [med[p] for p in ps]), 2),
                   r3(slope(ps, [fr[p] for p in ps]), 2)])
    return {"tables": [
        {"title": "checkpoint round cost (idle peer links, interval 200 ms, both buses at %d baud)" % BAUD,
         "columns": ["pairs", "bus cycle ms", "rounds", "ckpt->reset median ms", "ckpt->reset p90 ms",
                     "ckpt->release median ms", "round frames/round", "all bus frames/round"],
         "rows": rows},
        {"title": "growth per added pair",
         "columns": ["pairs", "ms per added pair", "round frames per added pair"], "rows": growth}],
        "notes": [
            "ckpt->reset: from the primary master issuing CHECKPOINT T to the secondary master deciding "
            "RESET_UIP for T (rounds that reset); checkpoints cut while a round runs are skipped by it",
            "round frames: CHECKPOINT (primary bus broadcasts), HELD (secondary members' held reports), RELEASE, "
            "UPDATE_COMPLETE, RESET_UIP on both buses; all bus frames adds beacons, heartbeats and clock "
            "reports; per round = frames / rounds over the window after the first reset",
            "the bus cycle is (members + 1) slots of %.1f ms with a 50 ms floor, so above ~5 pairs every "
            "round step that waits for a slot grows linearly with the pairs"
            % ((80 * 10000000 // BAUD + 2000) / 1000.0),
        ]}


# ---- section: copy-latency -------------------------------------------------------------------------------
def copy_run(copy, seed, quick, pairs=4, rate=40.0):
    dur = 12.0 if quick else 60.0
    factory, disks = counting_disks()
    start_s = 1.5
    world, wl = build_world(seed=seed, pairs=pairs, duration_s=dur, start_s=start_s, rate=rate,
                            autostart=copy, disk_factory=factory)
    marks = []

    def mark():
        marks.append((sum(disks[b.name].writes for b in world.primaries),
                      sum(b.stats().get("writes_completed", 0) for b in world.primaries)))
    # block writes counted while the workload runs (not the format and boot before it)
    world.sched.schedule(int(start_s * 1e6) - 1, mark)
    world.run()
    mark()
    blocks = marks[1][0] - marks[0][0]
    writes = marks[1][1] - marks[0][1]
    in_write = sum(disks[b.name].in_host_write for b in world.primaries)
    calls = sum(b.stats().get("host_writes", 0) for b in world.primaries)
    return (write_latencies_us(wl.log), blocks, writes, sum(1 for e in wl.log if e.ok is False),
            in_write / calls if calls else None)


def rig_rounds_table(emu, ab):
    """The per-round table of an A/B latency measurement on the emulated rig
    (`rig_latency.measure`): `ab` says what A and B are."""
    per = [[rd["round"], rd["order"], rd["off"]["writes"], rd["on"]["writes"], r3(rd["off"]["p50"]),
            r3(rd["on"]["p50"]), r3(ratio(rd["on"]["p50"], rd["off"]["p50"])), r3(rd["off"]["p99"]),
            r3(rd["on"]["p99"]), r3(ratio(rd["on"]["p99"], rd["off"]["p99"]))] for rd in emu["rounds"]]
    pm = emu["params"]
    return {"title": "emulated rig rounds (%s; %d pairs each, %g writes/s for %g s per round and "
                     "condition)" % (ab, pm["pairs"], pm["rate"], pm["seconds"]),
            "columns": ["round", "order", "A writes", "B writes", "A p50 ms", "B p50 ms", "B/A p50",
                        "A p99 ms", "B p99 ms", "B/A p99"],
            "rows": per}


@section("copy-latency", "host write latency with copy active vs no copy, in the simulator and on "
                         "the emulated rig (real firmware processes on ptys)")
def perf_copy_latency(quick):
    from host_tools.perf import rig_latency
    seeds = (1,) if quick else (1, 2, 3)
    res = {}
    runs = [(c, s) for c in (False, True) for s in seeds]
    for c, s in progress(runs, "copy-latency"):
        lat, blocks, writes, failed, on_path = copy_run(c, s, quick)
        r = res.setdefault(c, {"lat": [], "blocks": 0, "writes": 0, "failed": 0, "path": []})
        r["path"].append(on_path)
        r["lat"].extend(lat)
        r["blocks"] += blocks
        r["writes"] += writes
        r["failed"] += failed
    off = res[False]
    o50, o99 = pct(off["lat"], 50) / 1000.0, pct(off["lat"], 99) / 1000.0
    rows = []
    for c, label in ((False, "no copy (copy never started)"), (True, "copy active (asynchronous)")):
        r = res[c]
        p50, p99 = pct(r["lat"], 50) / 1000.0, pct(r["lat"], 99) / 1000.0
        rows.append(["simulator", label, len(r["lat"]), r3(p50), r3(p99), r3(p50 / o50), r3(p99 / o99),
                     r3(statistics.mean(r["path"]), 2),
                     r3(r["blocks"] / r["writes"] if r["writes"] else None, 2)])
    on = rows[1]
    notes = [
        "goal: p50 and p99 ratios <= 1.05: %s in the simulator (%.3f / %.3f)"
        % ("met" if on[5] <= 1.05 and on[6] <= 1.05 else "NOT met", on[5], on[6])]
    emu = rig_latency.measure(quick)
    tables = []
    if emu["ok"]:
        eoff, eon = emu["off"], emu["on"]
        r50, r99 = ratio(eon["p50"], eoff["p50"]), ratio(eon["p99"], eoff["p99"])
        rows.append(["emulated rig", "no copy (copy never started)", eoff["writes"], r3(eoff["p50"]),
                     r3(eoff["p99"]), 1.0, 1.0, None, None])
        rows.append(["emulated rig", "copy active (asynchronous)", eon["writes"], r3(eon["p50"]),
                     r3(eon["p99"]), r3(r50), r3(r99), None, None])
        pm = emu["params"]
        table = rig_rounds_table(emu, "A: copy never started, B: copy active")
        per = table["rows"]
        tables.append(table)
        met = r50 is not None and r99 is not None and r50 <= 1.05 and r99 <= 1.05
        pr50 = [x[6] for x in per if x[6] is not None]
        pr99 = [x[9] for x in per if x[9] is not None]
        cs = emu["copy_status"]
        notes += [
            "goal: p50 and p99 ratios <= 1.05: %s on the emulated rig (%s / %s)"
            % ("met" if met else "NOT met", _fmt3(r50), _fmt3(r99)),
            "emulated rig: two rigs of %d pairs up at once (%d firmware processes + 2 hubs on ptys, "
            "buses and peer links at %d baud), copy never started on A, started on B; the same "
            "%s workload (%g writes/s, same seed per round) driven into A's and B's primaries in %d "
            "rounds of %g s each, order alternating; latency = completion - issue time in the "
            "workload log; p50 / p99 = medians of the rounds' p50 / p99 (median of the per-round "
            "ratios: p50 %s, p99 %s); %.0f s in all"
            % (pm["pairs"], 4 * pm["pairs"], BAUD, pm["kind"], pm["rate"], pm["rounds"], pm["seconds"],
               _fmt3(statistics.median(pr50) if pr50 else None),
               _fmt3(statistics.median(pr99) if pr99 else None), emu["wall_s"]),
            "emulated rig: each board is a CPython process writing an image file, so a block write "
            "costs microseconds, not an SD card's milliseconds; a round has %d writes per condition, so "
            "its p99 is its slowest write or two and much noisier than the p50; over all rounds' "
            "writes pooled: no copy p50 %s p99 %s ms, copy p50 %s p99 %s ms (ratios %s / %s)"
            % (eoff["writes"] // max(1, pm["rounds"]), _fmt3(eoff["pooled_p50"]), _fmt3(eoff["pooled_p99"]),
               _fmt3(eon["pooled_p50"]), _fmt3(eon["pooled_p99"]),
               _fmt3(ratio(eon["pooled_p50"], eoff["pooled_p50"])),
               _fmt3(ratio(eon["pooled_p99"], eoff["pooled_p99"]))),
            "emulated rig: refused / timed-out writes: no copy %d, copy %d; retried (busy / not "
            "ready): no copy %d, copy %d; at the end B had %d of %d boards duplex, checkpoint %s "
            "applied on every secondary"
            % (eoff["failed"], eon["failed"], eoff["retries"], eon["retries"], cs["duplex"], cs["boards"],
               cs["applied"]),
            "emulated rig: block writes per host write are not shown (a board does not report its "
            "block device counters over the host port); the simulator rows count them",
        ]
    else:
        rows.append(["emulated rig", "copy active vs no copy", None, None, None, None, None, None,
                     None])
        notes.append("emulated rig: not measured: %s" % emu["why"])
    notes += [
        "the simulator charges no time for disk or CPU, so its ratio shows only protocol waits; on a "
        "board each block write is an SD card write: 'block writes in the write' are those made before "
        "the reply (copy active: journal data + journal header + volume; no copy: the volume, plus a "
        "change-bitmap block the first time a block is written, so that a later start-copy moves only "
        "written blocks), the last column adds the checkpoint markers and superblock commits made "
        "between writes",
        "simulator: %d seed(s), 4 pairs, 40 writes/s; refused writes: no copy %d, copy %d"
        % (len(seeds), res[False]["failed"], res[True]["failed"]),
    ]
    tables.insert(0, {
        "title": "host write latency, copy active vs no copy (simulator: 4 pairs, 40 writes/s; emulated "
                 "rig: see below; random chains)",
        "columns": ["setup", "variant", "writes", "p50 ms", "p99 ms", "p50 / no copy", "p99 / no copy",
                    "block writes in the write", "all primary block writes / write"],
        "rows": rows})
    return {"tables": tables, "notes": notes}


def _fmt3(x):
    return "n/a" if x is None else "%.3f" % x


# ---- section: heap ------------------------------------------------------------------------------------------
HEAP_SCRIPT = os.path.join("tests", "mpy", "t_boot.py")
_NUM = r"([0-9]+(?:\.[0-9]+)?)"


def micropython_heap(timeout=300):
    """Run the two-board boot test in real MicroPython; -> (figures dict or None, why-not text)."""
    import shutil
    node = shutil.which("node")
    script = os.path.join(ROOT, HEAP_SCRIPT)
    if not os.path.exists(script):
        return None, "%s does not exist" % HEAP_SCRIPT
    if node is None:
        return None, "node is not installed"
    if not os.path.isdir(os.path.join(ROOT, "node_modules", "@micropython")):
        return None, "the MicroPython WebAssembly port is not installed (run `make node`)"
    try:
        proc = subprocess.run([node, os.path.join(ROOT, "tests", "mpy", "runner.mjs"), script], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "%s timed out after %d s" % (HEAP_SCRIPT, timeout)
    out = proc.stdout
    if proc.returncode != 0:
        last = (proc.stderr.strip() or out.strip() or "no output").splitlines()[-1]
        return None, "%s failed (exit %d): %s" % (HEAP_SCRIPT, proc.returncode, last)
    m = re.search(r"peak heap in use per board <= " + _NUM + r" KiB", out)
    if not m:
        return None, "%s printed no 'peak heap in use per board' figure" % HEAP_SCRIPT
    fig = {"peak_kib": float(m.group(1))}
    for key, pat in (("code_kib", r"\(code " + _NUM + r" KiB"),
                     ("data_kib", r"two boards' peak " + _NUM + r" KiB"),
                     ("goal_kib", r"goal " + _NUM + r" KiB")):
        mm = re.search(pat, out)
        if mm:
            fig[key] = float(mm.group(1))
    mm = re.search(r"largest: ([^\n]*)", out)
    if mm:
        fig["largest"] = mm.group(1).split(", ")[:3]
    mm = re.search(r"^heap-json: (.*)$", out, re.M)
    if mm:
        import json
        try:
            fig["detail"] = json.loads(mm.group(1))
        except ValueError:
            return None, "%s printed a heap-json line that is not JSON" % HEAP_SCRIPT
    return fig, ""


@section("heap", "firmware peak heap per board in real MicroPython (two boards booted, copying, "
                 "a checkpoint round)")
def perf_heap(quick):
    fig, why = micropython_heap()
    if fig is None:
        return {"tables": [{"title": "firmware heap in real MicroPython",
                            "columns": ["measure", "KiB"], "rows": [["peak heap in use per board", None]]}],
                "notes": ["unavailable: " + why]}
    rows = [["peak heap in use per board", fig["peak_kib"]]]
    if "code_kib" in fig:
        rows.append(["  of which firmware + HAL code", fig["code_kib"]])
    if "data_kib" in fig:
        rows.append(["  of which one board's data (half of two)", fig["data_kib"]])
    det = fig.get("detail")
    if det and "data_kib" in fig:
        kept = _kib(det["boards_retained"] / 2.0)
        rows.append(["    data still in use after a collection (retained)", kept])
        rows.append(["    garbage and transient frames between collections", round(fig["data_kib"] - kept, 1)])
    notes = ["measured by %s under the MicroPython WebAssembly port: a primary and a secondary in one "
             "interpreter, heap sampled between chunks (so it includes up to a few rounds of garbage)"
             % HEAP_SCRIPT]
    if "goal_kib" in fig:
        rows.append(["goal", fig["goal_kib"]])
        rows.append(["peak / goal", r3(fig["peak_kib"] / fig["goal_kib"])])
        notes.append("goal %g KiB: %s" % (fig["goal_kib"], "met" if fig["peak_kib"] <= fig["goal_kib"]
                                          else "NOT met"))
    if "goal_kib" in fig and "data_kib" in fig:
        # the code need not be on the heap: frozen into the firmware image or in a ROMFS it
        # runs from flash (docs/ARCHITECTURE.md, "Heap"); what is left is the data alone.
        # Measured the same way, only the code part left out: not a measurement of a board
        # running frozen or ROMFS code
        rows.append(["peak per board with the code off the heap (data only)", fig["data_kib"]])
        rows.append(["data only / goal", r3(fig["data_kib"] / fig["goal_kib"])])
        notes.append("data only (code off the heap): goal %g KiB %s; the code part is left out of "
                     "this measurement, no board ran frozen or ROMFS code here"
                     % (fig["goal_kib"], "met" if fig["data_kib"] <= fig["goal_kib"] else "NOT met"))
    tables = [{"title": "firmware heap in real MicroPython", "columns": ["measure", "KiB"], "rows": rows}]
    figures = {k: v for k, v in fig.items() if k != "detail"}
    if "data_kib" in fig:
        figures["data_only_kib"] = fig["data_kib"]
    if fig.get("detail"):
        t, f, n = heap_breakdown(fig["detail"])
        tables += t
        figures.update(f)
        notes += n
    elif fig.get("largest"):
        notes.append("largest buffers of the primary: " + ", ".join(fig["largest"]))
    if quick:
        notes.append("--quick runs the same measurement (it takes a few seconds)")
    return {"tables": tables, "notes": notes, "figures": figures}


def _kib(b):
    return round(b / 1024.0, 1)


# buffers whose size the protocol or the hardware fixes (at least one of each is needed), by
# the last part of their owner path -> why
_FLOOR_WHY = (
    (".tx", "one full frame (MAX_FRAME) built at a time: the node's tx, shared by the sender"),
    ("store._idx", "journal index: 16 bytes per journal slot"),
    ("store._bm", "change bitmap: one 512-byte block per 4064 blocks of a volume"),
    ("uart._rx_ring", "UART RX ring: what arrives at the line rate between two polls"),
    ("uart._tx_ring", "UART TX ring: frames leave without blocking the loop"),
)


def heap_breakdown(d):
    """Tables, figures (bytes) and notes from t_boot.py's heap-json numbers."""
    code = d["code"]
    mods = sorted(d["code_by_module"], key=lambda kv: -kv[1])
    t_code = {"title": "code on the heap, by module (compiled bytecode and module objects)",
              "columns": ["module", "KiB"], "rows": [[m, _kib(b)] for m, b in mods] + [["total", _kib(code)]]}
    bufs = d["buffers"]
    names = sorted(bufs)
    paths = sorted({p for b in bufs.values() for p in b},
                   key=lambda p: -max(bufs[n].get(p, 0) for n in names))
    rows = []
    for p in paths:
        rows.append([p] + [bufs[n].get(p, 0) for n in names])
    tot = [sum(bufs[n].values()) for n in names]
    per_board = d["boards_peak"] / 2.0
    other = per_board - sum(tot) / float(len(tot))
    rows.append(["total buffers"] + tot)
    rows.append(["other objects and garbage (one board's data minus its mean buffers)"]
                + [int(round(other))] * len(names))
    t_buf = {"title": "data buffers by owner (bytes; %s)" % " and ".join(
                 "%s = %s" % (n, {"P": "primary", "S": "secondary"}.get(n, n)) for n in names),
             "columns": ["owner"] + names, "rows": rows}
    # the floor: code as loaded today, the fixed buffers, one receive buffer of a full frame
    # shared by the ports, two 512-byte SD block buffers, and the objects as measured
    prim = bufs.get("P") or bufs[names[0]]
    fixed = []
    for suffix, why in _FLOOR_WHY:
        n = sum(v for p, v in prim.items() if p.endswith(suffix))
        if n:
            fixed.append([suffix, n, why])
    rx = sum(v for p, v in prim.items() if p.startswith("board.rx_ports.d")) + prim.get("board.rx", 0)
    fixed.append(["receive buffers", rx, "each port's accumulation buffer (its largest frame + one "
                  "read chunk), one frame scratch shared by the ports, the 512-byte read chunk"])
    fixed.append(["SD block buffers", 2 * wire.BLOCK_SIZE, "a record's data and a header block"])
    fixed.append(["other objects", int(round(other)), "measured above (includes some garbage)"])
    data_floor = sum(r[1] for r in fixed)
    f_rows = [[r[0], _kib(r[1]), r[2]] for r in fixed]
    f_rows.append(["data floor", _kib(data_floor), ""])
    f_rows.append(["code (compiled to the heap, as today)", _kib(code), "see the table by module"])
    f_rows.append(["floor per board", _kib(data_floor + code), "64 KiB is %s" % (
        "within reach" if data_floor + code <= 64 * 1024 else "out of reach with the code on the heap")])
    t_floor = {"title": "floor per board (KiB)", "columns": ["part", "KiB", "why"], "rows": f_rows}
    figures = {"code_bytes": code, "code_by_module_bytes": dict(d["code_by_module"]),
               "buffers_bytes": bufs, "per_board_data_bytes": int(per_board),
               "other_objects_bytes": int(round(other)), "data_floor_bytes": data_floor,
               "floor_bytes": data_floor + code}
    notes = ["floor: the code alone is %.1f KiB of heap when the modules are loaded at import; "
             "frozen into the firmware image, or deployed as a ROMFS, it would run from flash and leave "
             "the heap (docs/ARCHITECTURE.md, \"Heap\"); not measured here" % _kib(code)]
    return [t_code, t_buf, t_floor], figures, notes

