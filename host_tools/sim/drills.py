"""Seeded drills of the day-two operations (issue #8), each ending in the consistency check.

    run_ops("suspend", seed=7, faults="loss") -> dict (the keys of run_scenario, plus
    "op", "ops" (what the operation did, counted) and "op_failures")

Operations are run through the boards' host ports, as an operator would (STATUS, start
copy, suspend, resume, the dirty list, mark dirty, failback, failover: the procedures of
host_tools/ops/), at instants drawn from the seed (stream "ops/<op>", so the fault
draws do not move), while the dependent-write workload runs:

initial-copy  boards formatted with autostart off: the primaries take host writes
              while SIMPLEX (volumes with existing data; the workload log has them),
              then START_COPY (copy the marked blocks) while the workload goes on;
              every pair must reach DUPLEX.
suspend       one or two pairs suspended mid-workload and resumed later; the rest of
              the group keeps releasing checkpoints meanwhile.
autosuspend   one primary with a small journal and a long outage of its peer link: no
              host write is refused, the pair suspends itself (R_JOURNAL_FULL) and is
              resumed after the link returns.
pacing        slow peer links (or one held link) with pacing on: host completions are
              delayed (latency rises in the workload log), nothing is refused, nothing
              suspends.
master-restart  one pair suspended, the secondary bus master (s0) switched off shortly after,
              on again after a drawn outage, and the pair resumed right after that (0-3 s):
              the resumed pair must reach DUPLEX within 30 s (tests/test_cli_operator.py's
              steps on a rig).
failback      disaster (the primary site switched off) and failover; host writes at the
              failed-over secondaries; the old primaries come back; failback in the
              order arcopy uses (FAILBACK 2 to the old primaries, their marks merged
              into the peers with DIRTY_LIST/MARK_DIRTY, FAILBACK 1 to the old
              secondaries); DUPLEX; both sides compared after quiescence (a pair whose
              sites still differ once its secondary applied a cut after the last write
              is a safety failure, safety.sites_differ; one that applied no such cut in
              15 s, liveness); then a second
              disaster the other way round (the new primaries are lost), failover of the
              old primaries, and the checker over their images against what the new
              primaries were written (on top of the image recovered at the first failover).
              A FAILBACK that went unanswered (power lost around it) and then says
              S_BAD_STATE is taken as done when STATUS shows the requested role.

Every resync is counted: once both sides show DUPLEX, the copy records the primary
reports (STATUS copy_total, and copy_done once their acknowledgements are in) must equal
the copy records it journaled, and lie between the blocks marked when the copy started
(C_DIRTY_LIST just before the command) and that plus the host writes that reached the
pair while it was copying (exactly the marked blocks when no write came). Before the
disaster the drill waits until every secondary has applied the same checkpoint again (a
pair that just joined may still be behind the group's newest release: see wait_group).
Every drill ends with the disaster, group failover through the host ports, the
independent checker, and the check that no acknowledged write completed before the
recovered cut was lost.

Every operator step is a procedure of host_tools/ops/ over the world's host ports (a
SimTransport): the functions `arcopy start-copy`, `suspend`, `resume`, `failover`, `failback`
and `verify` run on a rig. The drill drives and observes; the verdict (safety apart from
liveness) comes from the checker (host_tools/check/verdict.py). A failed expectation is a
string in "op_failures" (the drill goes on when it can) and counts as a liveness failure.

Overload. With every fault class on, a noisy peer link may carry fewer records a second than
the host writes to its pair (pacing at its defaults does not slow the host enough): journals
grow on every primary, and a full one suspends its pair (R_JOURNAL_FULL, the last line of
defence; under freeze the group's cut stops there). The drill samples the primaries' journal
appends and records acknowledged every 0.5 s (harness introspection, nothing sent); a journal
that filled while its stream kept moving (acknowledgements in both halves of the 3 s before, no
crash, power cut or outage of that pair) at a rate below the host's is an overload. So is a resync
that has not joined when the drill stops waiting (autosuspend) while, over the 10 s before, its
copies kept being acknowledged at a rate no higher than the host wrote to the pair (every copy
outrun by a new mark: Drill.resync_overload; no EXPOSED flag is asked for, PENDING writes carry
none); and a resumed pair that joined but still waits for a group release at or after its join
cut while, over those 10 s, another pair's journal grew with its records acknowledged all along
more slowly than the host journaled them, by a record a second at least (the group's cut falls
behind that stream: Drill.lag_overload; no EXPOSED flag asked for either, the cut may be younger
than cut_age_max_us). In the initial-copy and autosuspend drills, "reached DUPLEX" and "a common cut 20 s after the joins"
then give way (counted in ops "overloaded" and "overload_excused"), provided the overloaded
primary flagged its host write replies exposed. A journal that filled behind a stalled stream
excuses nothing. Pacing: a completion is bounded by pace_max_us plus the commit wait's longest
hold (cycle_us + 3 slots after a change of bus master, else the clock_err_us the primaries
report) plus 2 ms. Suspend: a resume's marks may include every block of a bitmap block found
torn at mount (store bm_repaired: taken as all set).
"""
import time

from firmware import wire
from firmware.store import BM_BYTES
from host_tools import ops
from host_tools.check import payload as _payload
from host_tools.check import verdict as _verdict
from host_tools.check.workload import Workload, WorkloadLog
from .rng import parse_faults

BM_BITS = BM_BYTES * 8            # blocks one change-bitmap block covers
_SAMPLE_US = 500000               # the drill samples the primaries' stream counters this often
_FILL_WINDOW_US = 3000000         # an overload: the stream moved through these last seconds
_RESYNC_WINDOW_US = 10000000      # a resync outwritten: the copy and the host over these last seconds
_SAMPLES_KEPT = 24
from .scenario import MODES, CheckpointLog, recover, verdict_keys, _state_digest
from .transport import SimTransport
from .world import World, WorkloadDriver

OPS = ("initial-copy", "suspend", "autosuspend", "pacing", "failback", "master-restart")
TWO_PAIR_OPS = ("suspend", "master-restart")     # the other pairs must keep releasing meanwhile
PHASE2_FIRST_ID = 1000000          # write ids of the workload at the new primaries (failback)


class _Workload2(Workload):
    """A workload whose write ids start at `first_id` (a second writer in the same check)."""

    def __init__(self, *args, first_id=1, **kw):
        Workload.__init__(self, *args, **kw)
        self._next_id = first_id


class Drill:
    """One seeded world plus the operator's helpers (all through the host ports)."""

    def __init__(self, op, seed, pairs, faults, duration_s, mode, kind, rate, concurrency,
                 ckpt_interval_ms, policy, bus_baud, peer_baud, config=None, world_opts=None,
                 workload_start_s=1.0):
        self.t0 = time.perf_counter()
        self.op = op
        self.seed = seed
        self.pairs = pairs
        self.mode = mode
        self.classes = parse_faults(faults, disaster=False) - {"disaster"}
        duration_us = int(duration_s * 1e6)
        cfg = {"mode": MODES[mode], "ckpt_interval_us": int(ckpt_interval_ms * 1000),
               "policy": wire.POLICY_CONTINUE if policy == "continue" else wire.POLICY_FREEZE,
               "peer_timeout_us": 1000000}
        cfg.update(config or {})
        opts = {"vol_blocks": 128, "journal_slots": 256, "bus_baud": bus_baud,
                "peer_baud": peer_baud, "workload_start_us": int(workload_start_s * 1e6),
                "disaster": False}
        opts.update(world_opts or {})
        # the workload runs until the drill's own disaster stops it
        self.wl = Workload(kind=kind, pairs=pairs, vols=1, blocks=opts["vol_blocks"], rate=rate,
                           duration_us=600 * 1000000, concurrency=concurrency, seed=seed)
        self.world = World(seed=seed, faults=self.classes, workload=self.wl, pairs=pairs,
                           duration_us=duration_us, config=cfg, **opts)
        self.ckpts = CheckpointLog(self.world)
        self.releases = []               # virtual us of every group release (any master)
        self.joined_at = {}              # secondary -> [(virtual us, T)] of its join markers
        self._untrace = self.world.add_tracer(self._on_trace)
        self.t = SimTransport(self.world, timeout=0.5)
        self.rng = self.world.tree.stream("ops/" + op)
        self.failures = []
        self.counts = {}
        self.events = []                 # (virtual ms, text): the operator's steps
        self.wait_group = True
        self.log = self.wl.log           # the log host writes go to now (mark(), writes())
        self.disaster_delay_us = None
        self.disaster_at = "drawn"       # drawn | resync | duplex (run_ops)
        self.samples = {}                # primary -> [(t, life, next_lseq, records_acked)]
        self.was_full = {}
        self.journal_full = []           # every self-suspension for a full journal (_journal_filled)
        self.resync_overloads = []       # resyncs the host outwrote (resync_overload)
        self.overload_from = None        # liveness expectations give way to an overload from then (µs)
        self.pending = []                # (t0, failure text) decided at the disaster (excused())

    # -- plumbing ------------------------------------------------------------------------
    def _on_trace(self, name, now, event, n, t):
        if event == "release":
            self.releases.append(now)
        elif event == "joined":
            self.joined_at.setdefault(name, []).append((now, t))

    def release_gap(self, sec, t1):
        """The longest time without a group release (ms) from `sec`'s last join marker to
        t1 (µs), or None if it joined no resync: a pair that joins ahead of a lagging group
        waits for the group to release a cut at or after its join, and the group must go on
        releasing meanwhile."""
        js = self.joined_at.get(sec)
        if not js or js[-1][0] >= t1:
            return None
        t0 = js[-1][0]
        gap, last = 0, t0
        for at in self.releases:
            if t0 < at <= t1:
                gap, last = max(gap, at - last), at
        return round(max(gap, t1 - last) / 1000.0, 1)

    @property
    def now(self):
        return self.world.now

    def run_to(self, t_us):
        while t_us > self.world.now:
            nxt = (self.world.now // _SAMPLE_US + 1) * _SAMPLE_US
            self.world.run(min(t_us, nxt))
            if self.world.now >= nxt:
                self._sample()

    def _sample(self):
        """Every _SAMPLE_US: each primary's journal appends and records acknowledged (harness
        introspection, nothing sent), to tell a journal filled by an overload (its stream
        kept moving, the host wrote faster) from one filled by a stalled stream."""
        now = self.world.now
        for i in range(self.pairs):
            name = self.p(i)
            b = self.world.boards[name]
            if b.node is None:
                continue
            sb = b.node.store.sb
            st = b.node.role.stats(b.local_now())
            hist = self.samples.setdefault(name, [])
            hist.append((now, self.life(name), st.get("next_lseq", 0), st.get("records_acked", 0),
                         sb.copy_state))
            if len(hist) > _SAMPLES_KEPT:
                del hist[0]
            full = sb.copy_state == wire.CS_SUSPENDED and sb.suspend_reason == wire.R_JOURNAL_FULL
            if full and not self.was_full.get(name):
                self._journal_filled(i, hist)
            self.was_full[name] = full

    def _journal_filled(self, i, hist):
        """Pair i suspended itself for a full journal. An overload if over the _FILL_WINDOW_US
        before (one life, no crash, power cut or outage of its boards or link) its stream
        acknowledged records in both halves of it while the host journaled more than that: the
        link carried less than the host wrote. Else not (a stalled stream; the drill's own
        outages, World.add_outage, count as disturbances too)."""
        now = self.world.now
        win = [h for h in hist if h[0] >= now - _FILL_WINDOW_US and h[1] == hist[-1][1]]
        ent = {"pair": i, "at_ms": round(now / 1000.0, 1), "overload": False}
        if len(win) >= 2 and win[-1][0] - win[0][0] >= _FILL_WINDOW_US - _SAMPLE_US and \
                not self.disturbed(win[0][0], now, boards=(self.p(i), self.s(i)), links=(i,)) and \
                not any(a <= now and b >= win[0][0] for a, b in self.world.links[i].ab.outages):
            secs = (win[-1][0] - win[0][0]) / 1e6
            mid = win[len(win) // 2]
            moving = mid[3] > win[0][3] and win[-1][3] > mid[3]     # it did not stop (a stall)
            acked = (win[-1][3] - win[0][3]) / secs
            wrote = (win[-1][2] - win[0][2]) / secs
            ent.update({"acked_per_s": round(acked, 1), "journaled_per_s": round(wrote, 1),
                        "overload": moving and wrote > acked})
        self.journal_full.append(ent)
        self.note("p%d suspended itself, journal full: %s" % (i, "overload (the link acknowledged "
                  "%.1f records/s, the host journaled %.1f/s)" % (ent["acked_per_s"], ent["journaled_per_s"])
                  if ent["overload"] else "not shown to be an overload"))

    def resync_overload(self, i):
        """Pair i's resync has not joined: was it an overload? Yes if over the last
        _RESYNC_WINDOW_US (one life, no crash, power cut or outage of its boards or link) its
        primary stayed PENDING, its copies were acknowledged in both halves of the window (the
        copy moved: no stall), and the host wrote to the pair at least as many blocks a second
        as the link copied: every copy was outrun by a new mark, so the bitmap never emptied
        at a checkpoint and the join never came. (Writes during a resync carry no EXPOSED
        flag, SPEC section 8: STATUS copy_done and dirty_blocks show it to the host.)"""
        name = self.p(i)
        hist = self.samples.get(name) or []
        now = self.world.now
        win = [h for h in hist if h[0] >= now - _RESYNC_WINDOW_US and h[1] == self.life(name)]
        ent = {"pair": i, "at_ms": round(now / 1000.0, 1), "overload": False, "kind": "resync"}
        if len(win) >= 2 and win[-1][0] - win[0][0] >= _RESYNC_WINDOW_US - _SAMPLE_US and \
                all(h[4] == wire.CS_PENDING for h in win) and \
                not self.disturbed(win[0][0], now, boards=(name, self.s(i)), links=(i,)) and \
                not any(a <= now and b >= win[0][0] for a, b in self.world.links[i].ab.outages):
            secs = (win[-1][0] - win[0][0]) / 1e6
            mid = win[len(win) // 2]
            moving = mid[3] > win[0][3] and win[-1][3] > mid[3]
            copied = (win[-1][3] - win[0][3]) / secs
            wrote = sum(1 for e in self.log.entries
                        if e.pair == i and win[0][0] <= e.issue_us < win[-1][0]) / secs
            ent.update({"copied_per_s": round(copied, 1), "written_per_s": round(wrote, 1),
                        "overload": moving and wrote >= copied})
        self.resync_overloads.append(ent)
        self.note("p%d resync not joined: %s" % (i, "overload (the link copied %.1f blocks/s, the "
                  "host wrote %.1f/s to the pair)" % (ent["copied_per_s"], ent["written_per_s"])
                  if ent["overload"] else "not shown to be an overload"))
        return ent["overload"]

    def lag_overload(self, i):
        """Pair i's primary joined (DUPLEX) but its secondary still waits for a group release
        at or after its join cut: was the group's cut held back by an overload? Yes if over
        the last _RESYNC_WINDOW_US another pair's primary (one life, undisturbed, DUPLEX
        throughout) had its records acknowledged in both halves of the window, at a rate below
        the rate it journaled them, its journal growing: its link carries less than the host
        writes, so the group's cut falls behind its stream, and the join waits for it."""
        now = self.world.now
        out = []
        for j in range(self.pairs):
            name = self.p(j)
            if j == i:
                continue
            win = [h for h in self.samples.get(name) or ()
                   if h[0] >= now - _RESYNC_WINDOW_US and h[1] == self.life(name)]
            if len(win) < 2 or win[-1][0] - win[0][0] < _RESYNC_WINDOW_US - _SAMPLE_US or \
                    any(h[4] != wire.CS_DUPLEX for h in win) or \
                    self.disturbed(win[0][0], now, boards=(name, self.s(j)), links=(j,)):
                continue
            secs = (win[-1][0] - win[0][0]) / 1e6
            mid = win[len(win) // 2]
            moving = mid[3] > win[0][3] and win[-1][3] > mid[3]
            acked = (win[-1][3] - win[0][3]) / secs
            wrote = (win[-1][2] - win[0][2]) / secs
            # (grown by a record a second at least: not a batch in flight more or less)
            grew = (win[-1][2] - win[-1][3]) - (win[0][2] - win[0][3]) >= secs
            if moving and grew and wrote > acked:
                out.append({"pair": j, "at_ms": round(now / 1000.0, 1), "overload": True,
                            "kind": "lag", "acked_per_s": round(acked, 1),
                            "journaled_per_s": round(wrote, 1),
                            "depth": [win[0][2] - win[0][3], win[-1][2] - win[-1][3]]})
        self.resync_overloads.extend(out)
        self.note("p%d joined, its secondary waits for the group's release: %s" % (i, "; ".join(
            "p%d's link acknowledged %.1f records/s, the host journaled %.1f/s (depth %d -> %d): "
            "an overload holds the group's cut back" % (e["pair"], e["acked_per_s"],
                                                        e["journaled_per_s"], *e["depth"])
            for e in out) or "no overload shown"))
        return bool(out)

    def excused(self, t0, what):
        """May a liveness expectation (`what` did not happen) give way to an overload of the
        group from t0 on (µs; None: never)? Then it is decided at the disaster (an overload
        shows as a full journal only once the journal filled): the failure `what` stands
        unless a journal filled in an overload between t0 and the disaster."""
        if t0 is None:
            return False
        self.pending.append((t0, self.now, what))
        return True

    def _settle_pending(self):
        for t0, at, what in self.pending:
            if not self._overload_excuses(t0, what):
                self.failures.append("%.3f s: %s" % (at / 1e6, what))
        self.pending = []

    def _overload_excuses(self, t0, what):
        over = self.overloaded(t0)
        if not over:
            return False
        shown = []
        for e in over:
            if e.get("kind") in ("resync", "lag"):
                continue                 # (no EXPOSED flag in PENDING, nor while the cut's age
                                         # is below cut_age_max_us: see resync_overload)
            b = self.world.boards[self.p(e["pair"])]
            shown.append(b.node is None or b.node.c.get("writes_exposed", 0) > 0)
        if not all(shown):
            self.fail("an overload suspended %s but no host write reply was flagged exposed"
                      % ", ".join(self.p(e["pair"]) for e in over))
        self.note("%s: the group was overloaded (a journal filled while its stream moved, or "
                  "the host outwrote a resync)" % what)
        self.counts["overloaded"] = [dict(e) for e in over]
        self.counts["overload_excused"] = self.counts.get("overload_excused", 0) + 1
        return True

    def overloaded(self, t0):
        """The overloads (see _journal_filled) at or after t0 (µs): a group whose host writes
        outpace a noisy link cannot hold every pair DUPLEX; a full journal suspends the
        pair (the last line of defence) and, under freeze, the group's cut stops there."""
        return [e for e in self.journal_full + self.resync_overloads
                if e["overload"] and e["at_ms"] * 1000 >= t0]

    def fail(self, text):
        self.failures.append("%.3f s: %s" % (self.now / 1e6, text))

    def note(self, text):
        self.events.append((round(self.now / 1000.0, 1), text))

    def p(self, i):
        return "p%d" % i

    def s(self, i):
        return "s%d" % i

    def status(self, name, attempts=12):
        """STATUS of a board as a dict (None if it never answered): ops.status.get."""
        return ops.status.get(self.t, name, attempts=attempts, pause_s=0.25)

    def _send_kw(self, attempts=12):
        """How the drill's operator sends a command: again while the board is silent
        (rebooting) or not ready, 250 ms apart; the workload log's position before each
        attempt is kept (sent_mark: writes before it reached the board first)."""
        def before():
            self.sent_mark = self.mark()
        return {"attempts": attempts, "pause_s": 0.25, "retry_on": (wire.S_NOT_READY,),
                "before": before}

    def _sent(self, sent):
        self.unanswered = sent.unanswered
        return sent.status

    def failback(self, name, role):
        """FAILBACK(role) by ops.failback (to_secondary / to_primary), as arcopy sends it: if
        an attempt went unanswered (the board lost power around it) and the retry says
        S_BAD_STATE, STATUS tells whether the first one took effect (the role is durable)."""
        step = ops.failback.to_primary if role == wire.ROLE_PRIMARY else ops.failback.to_secondary
        self.unanswered = 0
        st, resolved = step(self.t, name, **self._send_kw())
        if resolved:
            self.note("%s FAILBACK(%d) unanswered, then bad-state: STATUS shows role %d, "
                      "it took effect" % (name, role, role))
            self.counts["failback_retries_resolved"] = \
                self.counts.get("failback_retries_resolved", 0) + 1
        return st

    def dirty_list(self, name, vol=0):
        """Every block marked in `name`'s change bitmap (ops.status.dirty_blocks), or None."""
        marks = ops.status.dirty_blocks(self.t, name, vol + 1, self.vol_blocks(name), attempts=12,
                                        pause_s=0.25)
        return None if marks is None else marks[vol]

    def vol_blocks(self, name):
        return self.world.boards[name].cfg.vol_blocks

    def wait(self, pred, limit_us, step_us=100000):
        """Run until pred() (checked every step) or limit_us from now; -> bool."""
        end = self.now + limit_us
        while True:
            if pred():
                return True
            if self.now >= end:
                return False
            self.run_to(min(end, self.now + step_us))

    def copy_state(self, name):
        s = self.status(name)
        return None if s is None else s["copy_state"]

    def fw(self, name, key, default=None):
        """A counter of the board's live firmware role object (harness introspection,
        used only to check what the host saw); None when the board is down."""
        b = self.world.boards[name]
        if b.node is None:
            return default
        return b.node.role.stats(b.local_now()).get(key, default)

    def bm_repaired(self, name):
        """The store's count of bitmap blocks found torn at its last mount (harness
        introspection, like fw()); 0 when the board is down."""
        b = self.world.boards[name]
        return 0 if b.node is None else b.node.store.stats().get("bm_repaired", 0)

    def incarnation(self, name):
        return self.world.boards[name].incarnation

    def life(self, name):
        """Changes whenever the board goes down (crash, power cut) or boots: a copy
        count in RAM that started before belongs to a life that ended."""
        b = self.world.boards[name]
        return (b.incarnation, b.crashes, b.power_cuts, b.alive)

    def mark(self):
        """Position in the workload log: writes before it reached their board before any
        host request sent from now on (one host port, one latency, FIFO)."""
        return len(self.log.entries)

    def writes(self, pair, a, b=None, log=None):
        ents = (log or self.log).entries
        return [e for e in ents[a:b] if e.pair == pair]

    def disturbed(self, t0, t1, boards=None, links=None):
        """Did a stopping fault (crash, power cut, link outage) touch [t0, t1]?"""
        fo = self.world.faults
        for at, name, *rest in fo.crashes:
            down = rest[-1]
            if (boards is None or name in boards) and at <= t1 and at + down >= t0:
                return True
        for at, name, after, torn, down in fo.power_cuts:
            if (boards is None or name in boards) and at <= t1 and at + down + 200000 >= t0:
                return True
        for i, wins in fo.peer_outages.items():
            if links is not None and i not in links:
                continue
            for s, e in wins:
                if s <= t1 and e >= t0:
                    return True
        return False

    def applied_t(self, name):
        s = self.status(name)
        return None if s is None else s["applied_t"]

    # -- a resync, counted --------------------------------------------------------------
    def start_copy(self, i, cmd, arg=0, prim=None):
        """Start a resync on pair i's primary, after reading its marks: `cmd` "START_COPY"
        (ops.copy.start_pair, arg 1: full), "RESUME" (ops.pairs.resume_pair) or "FAILBACK"
        (ops.failback.to_primary, arg: the role); returns the record the counting needs."""
        prim = prim or self.p(i)
        m_dl = self.mark()
        marks = self.dirty_list(prim)
        m_list = self.mark()             # writes issued up to here may be in the list too
        st = self.status(prim)
        rec = {"pair": i, "board": prim, "cmd": cmd, "at_ms": round(self.now / 1000.0, 1),
               "m_dl": m_dl, "m_list": m_list, "marked": None if marks is None else len(marks),
               "marked_set": set(marks or ()),
               "dirty_blocks": None if st is None else st["dirty_blocks"],
               "copied0": self.fw(prim, "copied", 0), "inc0": self.incarnation(prim),
               "life0": self.life(prim)}
        if marks is not None and st is not None and st["dirty_blocks"] < len(marks):
            # marks only grow between the list and the status (writes keep coming)
            self.fail("%s: STATUS dirty_blocks %d < %d blocks listed just before"
                      % (prim, st["dirty_blocks"], len(marks)))
        if cmd == "FAILBACK":
            res = self.failback(prim, arg)
        elif cmd == "START_COPY":
            res = self._sent(ops.copy.start_pair(self.t, prim, bool(arg), **self._send_kw()))
        elif cmd == "RESUME":
            res = self._sent(ops.pairs.resume_pair(self.t, prim, **self._send_kw()))
        else:
            raise ValueError("no resync is started by %r" % (cmd,))
        rec["m_cmd"] = self.sent_mark
        rec["status"] = res
        if res != wire.S_OK:
            self.fail("%s: %s(%d) answered %r" % (prim, cmd, arg, res))
        self.note("%s %s(%d) -> %r, %s blocks marked" % (prim, cmd, arg, res, rec["marked"]))
        return rec

    def joined(self, rec, prim, sec):
        """Both sides DUPLEX: record the copy counts of the resync started by `rec`."""
        ps = self.status(prim)
        ss = self.status(sec)
        if ps is None or ss is None:
            return False
        if ps["copy_state"] != wire.CS_DUPLEX or ss["copy_state"] != wire.CS_DUPLEX:
            return False
        rec["m_dup"] = self.mark()
        rec["duplex_ms"] = round(self.now / 1000.0, 1)
        rec["copy_done"] = ps["copy_done"]
        rec["copy_total"] = ps["copy_total"]
        rec["dirty_after"] = ps["dirty_blocks"]
        rec["copied"] = None
        if self.life(prim) == rec["life0"]:
            c = self.fw(prim, "copied")
            if c is not None:
                rec["copied"] = c - rec["copied0"]
        return True

    def check_copy(self, rec, log=None):
        """The counting rules of a resync (see the module docstring)."""
        i, prim = rec["pair"], rec["board"]
        if "copy_done" not in rec:
            if self.excused(self.overload_from, "%s: the pair never reached DUPLEX after the copy started" % prim):
                return
            self.fail("%s: the pair never reached DUPLEX after the copy started" % prim)
            return
        during = self.writes(i, rec["m_dl"], rec["m_dup"], log)
        before_cmd = self.writes(i, rec["m_dl"], rec["m_cmd"], log)
        lower = set(rec["marked_set"]) | {e.block for e in before_cmd if e.ok}
        rec["writes_during"] = len(during)
        rec["lower"] = len(lower)
        rec["upper"] = len(rec["marked_set"]) + len(during)
        done = rec["copy_done"]
        exact = rec["life0"] == self.life(prim)
        rec["exact"] = exact
        if exact and rec["copied"] is not None and rec["copy_total"] != rec["copied"]:
            self.fail("%s: copy_total %d at DUPLEX but %d copy records journaled"
                      % (prim, rec["copy_total"], rec["copied"]))
        if exact and done < rec["copy_total"]:
            # the last copies may still be unacknowledged when both sides show DUPLEX
            # (the join marker overtakes their ACK, or a lost frame waits for its
            # retransmission): their count catches up
            rec["copy_done_at_join"] = done
            seen = {}

            def caught_up():
                if self.life(prim) != rec["life0"]:
                    return True                # it went down: its count starts again
                st = self.status(prim, attempts=1)
                if st is None:
                    return False
                seen["done"] = st["copy_done"]
                return st["copy_done"] >= rec["copy_total"] or st["copy_state"] != wire.CS_DUPLEX
            self.wait(caught_up, 10000000, 50000)
            done = rec["copy_done"] = seen.get("done", done)
            exact = rec["exact"] = self.life(prim) == rec["life0"]
            if exact and done != rec["copy_total"]:
                self.fail("%s: copy_done %d has not reached copy_total %d 10 s after DUPLEX"
                          % (prim, done, rec["copy_total"]))
        if exact:
            if rec["copied"] is not None and done != rec["copied"]:
                self.fail("%s: copy_done %d but %d copy records journaled"
                          % (prim, done, rec["copied"]))
            if not rec["lower"] <= done <= rec["upper"]:
                self.fail("%s: copy_done %d outside [%d marked at start (with writes before the "
                          "command), %d = marked + %d writes during the copy]"
                          % (prim, done, rec["lower"], rec["upper"], len(during)))
            if not during and done != len(rec["marked_set"]):
                self.fail("%s: no write during the copy, copy_done %d != %d blocks marked"
                          % (prim, done, len(rec["marked_set"])))
        if rec["dirty_after"] and not self._later_marked(prim):
            self.fail("%s: %d blocks still marked at DUPLEX" % (prim, rec["dirty_after"]))

    def _later_marked(self, prim):
        st = self.status(prim)
        return st is not None and st["copy_state"] != wire.CS_DUPLEX

    def establish(self, secs=None, limit_us=20000000):
        """After the joins: wait until a group failover would succeed, as the operator's
        failover sees it through STATUS: every secondary DUPLEX and holding the newest cut
        any of them applied (or is applying). A pair that just joined may be behind the
        group's newest release, or ahead of it when the group lags. Records how long
        that took after the call."""
        secs = secs or [b.name for b in self.world.secondaries]
        t0 = self.now
        seen = {}

        def recoverable():
            sts = [self.status(name, attempts=2) for name in secs]
            if any(st is None or st["copy_state"] != wire.CS_DUPLEX for st in sts):
                return False
            target = max(st["uip_t"] if st["uip_n"] and st["uip_t"] > st["applied_t"]
                         else st["applied_t"] for st in sts)
            seen["target"] = target
            seen["held"] = sorted(max(st["ckpt_t"], st["applied_t"]) for st in sts)
            return all(max(st["ckpt_t"], st["applied_t"]) >= target for st in sts)
        ok = self.wait(recoverable, limit_us)
        self.counts["group_recoverable_after_ms"] = round((self.now - t0) / 1000.0, 1)
        if not ok:
            what = "%.0f s after the joins, no cut every secondary can recover to (newest " \
                "applied T=%s, held %s)" % (limit_us / 1e6, seen.get("target"), seen.get("held"))
            if not self.excused(self.overload_from, what):
                self.fail(what)
        return ok

    def before_disaster(self, lo_s, hi_s, secs=None):
        """Wait until the group is recoverable again (unless told not to), then a drawn
        time (or the fixed delay the drill was given) before the disaster."""
        if self.wait_group:
            self.establish(secs)
        delay = self.disaster_delay_us
        if delay is None:
            delay = int(self.rng.uniform(lo_s * 1e6, hi_s * 1e6))
        self.run_to(self.now + delay)

    def refused_since(self, t_us, driver=None, log=None, boards=None):
        """{status name: count} of host writes issued from t_us on that a board refused,
        except S_NOT_READY while a board of that site had crashed or rebooted in the 3 s
        before (a rebooted primary serves no write until it has the group's clock and
        checkpoint, nor does a newly elected master until its members reported; bus noise
        (the collision class) can depose a master at any time)."""
        driver = driver or self.world.driver
        log = log or self.log
        boards = boards or [self.p(i) for i in range(self.pairs)]
        out = {}
        for at, wid, st in driver.refusal_log:
            e = log.get(wid)
            if e.issue_us < t_us:
                continue
            if st == wire.S_NOT_READY and (self.site_restarted(boards, at - 3000000, at)
                                           or "collision" in self.classes):
                continue
            k = _status_name(st)
            out[k] = out.get(k, 0) + 1
        return out

    def site_restarted(self, names, t0, t1):
        for name in names:
            for t, ev, n in self.world.boards[name].history:
                if t0 <= t <= t1 and not (ev == "boot" and n == 1):
                    return True
        return False

    def public(self, rec):
        return {k: v for k, v in rec.items()
                if k not in ("marked_set", "m_dl", "m_list", "m_cmd", "m_dup", "copied0", "inc0", "life0")}

    def in_resync(self, lo_s=0.02, hi_s=1.5):
        """disaster_at="resync": the disaster now, a drawn instant after a resync started
        (while copies are on their way); -> the drill's result, or None otherwise."""
        if self.disaster_at != "resync":
            return None
        self.run_to(self.now + int(self.rng.uniform(lo_s * 1e6, hi_s * 1e6)))
        self.counts["disaster_in_resync"] = {
            i: self.copy_state(self.s(i)) == wire.CS_PENDING for i in range(self.pairs)}
        self.note("disaster in the middle of the resync")
        return self.finish()

    # -- the end of every drill ---------------------------------------------------------------
    def finish(self, settle_s=4.0):
        """The primary-site disaster now, then the operator's failover, read-back and verdict
        (ops.drill.recover, through scenario.recover)."""
        self._settle_pending()
        w = self.world
        w.disaster()
        self.note("disaster: primary site lost")
        w.run(w.now + int(settle_s * 1e6))
        self.wl.log.close(w.disaster_time)
        res = recover(w, self.wl.log, w.secondaries, self.ckpts, self.mode, w.disaster_time,
                      transport=self.t)
        return self.result(res, w.disaster_time, w.driver)

    def result(self, res, disaster_us, driver, before=None):
        """The drill's result dict from the last recovery `res` (ops.drill.recover); `before`:
        the verdict of an earlier recovery in the same drill (failback's first failover), summed
        in."""
        w = self.world
        rep = res["report"]
        fo = res["failover"]
        n, t = fo["target_n"], fo["target_t"]
        images = {i: {v: vol.raw() for v, vol in vols.items()} for i, vols in res["images"].items()}
        stats = w.stats()
        errs = [b.stats().get("clock_err_us") for b in w.primaries + w.secondaries]
        errs = [e for e in errs if e is not None and e != 0xFFFFFFFF]
        if before is not None:
            res = dict(res, verdict=_sum_verdicts(before, res["verdict"]))
        out = {
            "seed": self.seed, "pairs": self.pairs, "mode": self.mode, "op": self.op,
            "faults": sorted(self.classes | {"disaster"}),
            "violations": rep.to_dict()["violations"],
            "violations_total": rep.violations_total,
            "corrupt": rep.to_dict()["corrupt"],
            "writes_issued": driver.issued if driver is not None else 0,
            "writes_completed": rep.writes_completed,
            "writes_recovered": rep.writes_recovered,
            "writes_refused": driver.refused if driver is not None else 0,
            "lost_acked": len(rep.lost_acked_ids),
            "rpo_ms": rep.rpo_ms,
            "checkpoints_issued": len(self.ckpts.first),
            "checkpoints_released": n,
            "recovered_checkpoint": {"n": n, "t": t},
            "failover": {k: v for k, v in sorted(fo["codes"].items())},
            "recovered_pairs": res["recovery"]["recovered"],
            "disaster_ms": None if disaster_us is None else disaster_us / 1000.0,
            "digest": _state_digest(w, images),
            "sim_seconds": w.now / 1e6,
            "wall_seconds": round(time.perf_counter() - self.t0, 3),
            "events": stats["events"],
            "errors": stats["errors"],
            "clock_err_us": max(errs) if errs else None,
            "ops": self.counts,
            "op_failures": list(self.failures),
            "op_steps": list(self.events),
            "fault_options": w.faults.to_dict(),
        }
        out.update(verdict_keys(res, list(self.failures) + ["harness: %s" % (e,) for e in stats["errors"]]))
        if before is not None:
            # lost_before ids of both recoveries (write ids do not overlap: PHASE2_FIRST_ID)
            out["lost_before_released_checkpoint"] = sorted(
                set(before.get("lost_before_cut_ids", ())) | set(out["lost_before_released_checkpoint"]))
        return out

    def close(self):
        self.ckpts.close()
        self._untrace()




# ---------------------------------------------------------------------------------------

def _all_joined(d, recs, prim=None, sec=None):
    """Record each pair's resync once it joins; True when every pair has. prim/sec: the
    boards now primary/secondary of pair i (default: the original sites)."""
    for i, rec in recs.items():
        if "copy_done" not in rec:
            d.joined(rec, prim(i) if prim else d.p(i), sec(i) if sec else d.s(i))
    return all("copy_done" in rec for rec in recs.values())


def _initial_copy(d):
    """Writes while SIMPLEX, then START_COPY per pair at drawn instants; all DUPLEX."""
    r = d.rng
    starts = sorted((r.uniform(1.8e6, 3.5e6), i) for i in range(d.pairs))
    recs = {}
    for at, i in starts:
        d.run_to(int(at))
        if recs and d.disaster_at == "resync" and r.random() < 0.3:
            break                        # the disaster before the later pairs start
        st = d.status(d.p(i))
        if st is not None and st["copy_state"] != wire.CS_SIMPLEX:
            d.fail("%s: copy state %d before START_COPY (autostart is off)" % (d.p(i), st["copy_state"]))
        recs[i] = d.start_copy(i, "START_COPY", 0)
    lost = d.in_resync()
    if lost is not None:
        return lost

    d.overload_from = min(rec["at_ms"] for rec in recs.values()) * 1000
    if not d.wait(lambda: _all_joined(d, recs), 40000000) and \
            not d.excused(d.overload_from, "not every pair reached DUPLEX within 40 s of the copy"):
        d.fail("not every pair reached DUPLEX within 40 s of the copy")
    for rec in recs.values():
        d.check_copy(rec)
    d.counts["pairs"] = [d.public(recs[i]) for i in sorted(recs)]
    d.counts["copy_done"] = sum(rec.get("copy_done", 0) for rec in recs.values())
    d.counts["marked_at_start"] = sum(len(rec["marked_set"]) for rec in recs.values())
    d.counts["writes_before_copy"] = min(rec["m_dl"] for rec in recs.values())
    d.before_disaster(0.3, 2.0)
    return d.finish()


def _suspend(d):
    """One or two pairs suspended and resumed at drawn instants; the rest keep releasing."""
    r = d.rng
    k = r.randint(1, max(1, min(2, d.pairs - 1)))
    chosen = sorted(r.sample(range(d.pairs), k))
    plan = []
    for i in chosen:
        t_s = int(r.uniform(2.0e6, 3.5e6))
        t_r = t_s + int(r.uniform(1.5e6, 3.0e6))
        plan.append((t_s, "suspend", i))
        plan.append((t_s + 600000, "baseline", i))
        plan.append((t_r, "resume", i))
    plan.sort()
    recs, susp = {}, {}
    others = [j for j in range(d.pairs) if j not in chosen]
    for at, what, i in plan:
        d.run_to(at)
        if what == "suspend":
            st = d._sent(ops.pairs.suspend_pair(d.t, d.p(i), **d._send_kw()))
            m = d.sent_mark
            if st != wire.S_OK:
                d.fail("%s: SUSPEND answered %r" % (d.p(i), st))
            ps = d.status(d.p(i))
            marks = d.dirty_list(d.p(i))
            susp[i] = {"pair": i, "at_ms": round(d.now / 1000.0, 1), "m": m,
                       "marks": set(marks or ()), "t0": d.now}
            d.note("p%d SUSPEND -> %r, %d blocks marked" % (i, st, len(marks or ())))
            if ps is not None and (ps["copy_state"] != wire.CS_SUSPENDED
                                   or ps["suspend_reason"] != wire.R_OPERATOR):
                d.fail("p%d: after SUSPEND copy state %d reason %d" % (i, ps["copy_state"],
                                                                        ps["suspend_reason"]))
            susp[i]["marks_at_suspend"] = len(marks or ())
        elif what == "baseline":
            d.run_to(susp[i]["t0"] + 600000)       # the suspend may have waited for a reboot
            susp[i]["base_t"] = d.now
            susp[i]["applied_self"] = d.applied_t(d.s(i))
            base = {j: d.status(d.s(j)) for j in others}
            susp[i]["applied_others"] = {j: None if st is None else st["applied_t"]
                                         for j, st in base.items()}
            held = [st["ckpt_t"] for st in base.values() if st is not None]
            # every cut all the others held by now must be released while pair i is out
            susp[i]["held_others"] = min(held) if len(held) == len(base) and held else None
        else:
            x = susp[i]
            ss = d.status(d.s(i))
            quiet = not d.disturbed(x["t0"], d.now)
            x["secondary_state"] = None if ss is None else ss["copy_state"]
            if quiet and ss is not None:
                if ss["copy_state"] != wire.CS_SUSPENDED:
                    d.fail("s%d: copy state %d while its primary is suspended" % (i, ss["copy_state"]))
                if ss["applied_t"] != x["applied_self"]:
                    d.fail("s%d: applied checkpoints while suspended (%r -> %r)"
                           % (i, x["applied_self"], ss["applied_t"]))
            moved, reached = {}, {}
            for j, t0 in x["applied_others"].items():
                t1 = d.applied_t(d.s(j))
                moved[j] = t0 is not None and t1 is not None and t1 > t0
                reached[j] = t1 is not None and x["held_others"] is not None \
                    and t1 >= x["held_others"]
            # released: the others' applied cut moved on while pair i was out of the group;
            # (a lost frame on another pair's link can stall every release for a whole
            # retransmission timeout, so what is asserted is that no cut the others all
            # held was kept back)
            x["group_released"] = all(moved.values()) if moved else None
            x["group_check"] = bool(quiet and moved and x["held_others"] is not None)
            x["group_held_back"] = not all(reached.values()) if x["group_check"] else None
            if quiet and moved and not (d.classes & {"loss", "corrupt", "jitter"}) \
                    and not all(moved.values()):
                d.fail("the group released nothing while pair %d was suspended: %s" % (i, moved))
            if x["group_check"] and not all(reached.values()):
                d.fail("the group held back releases while pair %d was suspended: the others "
                       "all held T=%d %.1f s before, applied now %s"
                       % (i, x["held_others"], (d.now - x["base_t"]) / 1e6,
                          {j: d.applied_t(d.s(j)) for j in reached}))
            rec = d.start_copy(i, "RESUME")
            # what the bitmap must hold: the journal's records at suspend (listed right
            # after it) and every block written while suspended
            w_all = d.writes(i, x["m"], rec["m_dl"])
            lo = x["marks"] | {e.block for e in w_all if e.ok}
            hi = x["marks"] | {e.block for e in d.writes(i, x["m"], rec["m_list"])}
            got = rec["marked_set"]
            x["written_while_suspended"] = len({e.block for e in w_all})
            torn = _torn_bitmap_marks(d, d.p(i), got, hi)
            if torn:
                d.note("p%d: %d blocks marked by %d bitmap block(s) found torn at mount "
                       "(store.bm_repaired: taken as all set)" % (i, len(torn), d.bm_repaired(d.p(i))))
                x["marked_torn_bitmap"] = len(torn)
            if marks_ok(rec) and not (lo <= got <= hi | torn):
                d.fail("p%d: %d blocks marked at resume, expected the %d marked at suspend plus "
                       "the blocks written while suspended (%d..%d): missing %s, extra %s"
                       % (i, len(got), len(x["marks"]), len(lo), len(hi),
                          sorted(lo - got)[:8], sorted(got - hi)[:8]))
            if rec["dirty_blocks"] is not None and rec["dirty_blocks"] < len(got):
                d.fail("p%d: STATUS dirty_blocks %d < listed %d" % (i, rec["dirty_blocks"], len(got)))
            recs[i] = rec
            lost = d.in_resync()
            if lost is not None:
                return lost

    if not d.wait(lambda: _all_joined(d, recs), 30000000):
        d.fail("a resumed pair did not reach DUPLEX within 30 s")
    for rec in recs.values():
        d.check_copy(rec)
        st = d.status(rec["board"])
        if st is not None and st["suspend_reason"] != 0:
            d.fail("%s: suspend reason %d after the resync" % (rec["board"], st["suspend_reason"]))
    d.counts["suspended"] = []
    for i in chosen:
        x = dict(susp[i])
        for k in ("marks", "m", "t0", "base_t", "applied_others", "applied_self", "held_others"):
            x.pop(k, None)
        x["resync"] = d.public(recs[i])
        d.counts["suspended"].append(x)
    d.counts["copy_done"] = sum(rec.get("copy_done", 0) for rec in recs.values())
    d.before_disaster(0.3, 2.0)
    return d.finish()


def _master_restart(d, k, pre, down, gap):
    """Pair k suspended; the secondary bus master (s0, the lowest id) switched off `pre` after
    the suspend, on again `down` later, and pair k resumed `gap` after that (the operator's
    steps of tests/test_cli_operator.py on a rig: suspend, kill s0, restart s0, resume). The
    resumed pair must show DUPLEX within 30 s, the group must be recoverable again."""
    master = d.s(0)
    d.run_to(int(d.rng.uniform(2.0e6, 3.0e6)))
    st = d._sent(ops.pairs.suspend_pair(d.t, d.p(k), **d._send_kw()))
    if st != wire.S_OK:
        d.fail("%s: SUSPEND answered %r" % (d.p(k), st))
    d.note("p%d SUSPEND -> %r" % (k, st))
    d.run_to(d.now + pre)
    d.world.kill([master])
    d.note("%s (secondary bus master) switched off" % master)
    d.run_to(d.now + down)
    d.world.restart([master])
    d.note("%s switched on" % master)
    d.run_to(d.now + gap)
    rec = d.start_copy(k, "RESUME")
    lost = d.in_resync()
    if lost is not None:
        return lost
    if not d.wait(lambda: _all_joined(d, {k: rec}), 30000000):
        d.fail("p%d: the resumed pair did not reach DUPLEX within 30 s of the resume "
               "(secondary master restarted %.0f ms before it)" % (k, gap / 1000.0))
    d.check_copy(rec)
    d.counts.update({"pair": k, "pre_ms": pre / 1000.0, "down_ms": down / 1000.0,
                     "gap_ms": gap / 1000.0, "resync": d.public(rec),
                     "copy_done": rec.get("copy_done", 0)})
    d.before_disaster(0.3, 2.0)
    d.counts["release_gap_after_join_ms"] = d.release_gap(d.s(k), d.now)
    return d.finish()


def _torn_bitmap_marks(d, name, got, hi):
    """The marks beyond `hi` that a bitmap block torn by a power cut explains: the store takes
    such a block as all set at mount (conservative, counted in store.bm_repaired). Each group
    of blocks one bitmap block covers counts only if every block of it is marked, and no
    more groups than the board's counter says were repaired; else the empty set."""
    extra = got - hi
    n = d.bm_repaired(name)
    if not extra or not n:
        return set()
    span = BM_BITS
    nblk = d.vol_blocks(name)
    groups = {b // span for b in extra}
    if len(groups) > n:
        return set()
    whole = set()
    for g in groups:
        blocks = set(range(g * span, min(nblk, (g + 1) * span)))
        if not blocks <= got:
            return set()
        whole |= blocks
    return whole


def marks_ok(rec):
    """The marks were listed (the board answered DIRTY_LIST)."""
    return rec["marked"] is not None


def _autosuspend(d, k, outage):
    """Pair k's primary has a small journal; its link is out for `outage` (start, end)."""
    r = d.rng
    t0, t1 = outage
    d.world.add_outage(k, t0, t1)
    d.note("peer link %d silent %.2f..%.2f s" % (k, t0 / 1e6, t1 / 1e6))
    seen = {}

    def suspended():
        st = d.status(d.p(k))
        if st is not None:
            # the journal's depth as STATUS shows it every 100 ms of the outage
            seen["peak"] = max(seen.get("peak", 0), st["journal_depth"])
        if st is not None and st["copy_state"] == wire.CS_SUSPENDED:
            seen.update(at_ms=round(d.now / 1000.0, 1), reason=st["suspend_reason"],
                        dirty=st["dirty_blocks"])
            return True
        return False

    d.run_to(t0)
    if not d.wait(suspended, t1 - t0, 100000):
        # (unless the primary itself went down meanwhile: its writes time out, their
        # blocks are never written again, and the workload may stop reaching it; or in
        # sync mode, where pair k's writes wait for their ACK: each stalls its transaction
        # until the host gives up on it (host_timeout_us), so the journal grows by the
        # checkpoint markers and those few writes (about 7 entries a second at 200 ms
        # checkpoints, e.g. 22 markers and 10 writes in 4.4 s), not at the host's rate, and
        # whether it fills before the link returns depends on the outage's length, not on
        # the firmware)
        if d.mode != "sync" and not d.disturbed(t0, t1, boards=(d.p(k),), links=()):
            d.fail("p%d did not suspend itself during a %.1f s outage of its link"
                   % (k, (t1 - t0) / 1e6))
    elif seen["reason"] != wire.R_JOURNAL_FULL:
        d.fail("p%d suspended with reason %d, not R_JOURNAL_FULL" % (k, seen["reason"]))
    d.run_to(t1 + int(r.uniform(0.2e6, 1.0e6)))
    # the operator resumes after the link returned -- and again, as often as the small
    # journal fills once more while a lost frame waits for its retransmission
    resumes = 0
    state = {}
    d.overload_from = d.now              # (the outage's own suspension is no overload)

    def joined_or_suspended():
        if d.joined(rec, d.p(k), d.s(k)):
            return True
        st = d.status(d.p(k), attempts=2)
        state["again"] = st is not None and st["copy_state"] == wire.CS_SUSPENDED
        return state["again"]

    end = d.now + 30000000
    while True:
        rec = d.start_copy(k, "RESUME")
        resumes += 1
        lost = d.in_resync()
        if lost is not None:
            return lost
        state["again"] = False
        d.wait(joined_or_suspended, max(0, end - d.now))
        if not state["again"] or resumes >= 5 or d.now >= end:
            break
        d.note("p%d suspended itself again during the resync" % k)
        d.run_to(d.now + 1000000)
    if "copy_done" not in rec and not state["again"]:
        if d.copy_state(d.p(k)) == wire.CS_DUPLEX:
            d.lag_overload(k)
        else:
            d.resync_overload(k)
    d.check_copy(rec)
    # from the outage on (the group refuses writes briefly at boot, before its clock is warm)
    refusals = d.refused_since(t0)
    if refusals:
        d.fail("host writes refused: %s" % refusals)
    d.counts.update({"pair": k, "outage_ms": [t0 / 1000.0, t1 / 1000.0],
                     "journal_slots": d.world.boards[d.p(k)].cfg.journal_slots,
                     "suspended_at_ms": seen.get("at_ms"), "suspend_reason": seen.get("reason"),
                     "journal_peak_in_outage": seen.get("peak"),
                     "dirty_at_suspend_seen": seen.get("dirty"), "resync": d.public(rec),
                     "copy_done": rec.get("copy_done", 0), "writes_refused": sum(refusals.values()),
                     "resumes": resumes})
    d.before_disaster(0.5, 2.0)
    d.counts["release_gap_after_join_ms"] = d.release_gap(d.s(k), d.now)
    return d.finish()


def _pacing(d, variant, hold):
    """Slow links or one held link with pacing on; the latency log tells."""
    r = d.rng
    if hold is not None:
        k, t0, t1 = hold
        d.world.add_outage(k, t0, t1)
        d.note("peer link %d held %.2f..%.2f s" % (k, t0 / 1e6, t1 / 1e6))
    end = int(r.uniform(6.0e6, 8.0e6))
    pace_seen = {}
    err_seen = 0                      # the largest clock_err_us a primary reported
    states = {}
    while d.now < end:
        d.run_to(d.now + 250000)
        for i in range(d.pairs):
            st = d.status(d.p(i), attempts=1)
            if st is None:
                continue
            pace_seen[i] = max(pace_seen.get(i, 0), st["pace_us"])
            if st.get("clock_err_us") is not None and st["clock_err_us"] < 0xFFFFFFFF:
                err_seen = max(err_seen, st["clock_err_us"])
            if st["copy_state"] != wire.CS_DUPLEX or st["suspend_reason"]:
                states[i] = (st["copy_state"], st["suspend_reason"])
    lat = sorted(e.complete_us - e.issue_us for e in d.wl.log.entries if e.ok)
    paced = sum(d.fw(d.p(i), "paced", 0) or 0 for i in range(d.pairs))
    d.counts.update({
        "variant": variant, "hold": None if hold is None else [hold[0], hold[1] / 1000.0, hold[2] / 1000.0],
        "peer_baud": d.world.opts["peer_baud"],
        "pace_threshold": d.world.boards["p0"].cfg.pace_threshold,
        "pace_max_us": d.world.boards["p0"].cfg.pace_max_us,
        "pace_us_max_seen": max(pace_seen.values()) if pace_seen else 0,
        "writes_paced": paced,
        "latency_ms_p50": _pct(lat, 0.5) / 1000.0, "latency_ms_p99": _pct(lat, 0.99) / 1000.0,
        "latency_ms_max": (lat[-1] if lat else 0) / 1000.0,
        "writes_over_1ms": sum(1 for x in lat if x > 1000),     # unpaced: 0.4 ms round trip
        "suspends": sum(d.fw(d.p(i), "suspends", 0) or 0 for i in range(d.pairs)),
    })
    refused = d.refused_since(2000000)
    d.counts["writes_refused"] = sum(refused.values())
    if refused:
        d.fail("host writes refused under pacing: %s" % refused)
    # a pair may still suspend itself when an outage or a crash outlasts its journal
    states = {i: v for i, v in states.items()
              if not d.disturbed(0, d.now, boards=(d.p(i), d.s(i)), links=(i,))}
    if states:
        d.fail("pairs left DUPLEX under pacing: %s" % states)
    if d.mode == "sync":
        # sync mode has no pacing: a completion waits for the peer's ACK, delayed by the
        # slow or held link itself (no pace_max_us bound); the firmware paces nothing
        if d.counts["writes_paced"] or not d.counts["writes_over_1ms"]:
            d.fail("sync mode: %d writes paced (expected none), %d completions over 1 ms "
                   "(expected some: they wait for the ACK)"
                   % (d.counts["writes_paced"], d.counts["writes_over_1ms"]))
        return d.finish()
    # a paced reply is asked the commit wait again when due (firmware/node.py): it may then
    # wait the commit wait's longest hold (SPEC section 9, "Clock error bound and commit
    # wait"): after a change of bus master, until the member's upper end comes back from a
    # round trip (a cycle for its report's slot, one per other primary for the beacons' round
    # robin echo, one for asking again: pairs + 1 cycles) and the new master's cycle_us + 3
    # slots; or its stamp's distance to the lower end of the clock bound, at most the
    # clock_err_us reported; + host round trip
    cfg = d.world.boards["p0"].cfg
    hold_max = 0
    if d.mode == "clock" and cfg.commit_wait:
        hold_max = max([(d.pairs + 2) * d.world.boards[d.p(i)].cfg.cycle_us
                        + 3 * d.world.boards[d.p(i)].cfg.slot_us
                        for i in range(d.pairs)] + [err_seen])
    elif d.mode == "clockless":
        # the checkpoint barrier (SPEC section 9): a reply stamped after a checkpoint waits for
        # the beacon that confirms every primary took it (a cycle, asked again every slot / 4);
        # across a change of master: the election (3 + pairs cycles without beacons), the new
        # master's warm-up (2 heartbeats, 8 cycles) before it cuts a checkpoint that a stale
        # member takes, that member's report and the next beacon (2 cycles)
        hold_max = max((d.pairs + 13) * d.world.boards[d.p(i)].cfg.cycle_us
                       + 3 * d.world.boards[d.p(i)].cfg.slot_us for i in range(d.pairs))
    cap = cfg.pace_max_us + hold_max + 2000
    d.counts.update({"clock_err_us_max_seen": err_seen, "commit_hold_max_us": hold_max,
                     "latency_bound_us": cap})
    if lat and lat[-1] > cap:
        d.fail("a completion was delayed %.1f ms, more than pace_max_us + the commit wait's "
               "hold allow (%.1f ms)" % (lat[-1] / 1000.0, cap / 1000.0))
    if not d.counts["writes_paced"] or not d.counts["writes_over_1ms"]:
        d.fail("no completion was delayed (%d writes paced, %d over 1 ms)"
               % (d.counts["writes_paced"], d.counts["writes_over_1ms"]))
    return d.finish()


def _pct(xs, q):
    if not xs:
        return 0
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _status_name(code):
    for k, v in vars(wire).items():
        if k.startswith("S_") and v == code:
            return k
    return str(code)


def _sum_verdicts(a, b):
    """Two recoveries of one drill (failback: the first failover, then the reverse one) as
    one verdict: counts summed, flags or-ed."""
    sf = {k: a["safety"][k] + b["safety"][k] for k in a["safety"]}
    lv = {k: (a["liveness"][k] or b["liveness"][k]) if isinstance(a["liveness"][k], bool)
          else a["liveness"][k] + b["liveness"][k] for k in a["liveness"]}
    out = dict(b, **_verdict.classify(sf, lv))
    out["lost_before_cut_ids"] = sorted(set(a.get("lost_before_cut_ids", ()))
                                        | set(b.get("lost_before_cut_ids", ())))
    assert set(sf) == set(_verdict.verdict(None)["safety"])
    return out


# ---------------------------------------------------------------------------------------
def _baseline(log, images, fo_us):
    """The writes visible in the images recovered at the first failover, as log entries
    of the second phase's check: the second phase starts from this image, so its
    check expects each block to hold its phase-2 writes on top of exactly these."""
    out = []
    for pair in sorted(images):
        vol = images[pair][0]
        bs = _payload.BLOCK_SIZE
        for blk in range(len(vol) // bs):
            st = _payload.inspect(vol[blk * bs:(blk + 1) * bs])
            if st.status != _payload.VALID:
                continue
            e = log.get(st.payload.serial)
            dct = e.to_dict()
            dct["dep"] = None
            if dct["complete_us"] is None or not dct["ok"]:
                # in flight (or failed) at the disaster, yet recovered: it is part of the
                # state the host resumed from at failover
                dct["complete_us"] = fo_us
                dct["complete_seq"] = 0
            dct["ok"] = True
            out.append(dct)
    return out


def _failback(d, pair_q):
    r = d.rng
    w = d.world
    n = d.pairs
    P = [d.p(i) for i in range(n)]
    S = [d.s(i) for i in range(n)]
    # -- phase 1: the ordinary drill, except that the primaries are switched off ----
    t_d1 = int(r.uniform(3.0e6, 5.0e6))
    d.run_to(t_d1)
    w.disaster_time = t_d1
    w.driver.stop()
    ops.drill.disaster(w, P)                # switched off: they come back for the failback
    d.note("disaster 1: primary site switched off")
    w.run(w.now + 3000000)
    log1 = d.wl.log
    log1.close(t_d1)
    res1 = recover(w, log1, w.secondaries, d.ckpts, d.mode, t_d1, transport=d.t)
    fo1 = res1["failover"]
    n1 = fo1["target_n"]
    t_fo1 = w.now
    d.note("failover 1 to checkpoint %d" % n1)
    if set(fo1["codes"].values()) != {wire.S_OK}:
        d.fail("failover 1: %s" % fo1["codes"])
    images1 = {i: {0: vols[0].raw()} for i, vols in res1["images"].items()}
    rep1, v1 = res1["report"], res1["verdict"]
    d.counts["phase1"] = {"consistent": v1["verdict"] not in ("safety", "safety+liveness"),
                          "verdict": v1["verdict"], "safety": v1["safety"],
                          "liveness": v1["liveness"],
                          "violations": rep1.violations_total,
                          "lost_before_cut": v1["lost_before_cut_ids"],
                          "writes_completed": rep1.writes_completed,
                          "writes_recovered": rep1.writes_recovered, "rpo_ms": rep1.rpo_ms,
                          "recovered_checkpoint": n1}
    # -- phase 2: the application runs at the secondary site -----------------------------
    wl2 = _Workload2(kind=d.wl.kind, pairs=n, vols=1, blocks=d.wl.blocks, rate=d.wl.rate,
                     duration_us=600 * 1000000, concurrency=d.wl.concurrency, seed=d.seed + 7777,
                     writer=2, first_id=PHASE2_FIRST_ID)
    drv2 = WorkloadDriver(w.sched, wl2, [w.hosts[S[i]] for i in range(n)], wire.T_H_WRITE,
                          wire.P_H_WRITE, wire.S_OK)
    w.sched.schedule(w.now + int(r.uniform(0.2e6, 1.0e6)), drv2.start)
    d.log = wl2.log
    t_on = w.now + int(r.uniform(0.5e6, 2.0e6))
    d.run_to(t_on)
    w.restart(P)
    d.note("old primaries powered on")
    d.run_to(w.now + int(r.uniform(1.0e6, 2.0e6)))
    quiesce = pair_q
    if quiesce:
        drv2.pause()
        d.wait(lambda: drv2.outstanding() == 0, 5000000, 10000)
        d.note("application quiesced for the failback")
    # -- failback, in arcopy's order ---------------------------------------------------------
    merged = {}
    for i in range(n):
        st = d.failback(P[i], wire.ROLE_SECONDARY)
        d.note("%s FAILBACK(2) -> %r" % (P[i], st))
        if st != wire.S_OK:
            d.fail("%s: FAILBACK(secondary) answered %r" % (P[i], st))
    for i in range(n):
        marks, count, refused = ops.failback.merge_marks(d.t, P[i], S[i], 1, d.vol_blocks(P[i]),
                                                         list_attempts=12, **d._send_kw())
        if marks is None:
            d.fail("%s: no answer to DIRTY_LIST" % P[i])
        merged[i] = count + len(refused)
        for v, blk, st in refused:
            d.fail("%s: MARK_DIRTY %d answered %r" % (S[i], blk, st))
        d.note("%s DIRTY_LIST: %d blocks -> %s MARK_DIRTY (%d refused)"
               % (P[i], merged[i], S[i], len(refused)))
    recs = {}
    for i in range(n):
        recs[i] = d.start_copy(i, "FAILBACK", wire.ROLE_PRIMARY, prim=S[i])
        recs[i]["merged_from_old_primary"] = merged[i]
    if d.disaster_at == "resync":
        d.run_to(w.now + int(r.uniform(0.02e6, 1.5e6)))
        return _lose_new_primaries(d, S, P, log1, images1, t_fo1, wl2, drv2, v1)
    for i in range(n):
        b = w.boards[S[i]]
        if b.cfg.role != wire.ROLE_PRIMARY or w.boards[P[i]].cfg.role != wire.ROLE_SECONDARY:
            d.fail("pair %d: roles not swapped (%s role %r, %s role %r)"
                   % (i, S[i], b.cfg.role, P[i], w.boards[P[i]].cfg.role))

    if not d.wait(lambda: _all_joined(d, recs, S.__getitem__, P.__getitem__), 40000000):
        d.fail("not every reversed pair reached DUPLEX within 40 s")
    if d.disaster_at == "duplex":
        return _lose_new_primaries(d, S, P, log1, images1, t_fo1, wl2, drv2, v1)
    for rec in recs.values():
        d.check_copy(rec, log=wl2.log)
    # -- quiescence: both sides must hold the same volumes --------------------------------------
    drv2.pause()
    d.wait(lambda: drv2.outstanding() == 0, 5000000, 10000)
    t_q = w.now
    # every write is stamped below the new primary's sequence time now: once its secondary
    # has applied a cut at or after it, the secondary holds every write
    quiet_t = {}
    for i in range(n):
        st = d.status(S[i])
        quiet_t[i] = None if st is None else st["seq_time_us"]

    def mirrored():
        return all(w.read_volume(P[i], 0) == w.read_volume(S[i], 0) for i in range(n))
    # the last writes reach the old primaries at the next released checkpoints (a lost
    # frame costs a retransmission timeout of a few seconds)
    d.wait(mirrored, 15000000, 250000)
    d.counts["mirrored_after_ms"] = round((w.now - t_q) / 1000.0, 1)
    same = []
    differ = []
    for i in range(n):
        a = w.read_volume(P[i], 0)
        b = w.read_volume(S[i], 0)
        same.append(a == b)
        if a != b:
            bs = _payload.BLOCK_SIZE
            diff = [k for k in range(len(a) // bs) if a[k * bs:(k + 1) * bs] != b[k * bs:(k + 1) * bs]]
            ss = d.status(P[i])
            applied = None if ss is None else ss["applied_t"]
            if applied is not None and quiet_t[i] is not None and applied >= quiet_t[i]:
                # the secondary applied a cut after every write: the sites differ for good
                differ.append(i)
                d.note("pair %d: SITES DIFFER in %d blocks, e.g. %s, with a cut after the last "
                       "write applied" % (i, len(diff), diff[:8]))
            else:
                # no cut after the last write applied yet: the cut stopped advancing (liveness)
                d.fail("pair %d: 15 s after the failback and quiescence the volumes still differ in "
                       "%d blocks, e.g. %s; %s has applied no cut after the last write"
                       % (i, len(diff), diff[:8], P[i]))
    d.counts["sites_differ"] = differ
    d.counts.update({"quiesced_for_failback": quiesce, "mirrored_after_quiescence": same,
                     "pairs": [d.public(recs[i]) for i in range(n)],
                     "copy_done": sum(rec.get("copy_done", 0) for rec in recs.values()),
                     "marked_at_failback": sum(len(rec["marked_set"]) for rec in recs.values())})
    if d.wait_group:
        d.establish(secs=P)
    drv2.resume()
    # -- the second disaster, the other way round ----------------------------------------------
    d.run_to(w.now + int(r.uniform(1.0e6, 3.0e6)))
    return _lose_new_primaries(d, S, P, log1, images1, t_fo1, wl2, drv2, v1, differ)


def _lose_new_primaries(d, S, P, log1, images1, t_fo1, wl2, drv2, v1, differ=()):
    """Failback's second disaster, now: the new primaries (the old secondary site) are lost;
    the old primaries fail over, checked against phase 1's image plus phase 2's writes.
    differ: pairs whose sites still differed after the failback with a cut past the last
    write applied (safety)."""
    w = d.world
    t_d2 = w.now
    drv2.stop()
    ops.drill.disaster(w, S)
    d.note("disaster 2: the new primaries (old secondary site) lost")
    w.run(w.now + 4000000)
    wl2.log.close(t_d2)
    log2 = WorkloadLog.from_dict({"writer": 2, "end_us": t_d2,
                                  "writes": _baseline(log1, images1, t_fo1)
                                  + [e.to_dict() for e in wl2.log.entries]})
    res2 = recover(w, log2, w.primaries, d.ckpts, d.mode, t_d2, transport=d.t)
    d.note("failover 2 to checkpoint %d" % res2["failover"]["target_n"])
    d.counts["phase2_writes"] = wl2.issued
    d.counts["phase2_refused"] = drv2.refusals
    if differ:
        # a later disaster would recover data the primary never had: safety
        res2 = dict(res2, verdict=_verdict.with_sites_differ(res2["verdict"], differ))
    return d.result(res2, t_d2, drv2, before=v1)


# ---------------------------------------------------------------------------------------
DEFAULT_DURATION = {"initial-copy": 8.0, "suspend": 9.0, "autosuspend": 12.0, "pacing": 8.0,
                    "failback": 16.0, "master-restart": 10.0}


def run_ops(op, seed=0, pairs=4, duration_s=None, faults="none", mode="clock", kind="ims",
            rate=60.0, ckpt_interval_ms=200, policy="freeze", concurrency=4, bus_baud=115200,
            peer_baud=None, config=None, world_opts=None, wait_group=True, disaster_delay_s=None,
            disaster_at="drawn"):
    """One seeded drill of operation `op` (see OPS); returns a dict (see the module doc).

    duration_s: the window faults are drawn in (default per operation); the drill's
    own timeline (operation instants, the disaster) is drawn from the seed.
    wait_group=False: do not wait after the joins until a group failover would succeed
    before the disaster; disaster_delay_s: the disaster this long after that point instead of a
    drawn delay (0 with wait_group=False: at the instant every pair shows DUPLEX).
    disaster_at: "drawn" (as above), "resync" (a drawn instant after a resync started:
    START_COPY, RESUME, failback's reversed copy) or "duplex" (the instant every pair first
    shows DUPLEX after it: wait_group=False, disaster_delay_s=0; failback: its second
    disaster)."""
    if op not in OPS:
        raise ValueError("unknown operation %r (one of %s)" % (op, ", ".join(OPS)))
    if disaster_at not in ("drawn", "resync", "duplex"):
        raise ValueError("disaster_at %r: drawn, resync or duplex" % (disaster_at,))
    if disaster_at == "duplex":
        wait_group, disaster_delay_s = False, 0
    if op not in OPS:
        raise ValueError("unknown operation %r (one of %s)" % (op, ", ".join(OPS)))
    if pairs < 2 and op in TWO_PAIR_OPS:
        raise ValueError("%s needs at least 2 pairs" % op)
    duration_s = DEFAULT_DURATION[op] if duration_s is None else duration_s
    from .rng import SeedTree
    plan = SeedTree(seed).stream("ops-setup/" + op)
    config = dict(config or {})
    world_opts = dict(world_opts or {})
    extra = {}
    if op == "initial-copy":
        world_opts.setdefault("autostart", False)
    elif op == "autosuspend":
        k = plan.randrange(pairs)
        slots = plan.choice((24, 32, 40))
        world_opts.setdefault("journal_slots", 512)
        bc = dict(world_opts.get("board_config") or {})
        bc["p%d" % k] = dict(bc.get("p%d" % k, {}), journal_slots=slots)
        world_opts["board_config"] = bc
        t0 = int(plan.uniform(2.0e6, 3.0e6))
        extra = {"k": k, "outage": (t0, t0 + int(plan.uniform(4.0e6, 6.0e6)))}
    elif op == "pacing":
        variant = plan.choice(("slow-link", "held-link"))
        extra = {"variant": variant, "hold": None}
        if variant == "slow-link":
            if peer_baud is None:
                peer_baud = plan.choice((28800, 38400))
            config.setdefault("pace_threshold", plan.choice((16, 32, 64)))
            config.setdefault("pace_max_us", plan.choice((300000, 500000)))
        else:
            # the held pair's journal grows by its writes and the checkpoint markers (about
            # 10-20 entries a second here): well past the threshold, far from full
            config.setdefault("pace_threshold", plan.choice((4, 6, 8)))
            config.setdefault("pace_max_us", plan.choice((50000, 100000, 200000)))
            world_opts.setdefault("journal_slots", 128)
            t0 = int(plan.uniform(2.0e6, 4.0e6))
            extra["hold"] = (plan.randrange(pairs), t0, t0 + int(plan.uniform(1.5e6, 3.0e6)))
    elif op == "failback":
        extra = {"pair_q": plan.random() < 0.5}
    elif op == "master-restart":
        extra = {"k": 1 + plan.randrange(pairs - 1), "pre": int(plan.uniform(0, 0.4e6)),
                 "down": int(plan.uniform(0.3e6, 6.0e6)),
                 "gap": int(plan.choice((0, plan.uniform(0, 0.6e6), plan.uniform(0, 3.0e6))))}
    d = Drill(op, seed, pairs, faults, duration_s, mode, kind, rate, concurrency,
              ckpt_interval_ms, policy, bus_baud, peer_baud or 115200, config, world_opts)
    d.wait_group = wait_group
    d.disaster_at = disaster_at
    d.disaster_delay_us = None if disaster_delay_s is None else int(disaster_delay_s * 1e6)
    try:
        if op == "initial-copy":
            return _initial_copy(d)
        if op == "suspend":
            return _suspend(d)
        if op == "autosuspend":
            return _autosuspend(d, **extra)
        if op == "pacing":
            return _pacing(d, **extra)
        if op == "master-restart":
            return _master_restart(d, **extra)
        return _failback(d, **extra)
    finally:
        d.close()
