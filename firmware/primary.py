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
# Clockless mode stamps every write with (last checkpoint T + 1): arrival of the
# checkpoint at this board is the boundary.
from wire import *
import codec
from peerlink import Sender, Receiver
from store import StoreError, J_RECORD, J_CHECKPOINT
from node import PORT_BUS, PORT_PEER

_RESEND_CKPT = const(2)      # cycles a new checkpoint is broadcast again
_HEARTBEAT = const(4)        # COPY_ACTIVE every this many cycles or slots
_UNKNOWN_SESSION = const(0xFFFFFFFF)   # a secondary's HELLO meaning "start a new session"
_SYNC_SAMPLES = const(4)     # beacons over which the least-delayed clock sample is kept


class Primary:
    def __init__(self, node):
        self.node = node
        self.cfg = node.cfg
        self.store = node.store
        self.tx = node.tx
        self.sender = Sender(self.cfg.window, self.cfg.rto_us)
        self.ckpt_n = 0
        self.ckpt_t = 0
        self.offset = 0              # sequence time = local clock + offset
        self.synced = False
        self.last_stamp = 0
        self.skew_last = 0
        self.skew_max = 0
        self.syncs = 0
        self.samples = [0] * _SYNC_SAMPLES     # recent (master time - local time) samples
        self.next_lseq = 1
        self.send_jseq = 0           # next journal entry to put on the link
        self.session = 0
        self.linked = False          # HELLO exchange done
        self.hello_at = 0
        self.last_rx = 0             # last frame from the peer
        self.last_tx = 0
        self.next_ckpt = 0
        self.ckpt_resend = 0
        self.cycles = 0
        self.sync_wait = {}          # sync mode: lseq -> host tag
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

    # -- state -----------------------------------------------------------------------
    def copy_active(self):
        return self.store.sb.copy_state == CS_DUPLEX

    def ready(self, now):
        """May this board stamp writes? It must share the group's time and know the
        current checkpoint, or a write could be ordered before writes that completed
        earlier elsewhere, or below a checkpoint that was already cut."""
        mac = self.node.mac
        if mac.is_master():
            return self.warm(now)
        if not self.heard_ckpt:
            return False
        return self.synced or self.cfg.mode == MODE_CLOCKLESS

    def warm(self, now):
        """As master: may our clock be the group's time source? Only once we carry the
        group's time: either we were synchronised to a warm master since boot, or
        every member alive has reported its clock to us (and we moved forward to it)."""
        mac = self.node.mac
        if mac.became_master != self.master_since:
            self.master_since = mac.became_master
            self.reported = {}
        if now - mac.became_master < self._warmup():
            return False
        if self.synced or self.cfg.mode == MODE_CLOCKLESS and self.heard_ckpt:
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
        t = now + self.offset
        if t <= self.last_stamp:
            t = self.last_stamp + 1
        if t <= self.ckpt_t:
            t = self.ckpt_t + 1
        return t

    def lag_us(self, now):
        st = self.store
        if self.cfg.mode == MODE_CLOCKLESS or st.j_depth() == 0:
            return 0
        d = self.seq_time(now) - st.j_entry(st.j_first())[5]
        return d if d > 0 else 0

    def stats(self, now):
        return {
            "role": "primary", "ckpt_n": self.ckpt_n, "synced": self.synced,
            "skew_last_us": self.skew_last, "skew_max_us": self.skew_max, "syncs": self.syncs,
            "records_sent": self.records_moved, "records_acked": self.records_acked,
            "retransmits": self.sender.retransmits, "linked": self.linked,
            "checkpoints_issued": self.checkpoints_issued, "next_lseq": self.next_lseq,
            "link_resets": self.link_resets, "clock_jumps": self.clock_jumps,
        }

    # -- boot ----------------------------------------------------------------------
    def boot(self, now):
        sb = self.store.sb
        self.ckpt_n, self.ckpt_t = sb.ckpt_n, sb.ckpt_t
        self.next_lseq = sb.next_lseq if sb.next_lseq else 1
        self.last_stamp = sb.t_floor
        buf = self.node.scratch
        for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
            if kind == J_RECORD:
                # redo: the volume write may not have happened before the cut
                self.store.j_read_data(jseq, buf)
                self.store.write_block(vol, blk, buf)
                if lseq >= self.next_lseq:
                    self.next_lseq = lseq + 1
                if t > self.last_stamp:
                    self.last_stamp = t
            elif lseq > self.ckpt_n:
                self.ckpt_n, self.ckpt_t = lseq, t
        self.send_jseq = self.store.j_first()
        self.synced = False
        self.heard_ckpt = False
        self.ckpt_known = False
        self.session = (sb.incarnation & 0xFFFFFF) << 8
        self.linked = False
        self.hello_at = now
        self.last_rx = now
        self.next_ckpt = now              # the first checkpoint as soon as we may cut one
        if self.cfg.autostart and sb.copy_state == CS_SIMPLEX:
            self.store.commit(copy_state=CS_DUPLEX)

    # -- host --------------------------------------------------------------------
    def host_read_status(self):
        return S_OK

    def stamp(self, now):
        t = self.seq_time(now)
        if self.cfg.mode != MODE_CLOCKLESS:
            self.last_stamp = t
        return t

    def host_write(self, now, tag, vol, blk, data):
        if not self.copy_active():
            self.store.write_block(vol, blk, data)
            self.node.complete_write(tag)
            return
        if not self.ready(now):
            self.node.reply(tag, S_NOT_READY)
            return
        t = self.stamp(now)
        lseq = self.next_lseq
        try:
            self.store.j_append_record(lseq, vol, blk, t, data)
        except StoreError as e:
            self.node.reply(tag, e.code)
            return
        self.next_lseq = lseq + 1
        self.store.write_block(vol, blk, data)
        if self.cfg.mode == MODE_SYNC:
            self.sync_wait[lseq] = tag
        else:
            self.node.complete_write(tag)
        # the peer link is filled from the next tick, so that the reply leaves first
        # and the host does not wait for journal reads and frame building
        self.pump_due = True

    def command(self, now, cmd, arg, arg2):
        if cmd == C_START_COPY:
            if self.store.sb.copy_state != CS_DUPLEX:
                self.store.commit(copy_state=CS_DUPLEX)
                self.linked = False
                self.hello_at = now
            return S_OK
        if cmd == C_STOP_COPY:
            self.store.commit(copy_state=CS_SIMPLEX)
            self.linked = False
            return S_OK
        return S_BAD_COMMAND

    # -- bus -----------------------------------------------------------------------
    def on_beacon(self, now, src, t, new_master, warm):
        if self.cfg.mode == MODE_CLOCKLESS or not warm:
            # a master still collecting its members' clocks is no time source yet
            return
        # t is the master's sequence time at the end of the beacon, which is when we
        # read it (now) unless we were late to look: lateness only ever makes the
        # sample (t - now) too small, so keep the largest of the last few samples
        sample = t - now
        ring = self.samples
        if new_master or not self.synced:
            for i in range(_SYNC_SAMPLES):
                ring[i] = sample
        ring[self.syncs % _SYNC_SAMPLES] = sample
        best = ring[0]
        for i in range(1, _SYNC_SAMPLES):
            if ring[i] > best:
                best = ring[i]
        corr = best - self.offset
        self.offset = best
        if self.synced and not new_master:
            self.skew_last = corr
            a = corr if corr >= 0 else -corr
            if a > self.skew_max:
                self.skew_max = a
        self.synced = True
        self.syncs += 1

    def on_clock_report(self, now, src, t, n):
        """A member's (sequence time, last checkpoint): as master, never let the
        group's time or checkpoint numbering go backwards."""
        if not self.node.mac.is_master():
            return
        self.warm(now)                      # (re)starts the report set on a new mastership
        self.reported[src] = t
        if self.cfg.mode == MODE_CLOCKLESS:
            if n > self.ckpt_n:
                self.ckpt_n, self.ckpt_t = n, t - 1 if t - 1 > self.ckpt_t else self.ckpt_t
                self.ckpt_known = False
            return
        if t - now > self.offset:
            # the member is ahead of our clock: move our clock itself (not just the
            # stamp floor) forward, so beacons and checkpoints carry the group's time
            self.offset = t - now
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
            self.active[src] = state

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
        if not self.copy_active():
            self.ckpt_n, self.ckpt_t = n, t      # keep numbering, nothing to insert
            self.ckpt_known = True
            return False
        try:
            self.store.j_append_checkpoint(n, t)
        except StoreError:
            # journal full: the next checkpoint covers this one
            self.node.c["markers_dropped"] += 1
            return False
        self.ckpt_n, self.ckpt_t = n, t
        self.ckpt_known = True
        if self.last_stamp < t:
            self.last_stamp = t
        self.store.commit(ckpt_n=n, ckpt_t=t, next_lseq=self.next_lseq, t_floor=self.last_stamp)
        self._pump(now)
        return True

    def beacon_time(self, now, air_us):
        return self.seq_time(now) + air_us if self.cfg.mode != MODE_CLOCKLESS else 0

    def master_cycle(self, now):
        """This board is the primary master: checkpoint source and clock source."""
        self.cycles += 1
        node = self.node
        sent = 0
        group_active = self.copy_active()
        if not group_active:
            for st in self.active.values():
                if st == CS_DUPLEX:
                    group_active = True
                    break
        mac = node.mac
        warm = self.warm(now)
        mac.ready = warm
        if warm:
            self.synced = True           # we are the group's time now
        if group_active and warm and now >= self.next_ckpt:
            # from the nominal time, so cuts come every interval on average (a cut waits
            # for the next bus cycle); after a long pause start afresh rather than catch up
            self.next_ckpt += self.cfg.ckpt_interval_us
            if self.next_ckpt <= now:
                self.next_ckpt = now + self.cfg.ckpt_interval_us
            n = self.ckpt_n + 1
            t = self.ckpt_t + 1 if self.cfg.mode == MODE_CLOCKLESS else self.seq_time(now)
            self.accept_checkpoint(now, n, t)
            self.checkpoints_issued += 1
            self.ckpt_resend = _RESEND_CKPT + 1
        if self.cycles % _HEARTBEAT == 2 and self.ckpt_known and self.ckpt_resend <= 0:
            self.ckpt_resend = 1             # remind members (rebooted ones learn it here)
        if self.ckpt_resend > 0 and self.ckpt_n and self.ckpt_known:
            self.ckpt_resend -= 1
            codec.pack_checkpoint(self.tx, HDR_SIZE, self.ckpt_n, self.ckpt_t)
            sent += node.emit(PORT_BUS, T_CHECKPOINT, BROADCAST, 12)
        if self.cycles % _HEARTBEAT == 0:
            sent += self._copy_active_frame(BROADCAST)
        return sent

    def member_slot(self, now):
        self.cycles += 1
        if self.cycles % _HEARTBEAT == 0:
            self._copy_active_frame(BROADCAST)
        elif self.cycles % _HEARTBEAT == 2:
            # clock report: what the next master must not go below
            if self.synced or self.cfg.mode == MODE_CLOCKLESS:
                air = (OVERHEAD + 12) * 10000000 // self.cfg.bus_baud
                t = self.seq_time(now) + air
            else:
                t = (self.last_stamp if self.last_stamp > self.ckpt_t else self.ckpt_t) + 1
            codec.pack_clock_sync(self.tx, HDR_SIZE, t, self.ckpt_n)
            self.node.emit(PORT_BUS, T_CLOCK_SYNC, self.node.mac.master, 12)
        self.node.mac.ready = self.ready(now)

    def _copy_active_frame(self, dst):
        sb = self.store.sb
        codec.pack_copy_active(self.tx, HDR_SIZE, ROLE_PRIMARY, self.cfg.peer, sb.copy_state,
                               self.cfg.mode, sb.incarnation)
        return self.node.emit(PORT_BUS, T_COPY_ACTIVE, dst, 8)

    # -- peer link ---------------------------------------------------------------
    def on_peer(self, now, mtype, flags, seq, ack, payload):
        self.last_rx = now
        if mtype == T_PEER_HELLO:
            role, node, session, expected = codec.unpack_peer_hello(payload)
            if role != ROLE_SECONDARY or not self.copy_active():
                return
            if session == self.session:
                if not self.linked:
                    self._resume(now, expected)
            elif session == _UNKNOWN_SESSION:
                # the secondary does not know our session (it rebooted): start a new one
                self.linked = False
                self.hello_at = now
            # else: an answer to an older HELLO of ours; the newest one's answer follows
        elif not self.linked:
            return
        elif mtype == T_ACK:
            durable = codec.unpack_ack(payload)[0]
            for tag in self.sender.on_ack(ack, now):
                self.store.j_trim(tag + 1)
            if durable > self.acked_lseq:
                self.records_acked += durable - self.acked_lseq
                self.acked_lseq = durable
                self._release_sync(durable)
            self._pump(now)
        elif mtype == T_NAK:
            self.sender.on_nak(ack, now)
            self._pump(now)
        else:
            self.node.c["unknown_type"] += 1

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
            if kind == J_RECORD and lseq < expected:
                cut = jseq + 1
        if cut is not None:
            self.store.j_trim(cut)
        if expected - 1 > self.acked_lseq:
            self.records_acked += expected - 1 - self.acked_lseq
            self.acked_lseq = expected - 1
            self._release_sync(self.acked_lseq)
        self.sender.reset()
        self.send_jseq = self.store.j_first()
        self.linked = True
        self.link_resets += 1
        self._pump(now)

    def _pump(self, now):
        """Fill the window from the journal and transmit what is due."""
        if not self.linked:
            return
        s = self.sender
        entries = None
        self._carry = None
        while s.can_queue():
            if entries is None:
                entries = self._entries_from(self.send_jseq)
            built = self._build(entries)
            if not built:
                break
        for f in s.due(now):
            self.node.emit_raw(PORT_PEER, f)
            self.last_tx = now

    def _entries_from(self, jseq):
        st = self.store
        if jseq < st.j_first():
            jseq = st.j_first()
        while jseq < st.j_next():
            yield st.j_entry(jseq)
            jseq += 1

    def _build(self, entries):
        """Build one frame from the entries iterator into the sender's next slot."""
        s = self.sender
        buf = s.slot()
        pending = getattr(self, "_carry", None)
        self._carry = None
        count = 0
        off = HDR_SIZE + 1
        last = -1
        while True:
            e = pending if pending is not None else next(entries, None)
            pending = None
            if e is None:
                break
            jseq, kind, lseq, vol, blk, t = e
            if kind == J_CHECKPOINT:
                if count:
                    self._carry = e          # close the batch; the marker goes next
                    break
                codec.pack_checkpoint(buf, HDR_SIZE, lseq, t)
                s.commit(T_CHECKPOINT, self.node.me, self.cfg.peer, self.cfg.group, 12, jseq)
                self.send_jseq = jseq + 1
                return True
            if count == self.cfg.batch_max:
                self._carry = e
                break
            self.store.j_read_data(jseq, self.node.scratch)
            off = codec.pack_record(buf, off, vol, blk, t, lseq, self.node.scratch)
            count += 1
            last = jseq
        if not count:
            return False
        codec.pack_batch_head(buf, HDR_SIZE, count)
        flags = F_SYNC if self.cfg.mode == MODE_SYNC else 0
        s.commit(T_WRITE_BATCH, self.node.me, self.cfg.peer, self.cfg.group, off - HDR_SIZE, last,
                 flags)
        self.records_moved += count
        self.send_jseq = last + 1
        return True

    # -- timers ----------------------------------------------------------------------
    def tick(self, now):
        if not self.copy_active():
            return
        if self.linked and now - self.last_rx >= self.cfg.peer_timeout_us:
            self.linked = False          # peer silent: hello again until it answers
            self.hello_at = now
        if not self.linked:
            if now >= self.hello_at:
                self.session = (self.session & ~0xFF) | ((self.session + 1) & 0xFF)
                codec.pack_peer_hello(self.tx, HDR_SIZE, ROLE_PRIMARY, self.node.me,
                                      self.session, self.next_lseq)
                self.node.emit(PORT_PEER, T_PEER_HELLO, self.cfg.peer, 10)
                self.hello_at = now + self.cfg.keepalive_us
            return
        self._pump(now)
        self.pump_due = False
        if now - self.last_tx >= self.cfg.keepalive_us:
            self.node.emit(PORT_PEER, T_IDLE, self.cfg.peer, 0)
            self.last_tx = now

    def deadline(self, now):
        if not self.copy_active():
            return None
        if not self.linked:
            return self.hello_at
        if self.pump_due:
            return now
        d = self.last_tx + self.cfg.keepalive_us
        r = self.sender.deadline()
        if r is not None and r < d:
            d = r
        p = self.last_rx + self.cfg.peer_timeout_us
        return p if p < d else d
