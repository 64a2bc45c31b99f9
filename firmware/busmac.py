# Site-bus access (sans-I/O): slotted access opened by the master's beacon.
#
# The bus is half-duplex and multi-drop, so two boards talking at once garble each
# other. The site master opens every cycle: it sends its own frames, then the
# beacon (CLOCK_SYNC). Each other member owns one slot after the beacon, in id
# order, and transmits only inside it. Nobody but the master transmits without a
# beacon, so in steady state no collision can happen; during an election, or when
# a board's timing is off, a collision garbles frames, and the upper layer's
# messages are state that is re-sent every cycle until the master's broadcasts
# show it was taken in (acknowledgement by state), so nothing is lost silently.
#
# Election: the master is the lowest id alive. A board that hears no beacon for
# (3 + rank) cycles, rank = number of lower ids it believes alive, takes over. A
# master that hears a beacon from a lower id steps down. Each master adds an
# id-dependent offset to its cycle so two masters drift apart in phase and
# cannot collide forever.
#
# Local times (heard, boot_us, last_beacon, next_cycle, slot_open, became_master) are
# ticks (firmware/ticks.py): compared with ticks_diff, moved with ticks_add.
from firmware.wire import const
from firmware.ticks import TICKS_MASK, ticks_add, ticks_age, ticks_diff

_HALF = const(0x20000000)

ACT_NONE = 0
ACT_MASTER = 1      # master: send the cycle's frames, then the beacon
ACT_SLOT = 2        # member: the slot is open now


class BusMac:
    def __init__(self, me, members, slot_us, cycle_us, member_timeout_us):
        self.me = me
        self.members = members               # sorted tuple of ids on the bus
        self.slot_us = slot_us
        self.cycle_us = cycle_us + (me % 8) * 97
        self.member_timeout_us = member_timeout_us
        self.heard = {}                      # id -> local time last heard
        self.master = 0                      # current master id (0: none known)
        self.boot_us = None
        self.last_beacon = None              # local time our view of the master last beaconed
        self.next_cycle = 0                  # master: when the next cycle starts
        self.slot_open = None                # member: when my slot opens (None: not scheduled)
        self.cycle = 0                       # beacon counter (master) / last seen (member)
        self.elections = 0
        self.became_master = 0                 # local time this board last became master
        self.ready = False                     # set by the role: allowed to preempt
        # The election wait (_election_wait), cached: it depends on time only through the
        # aliveness of the lower ids and the boot window, each a function of now mod 2**30 that
        # changes at known ticks, so it is valid for now in [_w_at, _w_at + _w_for) (mod 2**30)
        # while `master` is _w_master and `heard`/`boot_us` change only through these methods
        # (they update or drop it). _w_for 0: nothing cached. All small ints (no allocation).
        self._w = 0                            # the election wait
        self._w_rank = 0                       # rank (as _rank) it was computed from
        self._w_boot = False                   # in the boot window then
        self._w_master = -1
        self._w_at = 0
        self._w_for = 0
        # caching needs 0 < member_timeout_us < 2**29 (config: below 2**28); else none
        self._w_ok = 0 < member_timeout_us < _HALF
        self._left = 0                         # _rank: how long its count holds

    # -- helpers ---------------------------------------------------------------
    def is_master(self):
        return self.master == self.me

    def alive(self, node, now):
        if node == self.me:
            return True
        t = self.heard.get(node)
        if t is None:
            # never heard: assume alive during the first member timeout after boot
            return ticks_diff(now, self.boot_us) < self.member_timeout_us
        return ticks_diff(now, t) < self.member_timeout_us

    def alive_members(self, now):
        return [m for m in self.members if self.alive(m, now)]

    def _rank(self, now, left=_HALF):
        """Lower ids than mine, other than the master, alive (as alive(), inlined: this runs
        for every election wait); sets _left = the smaller of `left` and the time until one
        of them changes (a kept time t reads alive while d = (now - t) mod 2**30 is below the
        member timeout or at least 2**29; that changes when d reaches the timeout, 2**29, or
        wraps to 0 from above 2**29)."""
        r = 0
        me = self.me
        master = self.master
        heard = self.heard
        boot = self.boot_us
        tmo = self.member_timeout_us
        for m in self.members:
            if m >= me:
                break
            if m != master:
                t = heard.get(m)
                if t is None:
                    t = boot
                d = (now - t) & TICKS_MASK
                if d < tmo:
                    r += 1
                    k = tmo - d
                elif d >= _HALF:
                    r += 1
                    k = TICKS_MASK - d + 1 + tmo
                else:
                    k = _HALF - d
                if k < left:
                    left = k
        self._left = left
        return r

    def _slot_index(self):
        i = 0
        for m in self.members:
            if m == self.master:
                continue
            if m == self.me:
                return i
            i += 1
        return -1

    # -- events ----------------------------------------------------------------
    def boot(self, now):
        self.boot_us = now
        self.last_beacon = now
        self.master = 0
        self.slot_open = None
        self._w_for = 0

    def on_heard(self, now, src):
        """Any valid frame from src on the bus (liveness)."""
        me = self.me
        if src != me and src in self.members:
            heard = self.heard
            if src < me and self._w_for:
                # a lower id counts in the rank (unless it is the master): keep the cached
                # election wait exact. It is alive from now for member_timeout_us
                master = self.master
                if self._w_master != master:
                    self._w_for = 0
                elif src != master:
                    at = (now - self._w_at) & TICKS_MASK
                    if at < self._w_for:
                        # cached and valid now: src was counted as alive or not, and is
                        # alive from now on; the rest stays as it is for the rest of the window
                        t = heard.get(src)
                        if t is None:
                            t = self.boot_us
                        d = (now - t) & TICKS_MASK
                        if not (d < self.member_timeout_us or d >= _HALF):
                            self._set_wait(self._w_rank + 1, self._w_boot)
                        left = self._w_for - at
                        tmo = self.member_timeout_us
                        self._w_at = now
                        self._w_for = left if left < tmo else tmo
                    else:
                        self._w_for = 0
            heard[src] = now

    def on_beacon(self, now, src, cycle):
        """A beacon from src ended at local time now."""
        if src == self.me or src not in self.members:
            return
        if self.master == self.me:
            if src < self.me:
                self.master = src          # a lower id is master: step down
            else:
                return                     # a higher id will step down when it hears ours
        elif self.master and src > self.master and ticks_diff(now, self.last_beacon) < 2 * self.cycle_us:
            return                         # the lower master is still beaconing: keep it
        self.master = src
        self.cycle = cycle
        self.last_beacon = now
        if self.me < src and self.ready and self._rank(now) == 0 \
                and ticks_diff(now, self.boot_us) >= self.member_timeout_us:
            # the rule is "lowest id alive": preempt. Start our first cycle after the
            # members' slots of this one, well before the old master's next beacon;
            # it steps down when it hears us.
            self.master = self.me
            self.elections += 1
            self.became_master = now
            self.slot_open = None
            self.next_cycle = ticks_add(now, (len(self.members) - 1) * self.slot_us + self.slot_us // 2)
            return
        idx = self._slot_index()
        self.slot_open = ticks_add(now, idx * self.slot_us) if idx >= 0 else None

    def poll(self, now):
        """What the bus layer wants to do at local time now (call from tick)."""
        # (ticks_diff(a, b) >= 0 is (a - b) & TICKS_MASK < _HALF, and is then a - b: inlined)
        if self.master == self.me:
            if (now - self.next_cycle) & TICKS_MASK < _HALF:
                self.cycle = (self.cycle + 1) & 0xFFFFFFFF
                self.next_cycle = ticks_add(now, self.cycle_us + self._jitter())
                return ACT_MASTER
            return ACT_NONE
        s = self.slot_open
        if s is not None:
            late = (now - s) & TICKS_MASK
            if late < _HALF:
                self.slot_open = None
                if late <= self.slot_us // 2:
                    return ACT_SLOT
                return ACT_NONE             # missed our slot: wait for the next beacon
        silent = ticks_diff(now, self.last_beacon)
        if silent >= self._election_wait(now):
            # no beacon for too long: the master is gone (or never was)
            if self.master:
                self.heard.pop(self.master, None)
                self._w_for = 0
            self.master = self.me
            self.elections += 1
            self.became_master = now
            self.next_cycle = now
            return self.poll(now)
        return ACT_NONE

    def _election_wait(self, now):
        if self._w_master != self.master or (now - self._w_at) & TICKS_MASK >= self._w_for:
            self._wait_at(now)
        return self._w

    def _set_wait(self, rank, boot):
        w = (3 + rank) * self.cycle_us
        if boot:
            # just booted: let the boards that were running settle first
            b = self.member_timeout_us + rank * self.cycle_us
            if b > w:
                w = b
        self._w = w
        self._w_rank = rank
        self._w_boot = boot

    def _wait_at(self, now):
        # the election wait at now (as _rank and the boot window), and how long it holds: a
        # kept time t reads alive while d = (now - t) mod 2**30 is below the member timeout
        # or at least 2**29 (ahead: ticks_diff < 0); that changes when d reaches the timeout
        # (alive -> not), 2**29 (not -> alive) or wraps to 0 from above 2**29 (stays alive,
        # then the timeout again)
        self._w_master = self.master
        self._w_at = now
        if not self._w_ok:
            # (a timeout these windows do not describe: the rule as it reads, nothing cached)
            self._set_wait(self._rank(now), ticks_diff(now, self.boot_us) < self.member_timeout_us)
            self._w_for = 0
            return
        tmo = self.member_timeout_us
        d = (now - self.boot_us) & TICKS_MASK
        if d < tmo:
            inboot = True
            left = tmo - d
        elif d >= _HALF:
            inboot = True
            left = TICKS_MASK - d + 1 + tmo
        else:
            inboot = False
            left = _HALF - d
        r = self._rank(now, left)
        self._set_wait(r, inboot)
        self._w_for = self._left

    def _jitter(self):
        # deterministic pseudo-random start offset, so that two boards that both
        # believe they are master cannot keep their beacons in phase (colliding)
        x = (self.cycle * 2654435761 + self.me * 40503) & 0xFFFFFF
        return (x >> 4) % self.slot_us

    def deadline(self, now):
        master = self.master
        if master == self.me:
            return self.next_cycle
        if self._w_master != master or (now - self._w_at) & TICKS_MASK >= self._w_for:
            self._wait_at(now)
        w = self._w
        lb = self.last_beacon
        # ticks_add(lb, w) and ticks_diff(s, d) < 0, inlined (None: before boot, as ticks_add)
        if w >= 0 and lb is not None:
            if w >= _HALF:
                w = _HALF - 1
            d = lb - TICKS_MASK - 1 + w
            if d < 0:
                d = d + TICKS_MASK + 1
        else:
            d = ticks_add(lb, w)
        s = self.slot_open
        if s is not None and (s - d) & TICKS_MASK >= _HALF:
            d = s
        return d

    def age(self, now):
        """Keep the local times that may stay unrefreshed for long within AGE of now
        (firmware/ticks.py): every comparison with a timeout below AGE is unchanged."""
        self.boot_us = ticks_age(now, self.boot_us)
        self.last_beacon = ticks_age(now, self.last_beacon)
        self.became_master = ticks_age(now, self.became_master)
        if self.master != self.me:
            self.next_cycle = ticks_age(now, self.next_cycle)
        heard = self.heard
        for m in heard:
            heard[m] = ticks_age(now, heard[m])
        self._w_for = 0
