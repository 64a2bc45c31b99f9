# Primary role: host writes complete at once and are queued, durably, for the peer.
#
# The primary's journal IS the peer stream: every host write is appended as a
# record (volume, block, sequence time, lseq, data) before it is acknowledged to
# the host, and every accepted CHECKPOINT is appended as a marker, so the stream
# survives a reboot unchanged. Entries leave the journal when the secondary has
# acknowledged them durably.
#
# Sequence time (clock mode) follows a hybrid-logical-clock rule:
#     stamp = max(local clock + offset from the master, last stamp + 1, last checkpoint T + 1)
# so after a checkpoint T is accepted, no later write is stamped <= T.
# Clock error bound (commit_wait on): a member keeps the interval [lo, hi] that surely
# holds the master's sequence time minus its own clock, with no premise on how late a
# frame is read. Lower end: a beacon read at local time `now` carrying the master's
# time t (at the beacon's end) gives t - now - early (read late, never early, but for
# the master's drift over its air time). Upper end: only from a round trip: our clock
# report, sent at our tick t1 (its tag), read by the master at its time t2; a later
# beacon echoes the tag and hold = t - t2; read at `now`, the master's time is at most
# t2 - air(report) + (now - t1), plus drift. An interval widens by drift_max_ppm on each
# side as time passes; the interval kept is the intersection. The member's sequence
# time is the upper end (never behind the master), its error bound clock_err_us the
# width (never more ahead than that). Before a round trip with its master a member has
# no upper end: with commit_wait its clock is not SYNCED, so it refuses writes
# (NOT_READY) until a beacon echoes a report (sent every slot with commit_wait).
# Commit wait, on the cut grid: with the commit wait the master cuts only at multiples of
# CUT_GRID us of sequence time (T = the grid point at or below its clock). A board stamps
# s = max(lower end, g + 1) (and the floors below), g the grid point at or below the upper
# end of its interval, G() rounding down to the grid. A journaled write's reply (stamp s)
# waits until s <= G(lower end) + CUT_GRID. Then no cut holds a write W' issued after that
# reply without this write: W' is stamped s' > G(its board's upper end) >= G(master's time
# then) >= G(master's time at the reply) >= G(lower end at the reply); a cut T holding W'
# is a grid point >= s', so T >= G(lower end at the reply) + CUT_GRID >= s: it holds this
# write too (stamped <= T, hence before its board took T). A write stamped at the lower end
# is replied to at once; only one whose interval straddles a grid point (g >= lower end,
# s = g + 1) waits, until the lower end reaches g: at most clock_err_us. (Before the grid:
# stamps at the upper end, every reply waited until s <= lower end.)
# Clockless mode stamps every write with (last checkpoint T + 1): arrival of the
# checkpoint at this board is the boundary. Checkpoint barrier (a broadcast may reach one
# board late, or not at all until a resend): a journaled write's reply (stamp s) waits until
# every primary that may acknowledge writes has taken checkpoint s - 1, so a write issued
# after that reply, on any board, is stamped >= s, and a cut holding it holds this one. Each
# member reports its last T (every heartbeat, and in every slot while it holds no lease or
# the master has not confirmed its T). The master's beacon carries `t` = C, the newest T
# every primary it counts has reported (its own included), never lower than a C it announced
# before in this mastership nor than its own T when it first announced one (once every member
# heard lately has reported to it); and `tag` = the mask (site_nodes order) of the counted
# primaries it heard within member_timeout_us. It counts a primary that reported to it in this
# mastership (members without a lease report in every slot). A
# member acknowledges journaled writes, and accepts them, only while it holds a lease: a
# beacon of its master with its bit, read within _LEASE cycles, whose C is not above its own
# T (else it is stale: it missed a checkpoint, and waits for the resend). The master counts a
# primary until it has not heard it for 2 x member_timeout_us (a member it stops counting lost
# its lease long before, unless it reads a beacon member_timeout_us - _LEASE cycles late); a
# primary newly counted with a T below C announced is stale on its first lease; so every
# board that may acknowledge after a reply stamped s (C >= s - 1) has taken T >= s - 1.
# (Residual: two masters at once on a split bus, each counting boards the other leases.)
#
# Pair states (superblock copy_state; every change goes through pairstate.transition(),
# whose table says which events move the pair where):
#   SIMPLEX    no copy; writes mark the change bitmap (what a first copy must move)
#   PENDING    resync: marked blocks are read, journaled as copy records and shipped
#              (the secondary writes them on arrival); host writes mark the bitmap.
#              When the bitmap is empty at a checkpoint the pair JOINS there: the
#              join marker says "the secondary's volume is now the cut at T".
#   DUPLEX     writes are journaled and shipped as the ordered stream
#   SUSPENDED  operator or a full journal stopped the stream: the journal's records
#              became bitmap marks; writes mark the bitmap; RESUME goes to PENDING
#              (reason PEER_FAILED_OVER: the secondary said it failed over; the journal
#              is kept for a failback, writes are refused S_FENCED, or with fence_writes
#              off marked; any pair command first turns the journal into marks)
from firmware.wire import (const, BROADCAST, CS_DUPLEX, CS_PENDING, CS_SIMPLEX, CS_SUSPENDED, F_COPY, F_SYNC, HDR_SIZE, MAX_FRAME, MODE_CLOCK, MODE_CLOCKLESS,
                           MODE_SYNC, OVERHEAD, POLICY_CONTINUE, POLICY_FREEZE, PORT_BUS, PORT_PEER,
                           ROLE_PRIMARY, ROLE_SECONDARY,
                           R_JOURNAL_FULL, R_OPERATOR, R_PEER_FAILED_OVER, ST_COPY_ACTIVE, S_BAD_COMMAND,
                           S_BAD_STATE, S_FENCED, S_JOURNAL_FULL, S_NOT_READY, S_OK, S_WRONG_ROLE, C_FAILOVER, C_SET_POLICY,
                           T_ACK, T_CHECKPOINT, T_CLOCK_SYNC,
                           T_COPY_ACTIVE, T_IDLE, T_JOIN, T_MARKER, T_NAK, T_PEER_HELLO, T_SUSPEND,
                           T_WRITE_BATCH)
from firmware import codec
from firmware.codec import (SZ_BATCH_HEAD, SZ_CHECKPOINT, SZ_CLOCK_SYNC, SZ_COPY_ACTIVE, SZ_IDLE,
                            SZ_JOIN, SZ_MARKER, SZ_PEER_HELLO, SZ_SUSPEND)
from firmware.ticks import AGE, TICKS_MASK, ticks_add, ticks_age, ticks_diff, ticks_past
from firmware.peerlink import Sender
from firmware.store import StoreError, J_RECORD, J_CHECKPOINT, J_COPY, J_JOIN, IMG_FIRST
from firmware import pairstate as ev
from firmware.pairstate import transition, next_state, LINK_HELLO, LINK_UP, CLOCK_COLD, CLOCK_SYNCED

_RESEND_CKPT = const(2)      # cycles a new checkpoint is broadcast again
_HEARTBEAT = const(4)        # COPY_ACTIVE every this many cycles or slots
_UNKNOWN_SESSION = const(0xFFFFFFFF)   # a secondary's HELLO meaning "start a new session"
_SYNC_SAMPLES = const(4)     # beacons over which the least-delayed clock sample is kept
_LEASE = const(3)            # clockless: cycles a beacon that counts a member is its lease
_COPY_PER_TICK = const(4)    # resync: blocks journaled per tick at most (bounded work per tick)
ERR_UNKNOWN = const(0xFFFFFFFF)   # clock_err_us of a board that follows no master's time
_DT_MAX = const(0x3FFFFFFF)  # largest time offset of a record in its batch (a small int on the RP2040)
# a batch grows back by one record after this many windows of frames acknowledged without a
# go-back (measured on a noisy line, bit errors 5e-6 and 3 % loss: 0.704 of line rate after 4,
# 0.681 after 2 windows; 8 drained resyncs more slowly in the autosuspend drill)
_GROW_FRAMES = const(4)
# firmware/ticks.py's arithmetic, inlined on the paths that run after every event:
# ticks_diff(a, b) < 0 is (a - b) & TICKS_MASK >= _HALF; ticks_add(a, d) for 0 <= d < _HALF
# is a - _WRAP + d, plus _WRAP when that is negative
_HALF = const(0x20000000)
_WRAP = const(0x40000000)         # TICKS_MASK + 1
# commit wait: cuts fall on multiples of this many us of sequence time (see the header). Every
# board of a group must use the same grid, so it is not a setting. Finer: more writes whose
# clock interval straddles a grid point wait; coarser: cuts come later than their interval
# (by CUT_GRID / 2 on average)
CUT_GRID = const(8192)


class Primary:
    def __init__(self, node):
        self.node = node
        self.cfg = node.cfg
        self.store = node.store
        self.tx = node.tx
        # frames are built in the node's tx buffer: every frame built there is copied out
        # when it is sealed, and nothing else is emitted while a stream frame is built
        self.sender = Sender(self.cfg.window, self.cfg.rto_us, node.tx)
        self.ckpt_n = 0
        self.ckpt_t = 0
        self.offset = 0              # sequence time = local clock + offset
        self.off_r = 0               # offset % CUT_GRID (grid points found from small ints)
        # the local clock for sequence times: `now` unwrapped (see local()): ep_t at tick ep_k
        self.ep_t = 0
        self.ep_k = 0
        self.clock = CLOCK_COLD      # pairstate.CLOCK_*
        self.last_stamp = 0
        self.skew_last = 0
        self.syncs = 0
        # recent (master time - local time) samples, kept as (sample - offset)
        self.samples = [0] * _SYNC_SAMPLES
        # clock error bound: the master's time minus our clock lies in [ilo, ihi] at
        # local time sync_at (local(), as sync_new); the interval widens by 1 us every
        # drift_k us on each side
        self.sync_src = 0            # the master whose beacons our clock follows (0: none)
        self.sync_at = 0
        self.sync_new = 0            # local time we began following sync_src
        # ilo and ihi are kept as dlo = ilo - offset, dhi = ihi - offset: small ints when
        # the sequence times are not (docs/ARCHITECTURE.md, "Clock arithmetic")
        self.dlo = 0
        self.dhi = 0
        self._cu_t = None            # _catch_up: the floor and offset last found no catch-up
        self._cu_off = None
        self.grow = False            # seq_time is ihi + growth: following a master, commit_wait on
        self.drift_k = 1000000 // self.cfg.drift_max_ppm
        self.hi_ok = False           # the interval has an upper end (from a round trip)
        self.rt_tag = -1             # member: the tick our last clock report was sent at (-1: none)
        self.rt_dst = 0              # member: the master it was sent to
        self.round_trips = 0         # beacons that echoed our report (an upper end)
        self.rep_air = (OVERHEAD + SZ_CLOCK_SYNC) * 10000000 // self.cfg.bus_baud
        # master: the last clock report of each site node not yet echoed: its tag, our tick
        # when we read it (echo_due[i] set), site_nodes order; echo_tag/echo_at: echo_pick's
        nn = len(self.cfg.site_nodes)
        self.echo_tags = [0] * nn
        self.echo_ats = [0] * nn
        self.echo_due = bytearray(nn)
        self.echo_tag = 0
        self.echo_at = 0
        self.echo_next = 0           # echo_pick's round robin: the index last echoed
        self.late_samples = 0        # beacons read later than sync_late_us behind the lower end
        self.clock_resets = 0        # beacons outside the interval: the bound had failed
        self.commit_waits = 0        # host write replies held back by the commit wait (or barrier)
        # clockless checkpoint barrier (header). Master: each site node's last reported T and
        # whether it reported since this mastership; bar_mask: the last beacon's member mask
        self.bar_ts = [0] * nn
        self.bar_in = bytearray(nn)
        self.bar_mask = 0
        self.bar_top = -1            # master: C announced this mastership (-1: none yet)
        self.bar_bit = 1 << self.cfg.site_nodes.index(node.me)
        # member: the T the master's last beacon that counted us confirmed, when we read it,
        # from which master (0: no lease)
        self.bar_seen = 0
        self.bar_at = 0
        self.bar_src = 0
        self.next_lseq = 1
        self.send_jseq = 0           # next journal entry to put on the link
        self.session = 0
        self.link = LINK_HELLO       # peer link session (pairstate.LINK_*)
        self.hello_at = 0
        self.last_rx = 0             # last frame from the peer
        self.last_tx = 0
        self.next_ckpt = 0
        self.ckpt_resend = 0
        self.cycles = 0
        self.sync_wait = {}          # sync mode: lseq -> host tag
        self.sync_lseq = 0           # first record lseq written in sync mode (this period)
        self.records_moved = 0
        self.records_acked = 0
        self.acked_lseq = 0
        self.checkpoints_issued = 0
        self.link_resets = 0
        self._carry = None           # entry read but not yet framed
        self.pump_due = False        # records were queued since the link was last filled
        self.heard_ckpt = False      # a CHECKPOINT from the master since boot
        self.master_since = -1       # mac.became_master when `reported` was started
        self.reported = {}           # members that sent a clock report to us as master
        self.ckpt_known = False      # we accepted ckpt_n ourselves (know its T)
        self.clock_jumps = 0
        self.active = {}             # copy-active primaries heard on the bus: id -> copy state
        self.copy_vol = 0            # resync cursor: next (volume, block) to look at
        self.copy_blk = 0
        self.copy_base = 0           # first lseq of the current copy-pending phase
        self.copy_last = 0           # lseq of the last copy record of that phase
        self.copied = 0              # copy records journaled (all phases)
        self.pace_us = 0             # completion delay given to the last host write
        self.paced = 0               # host writes whose completion was delayed
        self.suspends = 0
        self.pending_heard = 0       # checkpoints accepted since this resync began
        # peer link under errors (go-back-N on a slow serial line): records per batch
        # shrink at each go-back and grow again with clean acknowledgements, so a noisy
        # link carries small frames (a bit error costs less); a NAK for the frame a
        # go-back is still putting on the wire is not obeyed again; silence counts
        # only once what was sent has left the wire (tx_until: estimated airtime)
        self.batch_lim = self.cfg.batch_max
        self.clean = 0               # frames acknowledged since the last go-back
        self.tx_until = 0            # when the frames emitted so far are off the wire
        self.back_until = 0          # a NAK for sender.back is ignored until then
        self.naks_ignored = 0
        self.rewound = False
        self.fill_at = -1            # paced: when the line has drained enough for the next frame
        # one full frame's airtime at peer_baud (10 bits a byte)
        self._lead_us = MAX_FRAME * 10000 // (self.cfg.peer_baud // 1000)

    # -- state -----------------------------------------------------------------------
    def copy_active(self):
        """Host writes are journaled for the peer (the ordered stream)."""
        return self.store.sb.copy_state == CS_DUPLEX

    def shipping(self):
        """The peer link is in use: the stream, or a resync."""
        s = self.store.sb.copy_state
        return s == CS_DUPLEX or s == CS_PENDING

    def ready(self, now):
        """May this board stamp writes? It must share the group's time and know the
        current checkpoint, or a write could be ordered before writes that completed
        earlier elsewhere, or below a checkpoint that was already cut."""
        mac = self.node.mac
        if mac.is_master():
            return self.warm(now)
        if not self.heard_ckpt:
            return False
        if self.cfg.mode == MODE_CLOCKLESS:
            return True
        if self.cfg.commit_wait and self.sync_src != mac.master and \
                ticks_diff(now, mac.last_beacon) > self._overdue():
            # a new master warms up while we keep the old one's time, which its clock will
            # not be below when warm; but its beacons stopped reaching us: it may be warm,
            # and boards following it ahead of our time (SPEC section 9, "Clock error bound and commit wait")
            return False
        return self.clock == CLOCK_SYNCED

    def _overdue(self):
        # a master's beacon is overdue after this long (cycle, its id offset, its jitter)
        return self.cfg.cycle_us + 2 * self.node.mac.slot_us

    def warm(self, now):
        """As master: may our clock be the group's time source? Only once we carry the
        group's time: either we were synchronised to a warm master since boot, or
        every member alive has reported its clock to us (and we moved forward to it)."""
        mac = self.node.mac
        if mac.became_master != self.master_since:
            self.master_since = mac.became_master
            self.reported = {}
            bi = self.bar_in
            for i in range(len(bi)):
                bi[i] = 0
            self.bar_top = -1
        if ticks_diff(now, mac.became_master) < self._warmup():
            return False
        if self.clock == CLOCK_SYNCED or self.cfg.mode == MODE_CLOCKLESS and self.heard_ckpt:
            return True
        for m in mac.members:
            if m != self.node.me and mac.alive(m, now) and m not in self.reported:
                return False
        return True

    def _warmup(self):
        # long enough for every member's clock report to arrive (one per heartbeat)
        return 2 * _HEARTBEAT * self.node.mac.cycle_us

    def status_flags(self):
        f = 0
        if self.copy_active():
            f |= ST_COPY_ACTIVE
        return f

    def released_n(self):
        return 0

    def seq_time(self, now):
        if self.cfg.mode == MODE_CLOCKLESS:
            return self.ckpt_t + 1
        t = self.clock_now(now)
        if t <= self.last_stamp:
            t = self.last_stamp + 1
        if t <= self.ckpt_t:
            t = self.ckpt_t + 1
        return t

    def local(self, now):
        """The local clock that sequence times are kept against: the tick `now` unwrapped,
        from an origin that age() moves so that it stays below 2**29 (small ints): at boot
        it is the tick itself. Sequence time = local + offset whatever the origin."""
        return self.ep_t + ticks_diff(now, self.ep_k)

    def age(self, now):
        """Node.tick, at least every AGE / 2 us: keep local ticks within AGE of now."""
        L = self.local(now)
        self.ep_k = now
        if L < AGE:
            self.ep_t = L
        else:
            self._rebase(now, L)
        self.last_rx = ticks_age(now, self.last_rx)
        self.last_tx = ticks_age(now, self.last_tx)
        self.tx_until = ticks_age(now, self.tx_until)
        self.back_until = ticks_age(now, self.back_until)
        self.hello_at = ticks_age(now, self.hello_at)
        self.next_ckpt = ticks_age(now, self.next_ckpt)
        self.bar_at = ticks_age(now, self.bar_at)
        if self.master_since >= 0:
            self.master_since = ticks_age(now, self.master_since)   # as mac.became_master
        self.rt_tag = -1                 # a report this old is not echoed any more
        for i in range(len(self.echo_due)):
            self.echo_due[i] = 0

    def _rebase(self, now, L):
        """Keep local() small: once it reaches AGE it restarts from 0 here, every "master
        time - local" (offset, hence the interval and samples kept relative to it) and
        every local() time (sync_at, sync_new) moved to match, so no sequence time changes
        (one big-int sum, once every ~2**28 us; tick() checks)."""
        self.ep_k = now
        self.ep_t = 0
        self.offset += L
        self.off_r = (self.off_r + L) % CUT_GRID
        self.sync_at -= L
        self.sync_new -= L

    def _move(self, d):
        """offset += d, the interval and the samples staying where they are (absolute)."""
        self.offset += d
        self.off_r = (self.off_r + d) % CUT_GRID
        self.dlo -= d
        self.dhi -= d
        ring = self.samples
        for i in range(_SYNC_SAMPLES):
            ring[i] -= d

    def clock_now(self, now, plus=0):
        """Our clock (+ plus us): local time plus offset (following a master with
        commit_wait: the upper end of the interval, widened since the last beacon). The
        small terms are summed first: one big int (the result) when the offset is one."""
        L = self.local(now) + plus
        if self.grow:
            return L + (L - plus - self.sync_at) // self.drift_k + 1 + self.offset
        return L + self.offset

    def clock_err(self, now):
        """A bound on how far our clock (now + offset, plus growth) is from the master's
        sequence time, in us; 0 as the master, ERR_UNKNOWN following nobody."""
        if self.cfg.mode == MODE_CLOCKLESS:
            return 0
        if self.sync_src == self.node.me:
            # the master's time (or, stepped down, the old master's time itself)
            return 0 if self.clock == CLOCK_SYNCED else ERR_UNKNOWN
        if not self.sync_src or self.clock != CLOCK_SYNCED or not self.hi_ok:
            return ERR_UNKNOWN
        g = (self.local(now) - self.sync_at) // self.drift_k + 1
        if self.grow:
            e = self.dhi - self.dlo + 2 * g
        else:
            # the older estimate (largest recent sample): its distance to either end
            a = self.dhi + g
            b = g - self.dlo
            e = a if a > b else b
        return e if e < ERR_UNKNOWN else ERR_UNKNOWN

    def commit_delay(self, now, stamp):
        """Commit wait: 0 if a write stamped `stamp` may be acknowledged now (the master's
        time has surely passed it), else how long to wait before asking again."""
        cfg = self.cfg
        if cfg.mode == MODE_CLOCKLESS:
            return self._bar_delay(now, stamp)
        if not cfg.commit_wait or cfg.mode != MODE_CLOCK:
            return 0
        mac = self.node.mac
        if mac.is_master():
            ok = self.grow if self.sync_src != mac.me else self.warm(now)
        else:
            ok = self.ready(now)
        if not ok:
            return mac.cycle_us             # following no master's time: ask again in a cycle
        L = self.local(now)
        if self.sync_src == (mac.me if mac.is_master() else mac.master):
            h = self.sync_new + self._overdue() + mac.slot_us - L
            if h > 0:
                # newly on this master's time: boards that missed its first warm beacon keep
                # the old master's time (behind it) until they see it overdue (ready())
                return h
        # else still on an older master's time while a new one warms up: the new one's time
        # will not be behind it, so a stamp the old time has passed is safe to release
        # the grid rule (header): wait until the lower end reaches c, the first grid point at
        # or above stamp - CUT_GRID. All relative to the offset (small ints: one temporary)
        if self.grow:
            # the lower end of the interval, L + offset + g - ihi + ilo - 2 g
            g = (L - self.sync_at) // self.drift_k + 1
            lo = L - g + self.dlo - self.dhi
        else:
            lo = L
        c = (stamp - self.offset) - CUT_GRID
        c += -(self.off_r + c) % CUT_GRID
        d = c - lo
        if d <= 0:
            return 0
        if self.grow:
            d += d // (self.drift_k - 1) + 1    # the lower end advances 1 - 1/drift_k per us
        return d

    def _bar_delay(self, now, stamp):
        """Clockless checkpoint barrier (header): 0 if a write stamped `stamp` may be
        acknowledged now, else how long to wait before asking again."""
        mac = self.node.mac
        if mac.is_master():
            if self._bar_confirmed(now) >= stamp - 1:
                return 0
        elif self._bar_lease(now) and self.bar_seen >= stamp - 1:
            return 0
        return mac.slot_us // 4 + 1

    def _bar_lease(self, now):
        """Clockless member: our master counts us (a beacon with our bit, read lately)."""
        mac = self.node.mac
        return self.bar_src != 0 and self.bar_src == mac.master and self.bar_seen <= self.ckpt_t \
            and ticks_diff(now, self.bar_at) < _LEASE * mac.cycle_us

    def _bar_confirmed(self, now):
        """Clockless master: C (header), the newest T every primary it counts has taken (ours
        included), never below a C announced before in this mastership; sets bar_mask."""
        mac = self.node.mac
        if mac.became_master != self.master_since:
            self.warm(now)                  # a new mastership: forget the old one's reports
        tmo = mac.member_timeout_us
        fresh = 2 * mac.cycle_us
        heard = mac.heard
        c = self.ckpt_t
        mask = 0
        wait = False
        nodes = self.cfg.site_nodes
        me = self.node.me
        for i in range(len(nodes)):
            m = nodes[i]
            h = heard.get(m)
            if m == me or h is None:
                continue
            d = ticks_diff(now, h)
            if not self.bar_in[i]:
                # not counted (it holds no lease of ours); one heard lately reports soon
                if 0 <= d < fresh:
                    wait = True
                continue
            if d < 0 or d >= 2 * tmo:
                continue
            if d < tmo:
                mask |= 1 << i
            if self.bar_ts[i] < c:
                c = self.bar_ts[i]
        if self.bar_top < 0:
            if wait:
                # a new mastership: the first C waits for the members alive to report, so
                # that our T (raised to theirs, on_clock_report) is the group's newest
                self.bar_mask = 0
                return 0
            self.bar_top = self.ckpt_t
        self.bar_mask = mask
        if c > self.bar_top:
            self.bar_top = c
        return self.bar_top

    def lag_us(self, now):
        st = self.store
        if self.cfg.mode == MODE_CLOCKLESS or st.j_depth() == 0:
            return 0
        t = st.j_entry(st.j_first())[5]
        if not t:
            return 0                      # a copy record (resync): no sequence time
        d = self.seq_time(now) - t
        return d if d > 0 else 0

    def exposed(self, now):
        """Is a write completed now not protected as configured? The pair is suspended (any
        reason), or, in DUPLEX, the oldest entry the secondary has not acknowledged is older
        than cut_age_max_us: the group's released cut cannot be newer than that entry, so
        lag_us is a lower bound of the cut's age (SPEC section 8, "Exposed writes")."""
        state = self.store.sb.copy_state
        if state == CS_SUSPENDED:
            return True
        m = self.cfg.cut_age_max_us
        return state == CS_DUPLEX and m > 0 and self.lag_us(now) > m

    def stats(self, now):
        return {
            "role": "primary", "ckpt_n": self.ckpt_n, "synced": self.clock == CLOCK_SYNCED,
            "skew_last_us": self.skew_last, "clock_err_us": self.clock_err(now), "syncs": self.syncs,
            "late_samples": self.late_samples, "clock_resets": self.clock_resets,
            "round_trips": self.round_trips,
            "commit_waits": self.commit_waits,
            "records_sent": self.records_moved, "records_acked": self.records_acked,
            "retransmits": self.sender.retransmits, "linked": self.link == LINK_UP,
            "checkpoints_issued": self.checkpoints_issued, "next_lseq": self.next_lseq,
            "link_resets": self.link_resets, "clock_jumps": self.clock_jumps,
            "copied": self.copied, "copy_done": self.copy_done, "paced": self.paced,
            "suspends": self.suspends, "dirty_blocks": self.store.bm_total(),
            "batch_lim": self.batch_lim, "naks_ignored": self.naks_ignored,
        }

    @property
    def copy_done(self):
        """Copy records of the current (or last) resync the peer has acknowledged."""
        top = self.acked_lseq if self.acked_lseq < self.copy_last else self.copy_last
        d = top - self.copy_base + 1
        return d if d > 0 else 0

    @property
    def reason(self):
        """Why the pair is suspended (R_*, kept in the superblock); 0 = not suspended."""
        sb = self.store.sb
        return sb.suspend_reason if sb.copy_state == CS_SUSPENDED else 0

    def ops_status(self):
        """(copy_done, copy_total, pace_us, suspend reason) for STATUS."""
        total = self.copy_last - self.copy_base + 1      # copies journaled in this phase
        if self.store.sb.copy_state == CS_PENDING:
            total += self.store.bm_total()                 # and still to journal
        return self.copy_done, total, self.pace_us, self.reason

    # -- boot ----------------------------------------------------------------------
    def boot(self, now):
        sb = self.store.sb
        self.ckpt_n, self.ckpt_t = sb.ckpt_n, sb.ckpt_t
        self.next_lseq = sb.next_lseq if sb.next_lseq else 1
        self.last_stamp = sb.t_floor
        buf = self.node.scratch
        first = None
        self.copy_last = 0
        # stream records are redone in DUPLEX only: in any other state they reached the
        # volume before the pair left DUPLEX (a boot in DUPLEX redid them), and a marked
        # write since may be newer (a fenced pair keeps its journal)
        redo = sb.copy_state == CS_DUPLEX
        for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
            if kind == J_RECORD or kind == J_COPY:
                if kind == J_RECORD and redo:
                    # redo: the volume write may not have happened before the cut (a
                    # copy record is a copy OF the volume: never written back)
                    self.store.j_read_data(jseq, buf)
                    self.store.write_block(vol, blk, buf)
                if lseq >= self.next_lseq:
                    self.next_lseq = lseq + 1
                if first is None:
                    first = lseq
                if kind == J_COPY:
                    self.copy_last = lseq
                if t > self.last_stamp:
                    self.last_stamp = t
            elif lseq > self.ckpt_n:
                self.ckpt_n, self.ckpt_t = lseq, t
        self.pending_heard = 0
        self.copy_base = first if first is not None else self.next_lseq
        if self.copy_last < self.copy_base:
            self.copy_last = self.copy_base - 1
        self.acked_lseq = self.copy_base - 1
        # records journaled before this boot count as written in the mode in effect now
        # (the F_SYNC boundary is RAM only): a primary in a sync group writes nothing
        # asynchronously, and a secondary of a group switching to sync waits for a cut
        # after the switch anyway (SPEC section 6, "Changing the mode")
        self.sync_lseq = 0
        self.send_jseq = self.store.j_first()
        self.clock = CLOCK_COLD
        self.sync_src = 0
        self.grow = False
        self.hi_ok = False
        self.rt_tag = -1
        for i in range(len(self.echo_due)):
            self.echo_due[i] = 0
        self._cu_t = None
        self.heard_ckpt = False
        self.ckpt_known = False
        self.bar_src = 0
        for i in range(len(self.bar_in)):
            self.bar_in[i] = 0
        self.session = (sb.incarnation & 0xFFFFFF) << 8
        self.link = LINK_HELLO
        self.hello_at = now
        self.last_rx = now
        self.next_ckpt = now              # the first checkpoint as soon as we may cut one
        self.ep_t = now                   # local() starts at the tick itself
        self.ep_k = now
        # "never" (0 at start) must not read as ahead of a clock past 2**29
        self.last_tx = ticks_past(now, self.last_tx)
        self.tx_until = ticks_past(now, self.tx_until)
        self.back_until = ticks_past(now, self.back_until)
        if self.cfg.autostart and sb.copy_state == CS_SIMPLEX:
            if self.store.bm_total():
                self.start_pending(now)
            else:
                # nothing written since format, and both sides are provisioned blank
                # together: the pair is established without a copy
                transition(self.store, ROLE_PRIMARY, ev.START_NOCOPY)

    # -- host --------------------------------------------------------------------
    def host_read_status(self):
        return S_OK

    def stamp(self, now):
        cfg = self.cfg
        if not cfg.commit_wait or cfg.mode != MODE_CLOCK:
            t = self.seq_time(now)
            if cfg.mode != MODE_CLOCKLESS:
                self.last_stamp = t
            return t
        # the cut grid (header): max(lower end, 1 + the grid point at or below the upper end)
        L = self.local(now)
        if self.grow:
            g = (L - self.sync_at) // self.drift_k + 1
            hi = L + g                       # clock_now() - offset
            lo = L - g + self.dlo - self.dhi
        else:
            hi = lo = L
        b = hi - (self.off_r + hi) % CUT_GRID + 1
        t = self.offset + (b if b > lo else lo)
        if t <= self.last_stamp:
            t = self.last_stamp + 1
        if t <= self.ckpt_t:
            t = self.ckpt_t + 1
        self.last_stamp = t
        return t

    def host_write(self, now, tag, vol, blk, data):
        state = self.store.sb.copy_state
        if state == CS_PENDING:
            # stamped (so the join can tell whether a write landed after the cut) but
            # not journaled: the block is marked and the copier ships its contents
            if not self.ready(now):
                self.node.reply(tag, S_NOT_READY)
                return
            self.stamp(now)
            self._write_marked(tag, vol, blk, data, self._pace_copy(), now)
            return
        if state != CS_DUPLEX:
            if state == CS_SUSPENDED and self.cfg.fence_writes and \
                    self.store.sb.suspend_reason == R_PEER_FAILED_OVER:
                # the secondary failed over: its site owns the data now (a failback
                # would overwrite whatever is written here)
                self.node.reply(tag, S_FENCED)
                return
            self._write_marked(tag, vol, blk, data)
            return
        if not self.ready(now) or self.cfg.mode == MODE_CLOCKLESS and \
                not self.node.mac.is_master() and not self._bar_lease(now):
            self.node.reply(tag, S_NOT_READY)
            return
        t = self.stamp(now)
        lseq = self.next_lseq
        try:
            self.store.j_append_record(lseq, vol, blk, t, data)
        except StoreError as e:
            if e.code == S_JOURNAL_FULL and self.cfg.auto_suspend:
                # the outage outlasted the journal: suspend instead of refusing writes
                self.suspend(now, R_JOURNAL_FULL)
                self._write_marked(tag, vol, blk, data)
            else:
                self.node.reply(tag, e.code)
            return
        self.next_lseq = lseq + 1
        self.store.write_block(vol, blk, data)
        if self.cfg.mode == MODE_SYNC:
            self.sync_wait[lseq] = tag
        elif self.cfg.commit_wait and self.cfg.mode == MODE_CLOCK or self.cfg.mode == MODE_CLOCKLESS:
            d = self._pace()
            w = self.commit_delay(now, t)
            if w:
                self.commit_waits += 1
            self.node.complete_write(tag, delay_us=w if w > d else d, now=now, stamp=t)
        else:
            self.node.complete_write(tag, delay_us=self._pace(), now=now)
        # the peer link is filled from the next tick, so that the reply leaves first
        # and the host does not wait for journal reads and frame building
        self.pump_due = True

    def _write_marked(self, tag, vol, blk, data, delay=0, now=0):
        # sealed in the intent area, marked, then written: a power cut can neither
        # leave it torn (the boot redoes it) nor changed but unmarked (Store.x_write)
        self.store.x_write(vol, blk, data)
        if not delay:
            self.pace_us = 0
        self.node.complete_write(tag, delay_us=delay, now=now)

    def _pace_copy(self):
        """Completion delay during a resync: while the copy window is full (the link is
        the bottleneck), writes that re-mark blocks are slowed in proportion to what is
        still marked, so the copy converges instead of chasing the host for ever."""
        cfg = self.cfg
        w = cfg.copy_window
        if not cfg.pace_max_us or self.store.j_depth() < w:
            self.pace_us = 0
            return 0
        m = self.store.bm_total()
        self.pace_us = cfg.pace_max_us * (m if m < w else w) // w
        if self.pace_us:
            self.paced += 1
        return self.pace_us

    def _pace(self):
        """Completion delay for a journaled write: 0 up to the threshold, then growing
        linearly to pace_max_us at a full journal."""
        cfg = self.cfg
        d = self.store.j_depth()
        thr = cfg.pace_threshold
        if not cfg.pace_max_us or d <= thr:
            self.pace_us = 0
            return 0
        cap = self.store.j_capacity()
        self.pace_us = cfg.pace_max_us * (d - thr) // (cap - thr)
        self.paced += 1
        return self.pace_us

    def async_held(self):
        return False

    def mode_changed(self, now):
        """SET_MODE took effect (cfg.mode is the new mode). To sync: writes journaled from
        now on complete on the peer's ACK and travel with F_SYNC. To clock: writes still
        waiting for an ACK complete at once (they are durable in this journal, which is
        all an asynchronous completion promises; with the secondaries switched first,
        as SPEC section 6 orders, no failover rolls forward over them)."""
        if self.cfg.mode == MODE_SYNC:
            self.sync_lseq = self.next_lseq
        elif self.sync_wait:
            for lseq in sorted(self.sync_wait):
                self.node.complete_write(self.sync_wait.pop(lseq))

    def command(self, now, cmd, arg, arg2):
        event = ev.command_event(cmd, arg)
        if not event:
            # FAILOVER and SET_POLICY are the secondaries' commands (a bad argument is
            # answered first: SPEC section 5's order)
            if cmd == C_SET_POLICY:
                return S_WRONG_ROLE if arg == POLICY_FREEZE or arg == POLICY_CONTINUE else S_BAD_COMMAND
            return S_WRONG_ROLE if cmd == C_FAILOVER else S_BAD_COMMAND
        if event == ev.BAD_ARG:
            return S_BAD_COMMAND
        new = next_state(ROLE_PRIMARY, self.store.sb.copy_state, event)
        if new == ev.BAD_STATE:
            return S_BAD_STATE
        if new == ev.SAME:
            return S_OK
        if self.store.sb.copy_state == CS_SUSPENDED:
            # fenced (peer failed over) keeps its journal for the failback: marks now
            self._journal_to_marks()
        if event == ev.SUSPEND:
            self.suspend(now, R_OPERATOR)
        elif event == ev.STOP_COPY:
            self._journal_to_marks()
            transition(self.store, ROLE_PRIMARY, event)
            self.link = LINK_HELLO
        elif event == ev.START_NOCOPY:
            # NOCOPY: the operator vouches that both volumes are identical
            for v in range(self.store.sb.nvol):
                self.store.bm_clear_all(v)
            transition(self.store, ROLE_PRIMARY, event)
            self.link = LINK_HELLO
            self.hello_at = now
        else:
            if arg == 1 and event == ev.START_COPY:
                for v in range(self.store.sb.nvol):
                    self.store.bm_set_all(v)
            self.start_pending(now, event)
        return S_OK

    # -- pair state changes ---------------------------------------------------------
    def start_pending(self, now, event=ev.START_COPY):
        """Begin a resync (first copy or resume): ship every marked block, then join."""
        transition(self.store, ROLE_PRIMARY, event)
        self.pending_heard = 0
        self.copy_base = self.next_lseq
        self.copy_last = self.next_lseq - 1
        self.acked_lseq = self.next_lseq - 1
        self.copy_vol = self.copy_blk = 0
        self.link = LINK_HELLO
        self.hello_at = now

    def suspend(self, now, reason):
        """Stop shipping: what the journal still holds becomes bitmap marks."""
        self._journal_to_marks()
        transition(self.store, ROLE_PRIMARY, ev.SUSPEND if reason == R_OPERATOR else ev.AUTO_SUSPEND,
                   next_lseq=self.next_lseq, suspend_reason=reason)
        self.suspends += 1
        self.link = LINK_HELLO
        self.sender.reset()
        for lseq in list(self.sync_wait):
            # synchronous mode: the write is durable here and marked; complete it
            self.node.complete_write(self.sync_wait.pop(lseq))
        self._notify_suspend(now)

    def peer_failed_over(self):
        """The secondary says it failed over: stop shipping and fence (SUSPENDED, reason
        PEER_FAILED_OVER). The journal is kept as it is (records the failover did not
        carry; a failback marks them), so that the change bitmap holds exactly the
        blocks written here from now on (fence_writes off) and the host can list them."""
        sb = self.store.sb
        if sb.copy_state == CS_SUSPENDED and sb.suspend_reason == R_PEER_FAILED_OVER:
            return
        if transition(self.store, ROLE_PRIMARY, ev.PEER_FAILED_OVER, next_lseq=self.next_lseq,
                      suspend_reason=R_PEER_FAILED_OVER) == ev.BAD_STATE:
            return
        self.suspends += 1
        self.link = LINK_HELLO
        self.sender.reset()
        if self.sync_wait:
            # synchronous writes the secondary never took: written here after the
            # failover, so marked (and refused when fencing)
            for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
                if kind == J_RECORD and lseq in self.sync_wait:
                    self.store.bm_set(vol, blk)
            for lseq in list(self.sync_wait):
                self.node.complete_write(self.sync_wait.pop(lseq),
                                         S_FENCED if self.cfg.fence_writes else S_OK)

    def _journal_to_marks(self):
        st = self.store
        for jseq, kind, lseq, vol, blk, t in st.j_entries():
            if kind == J_RECORD or kind == J_COPY:
                st.bm_set(vol, blk)
        st.j_trim(st.j_next())
        self.send_jseq = st.j_next()

    def _notify_suspend(self, now):
        codec.pack_suspend(self.tx, HDR_SIZE, self.reason)
        self.node.emit(PORT_PEER, T_SUSPEND, self.cfg.peer, SZ_SUSPEND)
        self.last_tx = now

    def failback(self):
        """Failback: this board's pair is reversed. What its journal holds is marked
        (the host merges the marks into the new primary's bitmap); the role changes. The
        volume holds what the failover discarded: no image of the reversed pair until the
        new primary's copy joins and a group release confirms it (IMG_FIRST)."""
        self._journal_to_marks()
        transition(self.store, ROLE_PRIMARY, ev.BECOME_SECONDARY, role=ROLE_SECONDARY, applied_n=0,
                   applied_t=0, uip_n=0, uip_t=0, next_lseq=1, img_state=IMG_FIRST)
        return S_OK

    def _copy_step(self, now):
        """Journal up to _COPY_PER_TICK marked blocks as copy records."""
        st = self.store
        nvol = st.sb.nvol
        done = 0
        while done < _COPY_PER_TICK and st.j_depth() < self.cfg.copy_window:
            if st.bm_total() == 0:
                break
            blk = st.bm_first(self.copy_vol, self.copy_blk)
            if blk is None:
                self.copy_vol = (self.copy_vol + 1) % nvol
                self.copy_blk = 0
                continue
            buf = self.node.scratch
            st.read_block(self.copy_vol, blk, buf)
            st.j_append_record(self.next_lseq, self.copy_vol, blk, 0, buf, J_COPY)
            self.copy_last = self.next_lseq
            self.next_lseq += 1
            st.bm_clear(self.copy_vol, blk)
            self.copy_blk = blk + 1
            self.copied += 1
            done += 1
        if done:
            self.pump_due = True

    # -- bus -----------------------------------------------------------------------
    def on_beacon(self, now, src, t, new_master, warm, tag, hold):
        """A warm beacon from our master, read at tick now: time t at its end; hold >= 0:
        it echoes our clock report with tag `tag`, read by the master hold us before t."""
        if self.cfg.mode == MODE_CLOCKLESS:
            # the barrier (header): t is what the master confirmed, tag its member mask
            if tag & self.bar_bit and hold < 0:
                self.bar_seen, self.bar_at, self.bar_src = t, now, src
            else:
                self.bar_src = 0
            return
        if not warm or not t:
            # a master still collecting its members' clocks is no time source yet (nor
            # is a secondary, briefly master of this bus while a failback swaps roles)
            return
        # t is the master's sequence time at the end of the beacon, which is when we
        # read it (now) unless we were late to look: lateness only ever makes the
        # sample (t - now) too small: it gives the lower end, whatever the delay
        self._cu_t = None                # the clock may go down: check the floor again
        # Everything below is relative to the offset (sample - offset and the interval):
        # small ints, so that a sequence time past 2**30 costs two big-int operations
        # here (t - offset, and the new offset), not one per step
        L = self.local(now)
        sample = (t - self.offset) - L
        fresh = new_master or self.clock != CLOCK_SYNCED or self.sync_src != src
        dk = self.drift_k
        # the lower end this beacon allows: early only by the master's drift over the air
        # time it added (at most a slot's worth)
        a = sample - (self.node.mac.slot_us // dk + 2)
        hi_ok = self.hi_ok and not fresh
        if fresh:
            lo = hi = a
        else:
            g = (L - self.sync_at) // dk + 1
            lo = self.dlo - g
            hi = self.dhi + g
            if hi_ok and a > hi:
                # the master's time is beyond what we allowed: drift above drift_max_ppm,
                # or the master's clock moved forward (a catch-up). Start afresh.
                self.clock_resets += 1
                lo = a
                hi_ok = False
            elif a > lo:
                lo = a
            if sample + self.cfg.sync_late_us < lo:
                self.late_samples += 1       # read later than sync_late_us (a tuning figure)
        if hold >= 0 and tag == self.rt_tag and src == self.rt_dst:
            # a round trip: our report left at tick `tag` (not before), its last byte
            # ended at least its air time later, the master read it at its time t - hold;
            # since `tag` the master's time minus ours moved by 1 us per dk us at most
            self.rt_tag = -1
            rt = ticks_diff(now, tag)
            if rt >= 0:
                air = self.rep_air
                h = sample + rt - hold - air + (air + rt) // dk + 2
                if not hi_ok or h < hi:
                    hi = h
                hi_ok = True
                self.round_trips += 1
                if hi < lo:
                    # the two ends crossed: the bound had failed (drift above
                    # drift_max_ppm): start afresh from this beacon and this round trip
                    self.clock_resets += 1
                    lo = a
                    hi = h
                    hi_ok = h >= a
        if self.sync_src != src:
            self.sync_new = L
        self.dlo, self.dhi, self.sync_at, self.sync_src, self.hi_ok = lo, hi, L, src, hi_ok
        synced = True
        if self.cfg.commit_wait:
            # the clock is the upper end; without one (no round trip yet) the lower end,
            # and not SYNCED: no stamps that a commit wait could rely on
            best = hi if hi_ok else lo
            self.grow = hi_ok
            synced = hi_ok
        else:
            ring = self.samples
            if fresh:
                for i in range(_SYNC_SAMPLES):
                    ring[i] = sample
            ring[self.syncs % _SYNC_SAMPLES] = sample
            best = ring[0]
            for i in range(1, _SYNC_SAMPLES):
                if ring[i] > best:
                    best = ring[i]
        if not fresh:
            self.skew_last = best
        if best:
            self._move(best)             # offset = the best sample
        self.clock = CLOCK_SYNCED if synced else CLOCK_COLD
        self.syncs += 1

    def echo_pick(self, now):
        """As master, for the beacon being sent: the member whose clock report it echoes
        (0: none): round robin over the members with an unechoed report read within 2
        heartbeats (each member's latest: its tag is the one it waits for); sets echo_tag,
        echo_at."""
        if self.cfg.mode == MODE_CLOCKLESS:
            return 0
        due = self.echo_due
        n = len(due)
        limit = 2 * _HEARTBEAT * self.node.mac.cycle_us
        pick = -1
        i = self.echo_next
        for _ in range(n):
            i = i + 1 if i + 1 < n else 0
            if due[i]:
                d = ticks_diff(now, self.echo_ats[i])
                if d < 0 or d > limit:
                    due[i] = 0
                else:
                    pick = i
                    break
        if pick < 0:
            return 0
        self.echo_next = pick
        due[pick] = 0
        self.echo_tag = self.echo_tags[pick]
        self.echo_at = self.echo_ats[pick]
        return self.cfg.site_nodes[pick]

    def on_clock_report(self, now, src, t, n, tag):
        """A member's (sequence time, last checkpoint, send tick): as master, never let the
        group's time or checkpoint numbering go backwards; echo its tag in a beacon."""
        if not self.node.mac.is_master():
            return
        if src in self.cfg.site_nodes:
            i = self.cfg.site_nodes.index(src)
            self.echo_tags[i] = tag
            self.echo_ats[i] = now
            self.echo_due[i] = 1
        warm = self.warm(now)               # (re)starts the report set on a new mastership
        self.reported[src] = t
        if self.cfg.mode == MODE_CLOCKLESS:
            if src in self.cfg.site_nodes:
                i = self.cfg.site_nodes.index(src)
                self.bar_ts[i] = t - 1           # the report's t is its last T + 1
                self.bar_in[i] = 1
            if n > self.ckpt_n:
                self.ckpt_n, self.ckpt_t = n, t - 1 if t - 1 > self.ckpt_t else self.ckpt_t
                self.ckpt_known = False
            return
        if warm and self.cfg.commit_wait:
            # members report the upper end of their interval, ahead of us by up to their
            # bound: nothing to move for that; but a stamp floor far ahead (a board that
            # stamped on an older group time, e.g. before a reboot) would make its writes
            # wait for ever: catch up with it
            self._catch_up(now, t)
        else:
            ahead = (t - self.offset) - self.local(now)
            if ahead > 0:
                # the member is ahead of our clock: move our clock itself (not just the
                # stamp floor) forward, so beacons and checkpoints carry the group's time
                self._move(ahead)            # offset = t - local
                self.clock_jumps += 1
            if t > self.last_stamp:
                self.last_stamp = t
        if n > self.ckpt_n:
            self.ckpt_n = n
            self.ckpt_known = False

    def on_bus(self, now, mtype, flags, src, payload):
        if mtype == T_CHECKPOINT:
            if src != self.node.mac.master:
                self.node.c["unknown_src"] += 1
                return
            n, t = codec.unpack_checkpoint(payload)
            self.accept_checkpoint(now, n, t)
            self.heard_ckpt = True
            self.node.mac.ready = self.ready(now)
        elif mtype == T_COPY_ACTIVE:
            role, peer, state, mode, inc = codec.unpack_copy_active(payload)
            if role == ROLE_PRIMARY:
                self.active[src] = state
            else:
                self.active.pop(src, None)
                if src in self.cfg.site_nodes:
                    self.bar_in[self.cfg.site_nodes.index(src)] = 0   # no primary: not counted

    def accept_checkpoint(self, now, n, t):
        # A checkpoint is identified by its time T: during a change of master two
        # masters may briefly both cut checkpoints, so numbers alone are not unique.
        # The stream's markers must have increasing T; the number is a label.
        if t <= self.ckpt_t:
            if t < self.ckpt_t:
                self.node.c["stale_ckpt"] += 1
            return False
        if n <= self.ckpt_n:
            n = self.ckpt_n + 1 if n < self.ckpt_n else n
        kind = J_CHECKPOINT
        state = self.store.sb.copy_state
        if state == CS_PENDING:
            self.pending_heard += 1
        if state == CS_PENDING and self.pending_heard > 1 and self.last_stamp <= t \
                and self.store.bm_total() == 0:
            # every marked block is journaled as a copy and no write here is stamped
            # after T: the secondary's volume will be exactly the cut at T. Join there.
            # Not at the first checkpoint heard while pending: that may be a reminder of
            # a cut made before unstamped (simplex, suspended) writes that the copies
            # carry; the next one is cut a full interval after the resync began.
            kind = J_JOIN
        elif state != CS_DUPLEX:
            self.ckpt_n, self.ckpt_t = n, t      # keep numbering, nothing to insert
            self.ckpt_known = True
            if self.last_stamp < t:
                self.last_stamp = t
            return False
        try:
            self.store.j_append_checkpoint(n, t, kind)
        except StoreError:
            # journal full: the next checkpoint covers this one (no cut T holds this pair).
            # Clockless: stamps move past T all the same, and the barrier counts T taken (else
            # the group's replies would wait for this pair, and its own for ever)
            self.node.c["markers_dropped"] += 1
            if self.cfg.mode == MODE_CLOCKLESS:
                self.ckpt_n, self.ckpt_t = n, t
            return False
        self.ckpt_n, self.ckpt_t = n, t
        self.ckpt_known = True
        if self.last_stamp < t:
            self.last_stamp = t
        if kind == J_JOIN:
            transition(self.store, ROLE_PRIMARY, ev.JOIN, ckpt_n=n, ckpt_t=t, next_lseq=self.next_lseq,
                       t_floor=self.last_stamp)
        else:
            self.store.commit(ckpt_n=n, ckpt_t=t, next_lseq=self.next_lseq, t_floor=self.last_stamp)
        self._pump(now)
        tr = self.node.trace
        if tr is not None:
            tr(self.node, "ckpt_accepted", n, t)
        return True

    def _catch_up(self, now, t):
        """As the warm master with commit_wait: move our clock to t if t is more than a cycle
        ahead of it (a stamp floor from an older group time). Replies wait as after a change
        of master, until every member has taken the new time (commit_delay)."""
        if t is self._cu_t and self.offset is self._cu_off:
            # this very floor was checked against this very offset: our clock has only
            # gone up since (on_beacon, which may lower it, forgets the check), so no
            # catch-up now either; an idle master cycle computes no big int for it
            return
        if t > self.clock_now(now, self.cfg.cycle_us):
            L = self.local(now)
            self._move((t - self.offset) - L)       # offset = t - local
            self.clock_jumps += 1
            self.sync_new = L
        else:
            self._cu_t = t
            self._cu_off = self.offset

    def beacon_time(self, now, air_us):
        if self.cfg.mode == MODE_CLOCKLESS:
            return self._bar_confirmed(now)      # and bar_mask, the beacon's tag
        if self.cfg.commit_wait:
            return self.clock_now(now, air_us)    # the clock itself: a stamp floor above it
                                                  # would make members' samples early
        return self.seq_time(now) + air_us

    def master_cycle(self, now):
        """This board is the primary master: checkpoint source and clock source."""
        self.cycles += 1
        node = self.node
        sent = 0
        group_active = self.shipping()
        if not group_active:
            for st in self.active.values():
                if st == CS_DUPLEX or st == CS_PENDING:
                    group_active = True
                    break
        mac = node.mac
        warm = self.warm(now)
        mac.ready = warm
        if warm and self.sync_src != node.me:
            # we are the time source from now on: keep the upper end of the interval we
            # followed (so our time is never behind the old master's) and stop widening it
            # (until now it widened: warming up, we are still on the old master's time)
            L = self.local(now)
            if self.grow:
                self._move((L - self.sync_at) // self.drift_k + 1)
            self.grow = False
            self.sync_src = node.me
            self.sync_new = L
        if warm and self.cfg.commit_wait:
            self._catch_up(now, self.last_stamp)
        if warm:
            self.clock = CLOCK_SYNCED    # we are the group's time now
        t = 0
        if group_active and warm and ticks_diff(now, self.next_ckpt) >= 0:
            if self.cfg.mode == MODE_CLOCKLESS:
                t = self.ckpt_t + 1
            elif self.cfg.commit_wait and self.cfg.mode == MODE_CLOCK:
                # on the grid (header): the grid point at or below our clock, once past the
                # last cut (else next cycle)
                c = self.clock_now(now) - self.offset
                t = self.offset + c - (self.off_r + c) % CUT_GRID
                if t <= self.ckpt_t:
                    t = 0
            else:
                t = self.seq_time(now)
        if t:
            # from the nominal time, so cuts come every interval on average (a cut waits
            # for the next bus cycle); after a long pause start afresh rather than catch up
            self.next_ckpt = ticks_add(self.next_ckpt, self.cfg.ckpt_interval_us)
            if ticks_diff(self.next_ckpt, now) <= 0:
                self.next_ckpt = ticks_add(now, self.cfg.ckpt_interval_us)
            n = self.ckpt_n + 1
            self.accept_checkpoint(now, n, t)
            self.checkpoints_issued += 1
            self.ckpt_resend = _RESEND_CKPT + 1
        if self.cycles % _HEARTBEAT == 2 and self.ckpt_known and self.ckpt_resend <= 0:
            self.ckpt_resend = 1             # remind members (rebooted ones learn it here)
        if self.ckpt_resend > 0 and self.ckpt_n and self.ckpt_known:
            self.ckpt_resend -= 1
            codec.pack_checkpoint(self.tx, HDR_SIZE, self.ckpt_n, self.ckpt_t)
            sent += node.emit(PORT_BUS, T_CHECKPOINT, BROADCAST, SZ_CHECKPOINT)
        if self.cycles % _HEARTBEAT == 0:
            sent += self._copy_active_frame(BROADCAST)
        return sent

    def member_slot(self, now):
        self.cycles += 1
        k = self.cycles % _HEARTBEAT
        if k == 0:
            self._copy_active_frame(BROADCAST)
        if k == 2 or self.cfg.mode != MODE_CLOCKLESS and self.cfg.commit_wait and (k or not self.hi_ok) \
                or self.cfg.mode == MODE_CLOCKLESS and (self.bar_src == 0 or self.bar_seen < self.ckpt_t):
            # clock report: what the next master must not go below; its tag (our tick
            # now, before it is sent) makes a round trip when a beacon echoes it: with
            # the commit wait in every slot but the COPY_ACTIVE one (the slot is ours
            # anyway; one frame per slot), in that one too while we have no upper end;
            # else every heartbeat
            if self.cfg.mode == MODE_CLOCKLESS:
                t = self.ckpt_t + 1              # the barrier (header): our last T + 1
            elif self.clock == CLOCK_SYNCED:
                t = self.seq_time(now) + self.rep_air
            else:
                t = (self.last_stamp if self.last_stamp > self.ckpt_t else self.ckpt_t) + 1
            mac = self.node.mac
            codec.pack_clock_sync(self.tx, HDR_SIZE, t, self.ckpt_n, 0, now)
            self.rt_tag = now
            self.rt_dst = mac.master
            self.node.emit(PORT_BUS, T_CLOCK_SYNC, mac.master, SZ_CLOCK_SYNC)
        self.node.mac.ready = self.ready(now)

    def _copy_active_frame(self, dst):
        sb = self.store.sb
        codec.pack_copy_active(self.tx, HDR_SIZE, ROLE_PRIMARY, self.cfg.peer, sb.copy_state,
                               self.cfg.mode, sb.incarnation)
        return self.node.emit(PORT_BUS, T_COPY_ACTIVE, dst, SZ_COPY_ACTIVE)

    # -- peer link ---------------------------------------------------------------
    def on_peer(self, now, mtype, flags, seq, ack, payload):
        self.last_rx = now
        if mtype == T_SUSPEND:
            # the only notice a secondary sends: it failed over
            if codec.unpack_suspend(payload)[0] == R_PEER_FAILED_OVER:
                self.peer_failed_over()
            return
        if mtype == T_PEER_HELLO:
            role, node, session, expected = codec.unpack_peer_hello(payload)
            if role != ROLE_SECONDARY or not self.shipping():
                return
            if session == self.session:
                if self.link != LINK_UP:
                    self._resume(now, expected)
            elif session == _UNKNOWN_SESSION:
                # the secondary does not know our session (it rebooted): start a new one
                self.link = LINK_HELLO
                self.hello_at = now
            # else: an answer to an older HELLO of ours; the newest one's answer follows
        elif self.link != LINK_UP:
            return
        elif mtype == T_ACK:
            durable = codec.unpack_ack(payload)[0]
            n = self.sender.on_ack(ack, now)
            if n:
                self.store.j_trim(self.sender.acked_tag + 1)
            for _ in range(n):
                self.clean += 1
                if self.clean >= _GROW_FRAMES * self.cfg.window and self.batch_lim < self.cfg.batch_max:
                    self.batch_lim += 1
                    self.clean = 0
            self._acked(durable)
            self._pump(now)
        elif mtype == T_NAK:
            if ack == self.sender.back and ticks_diff(now, self.back_until) < 0:
                # the go-back that resends this frame is still on the wire: the NAK was
                # provoked by frames queued before it
                self.naks_ignored += 1
                return
            # everything before `ack` was taken (the secondary journals before it acks)
            if self.sender.on_ack(ack, now):
                self.store.j_trim(self.sender.acked_tag + 1)
            if ack == self.sender.base and self.sender.in_flight():
                self._go_back(now)
            self._pump(now)
        else:
            self.node.c["unknown_type"] += 1

    def _acked(self, durable):
        if durable > self.acked_lseq:
            self.records_acked += durable - self.acked_lseq
            self.acked_lseq = durable
            self._release_sync(durable)

    def _release_sync(self, durable):
        if self.sync_wait:
            for lseq in sorted(self.sync_wait):
                if lseq > durable:
                    break
                self.node.complete_write(self.sync_wait.pop(lseq))

    def _resume(self, now, expected):
        """HELLO answered: the secondary holds every record below `expected`."""
        # drop what the secondary already holds (records below expected and the
        # markers before the last such record); markers after it are sent again,
        # and the secondary ignores the ones it has
        cut = None
        for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
            if (kind == J_RECORD or kind == J_COPY) and lseq < expected:
                cut = jseq + 1
        if cut is not None:
            self.store.j_trim(cut)
        self._acked(expected - 1)
        self.sender.reset()
        self.back_until = 0
        self.send_jseq = self.store.j_first()
        self.link = LINK_UP
        self.link_resets += 1
        self._pump(now)

    def _pump(self, now):
        """Fill the window from the journal, one frame at a time, as the line drains:
        a frame is built only while less than one full frame's airtime is still queued
        for the wire (`_lead_us`), so the frames waiting in memory for the line stay
        about two whatever the window (sent frames are never kept: a go-back rebuilds
        them from the journal)."""
        if self.link != LINK_UP:
            return
        s = self.sender
        if s.timed_out(now):
            self._go_back(now)
        entries = None
        self._carry = None
        rewound = self.rewound
        self.rewound = False
        self.fill_at = -1
        while s.can_queue():
            q = (self.tx_until - now) & TICKS_MASK     # ticks_diff(tx_until, now), inline
            if q >= _HALF:
                q -= _WRAP
            if q > self._lead_us:
                self.fill_at = ticks_add(self.tx_until, -self._lead_us)   # come back as the line drains
                break
            if self._carry is None:
                # nothing left to frame (the entries would start at send_jseq, or the
                # journal's first entry when that is later): what _build would find
                st = self.store
                n = st.j_next()
                if self.send_jseq >= n or st.j_first() >= n:
                    break
            if entries is None:
                entries = self._entries_from(self.send_jseq)
            f = self._build(entries, now)
            if f is None:
                break
            self.node.emit_raw(PORT_PEER, f)
            self._air(now, len(f))
            self.last_tx = now
        if rewound:
            # a NAK for the base before the rebuilt frames can have arrived is stale
            self.back_until = ticks_add(self.tx_until, 2 * self.cfg.latency_us + 20000)

    def _go_back(self, now):
        """Go-back-N by rebuilding: every unacknowledged frame is dropped and the stream
        is framed again from the oldest unacknowledged journal entry, in smaller batches
        (the secondary drops records, markers and joins it already holds)."""
        self.sender.rewind(now)
        self.sender.retransmits += 1
        self.send_jseq = self.store.j_first()
        self._carry = None
        self.batch_lim = self.batch_lim // 2 if self.batch_lim > 1 else 1
        self.clean = 0
        self.rewound = True

    def _air(self, now, nbytes):
        """Account `nbytes` of stream frames sent on the peer link (10 bits a byte at
        peer_baud): tx_until is when they are all off the wire."""
        start = self.tx_until if ticks_diff(self.tx_until, now) > 0 else now
        self.tx_until = ticks_add(start, nbytes * 10000 // (self.cfg.peer_baud // 1000))

    def _entries_from(self, jseq):
        st = self.store
        if jseq < st.j_first():
            jseq = st.j_first()
        while jseq < st.j_next():
            yield st.j_entry(jseq)
            jseq += 1

    def _build(self, entries, now):
        """Build one frame from the entries iterator in the sender's buffer; returns the
        frame (bytes) or None when there is nothing to send. A WRITE_BATCH holds records of
        one kind with consecutive lseqs (implied by the head's first lseq) and times at most
        _DT_MAX after the first (each carries its offset); a checkpoint marker after stream
        records ends their batch inside the same frame, other markers travel alone."""
        s = self.sender
        buf = s.slot()
        pending = getattr(self, "_carry", None)
        self._carry = None
        count = 0
        off = HDR_SIZE + SZ_BATCH_HEAD
        last = -1
        bkind = 0
        first = 0
        t0 = 0
        while True:
            e = pending if pending is not None else next(entries, None)
            pending = None
            if e is None:
                break
            jseq, kind, lseq, vol, blk, t = e
            if kind == J_CHECKPOINT or kind == J_JOIN:
                if count:
                    if kind == J_CHECKPOINT and bkind == J_RECORD:
                        off = codec.pack_marker(buf, off, lseq, t)     # ends the batch
                        last = jseq
                    else:
                        self._carry = e      # close the batch; the join goes next
                    break
                if kind == J_JOIN:
                    codec.pack_join(buf, HDR_SIZE, lseq, t)
                    f = s.commit(T_JOIN, self.node.me, self.cfg.peer, self.cfg.group, SZ_JOIN, jseq, now)
                else:
                    codec.pack_marker(buf, HDR_SIZE, lseq, t)
                    f = s.commit(T_MARKER, self.node.me, self.cfg.peer, self.cfg.group, SZ_MARKER, jseq,
                                 now)
                self.send_jseq = jseq + 1
                return f
            if count:
                # a batch is all stream records or all copies, numbered without a gap
                dt = t - t0
                if count >= self.batch_lim or kind != bkind or lseq != first + count \
                        or dt < 0 or dt > _DT_MAX:
                    self._carry = e
                    break
            else:
                bkind = kind
                first = lseq
                t0 = t
                dt = 0
            self.store.j_read_data(jseq, self.node.scratch)
            off = codec.pack_record(buf, off, vol, blk, dt, self.node.scratch)
            count += 1
            last = jseq
        if not count:
            return None
        codec.pack_batch_head(buf, HDR_SIZE, count, first, t0)
        # F_SYNC: every record of the batch was written in sync mode (a batch that
        # straddles a switch to sync says no: conservative, the secondary waits longer)
        flags = F_SYNC if self.cfg.mode == MODE_SYNC and bkind == J_RECORD and first >= self.sync_lseq else 0
        if bkind == J_COPY:
            flags |= F_COPY
        f = s.commit(T_WRITE_BATCH, self.node.me, self.cfg.peer, self.cfg.group, off - HDR_SIZE,
                     last, now, flags)
        self.records_moved += count
        self.send_jseq = last + 1
        return f

    # -- timers ----------------------------------------------------------------------
    def tick(self, now):
        # L = local(now), ticks_diff inlined (see _HALF)
        L = (now - self.ep_k) & TICKS_MASK
        if L >= _HALF:
            L -= _WRAP
        L += self.ep_t
        if L >= AGE:
            self._rebase(now, L)
        sb = self.store.sb
        state = sb.copy_state
        if state == CS_SUSPENDED:
            if sb.suspend_reason == R_OPERATOR and ticks_diff(now, self.last_tx) >= self.cfg.keepalive_us:
                self._notify_suspend(now)    # the secondary leaves the group, not resigns
            return
        if state == CS_PENDING:
            self._copy_step(now)
        elif state != CS_DUPLEX:
            return
        if self.link == LINK_UP:
            # the peer is silent since its last frame, or since our frames left the wire
            # (the later of last_rx and tx_until): ticks_diff(now, that)
            u = self.tx_until
            rx = self.last_rx
            if 0 < (rx - u) & TICKS_MASK < _HALF:
                u = rx
            u = (now - u) & TICKS_MASK
            if u >= _HALF:
                u -= _WRAP
            if u >= self.cfg.peer_timeout_us:
                self.link = LINK_HELLO       # peer silent: hello again until it answers
                self.hello_at = now
        if self.link != LINK_UP:
            if ticks_diff(now, self.hello_at) >= 0:
                self.session = (self.session & ~0xFF) | ((self.session + 1) & 0xFF)
                first, resync = self._stream_start()
                codec.pack_peer_hello(self.tx, HDR_SIZE, ROLE_PRIMARY, self.node.me,
                                      self.session, first)
                self.node.emit(PORT_PEER, T_PEER_HELLO, self.cfg.peer, SZ_PEER_HELLO,
                               flags=F_COPY if resync or state == CS_PENDING else 0)
                self.hello_at = ticks_add(now, self.cfg.keepalive_us)
            return
        self._pump(now)
        self.pump_due = False
        d = (now - self.last_tx) & TICKS_MASK        # ticks_diff(now, last_tx)
        if d >= _HALF:
            d -= _WRAP
        if d >= self.cfg.keepalive_us:
            # seq: the next sequence number the stream will use; the secondary, which
            # gets this after every frame sent before it, NAKs what it is missing
            # (not counted in tx_until: the silence of a dead peer must not be renewed)
            self.node.emit(PORT_PEER, T_IDLE, self.cfg.peer, SZ_IDLE, seq=self.sender.next)
            self.last_tx = now

    def _stream_start(self):
        """(first record lseq the stream (re)starts with, whether the journal still holds
        resync entries). With resync entries the HELLO says COPY even after the join, so
        a secondary that missed the start of the resync still learns of it."""
        first = None
        resync = False
        for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
            if first is None and (kind == J_RECORD or kind == J_COPY):
                first = lseq
            if kind == J_COPY or kind == J_JOIN:
                resync = True
        return (first if first is not None else self.next_lseq), resync

    def deadline(self, now):
        # (ticks arithmetic inlined, see _HALF: this runs after every event; keepalive_us
        # and peer_timeout_us are 0..2**28-1, Config checks)
        st = self.store
        sb = st.sb
        state = sb.copy_state
        if state == CS_SUSPENDED:
            return ticks_add(self.last_tx, self.cfg.keepalive_us) if sb.suspend_reason == R_OPERATOR else None
        if state == CS_PENDING:
            if st.bm_total() and st.j_depth() < self.cfg.copy_window:
                return now
        elif state != CS_DUPLEX:
            return None                  # not shipping()
        if self.link != LINK_UP:
            return self.hello_at
        if self.pump_due:
            return now
        cfg = self.cfg
        d = self.last_tx - _WRAP + cfg.keepalive_us          # ticks_add(last_tx, keepalive_us)
        if d < 0:
            d += _WRAP
        f = self.fill_at
        if f >= 0 and (f - d) & TICKS_MASK >= _HALF:
            d = f if 0 < (f - now) & TICKS_MASK < _HALF else now
        r = self.sender.timeout_in(now)
        if r is not None:
            r = ticks_add(now, r)
            if (r - d) & TICKS_MASK >= _HALF:
                d = r
        rx = self.last_rx                    # silent since: the later of last_rx, tx_until
        p = self.tx_until
        if 0 < (rx - p) & TICKS_MASK < _HALF:
            p = rx
        p = p - _WRAP + cfg.peer_timeout_us                  # ticks_add(p, peer_timeout_us)
        if p < 0:
            p += _WRAP
        return p if (p - d) & TICKS_MASK >= _HALF else d
