# Secondary role: journal what the peer sends, apply it only at released checkpoints.
#
# Records and checkpoint markers from the primary are appended durably to the
# journal before they are acknowledged; nothing is applied on arrival. Every
# board on the secondary bus hears every frame, so each keeps a table of the
# copy-active secondaries (checkpoint held, checkpoint applied, in-progress,
# resigned). The board that is bus master runs the rendezvous over that table:
#   - when every copy-active secondary holds checkpoint m > last release, it
#     broadcasts RELEASE(m, T) (again every cycle until the round completes);
#   - a secondary receiving RELEASE records UIP(m, T) durably, applies every
#     journaled record with applied_T < time <= T in journal order (idempotent
#     redo), records m as applied, and reports UPDATE_COMPLETE(m, T);
#   - when every one has applied m, the master broadcasts RESET_UIP(m).
# Host reads are refused with busy-UIP from release to reset. A board that
# boots with UIP(n) not yet applied finishes the apply before anything else.
# The table is soft state rebuilt from what members keep sending, so a new
# master after an election picks up a round where the old one left it.
#
# Resync (the primary's pair is copy PENDING): the primary's HELLO says so; this
# board applies what its journal still holds, then writes each copy record to its
# volume on arrival (the volume is not consistent meanwhile, and the board is not
# in the group: releases neither wait for it nor reach it). The join marker ends
# the resync: the volume is then the cut at the marker's T, which becomes this
# board's applied checkpoint, and the board counts in the group again.
# A SUSPENDED pair (operator) is out of the group too; its volume stays at its
# last applied checkpoint.
#
# The group's image cut (anchor, docs/ARCHITECTURE.md "Preserved image"): while a
# member that has an image is out of the group (suspended, resyncing, or joined but not
# yet confirmed), the master announces an anchor A (RELEASE with F_ANCHOR) = its newest
# release; every secondary that can reach A applies up to A, then keeps before-images
# of every block it overwrites (store "preserved image") and reports it (UPDATE_COMPLETE
# with F_ANCHOR); the master releases nothing newer until every counted member keeps A.
# A failover to A rolls a board back to it. A resync onto a board with an image takes
# no copy before that board keeps the anchor. After the join marker a board stays
# PENDING (IMG_JOINED, counted in the group) until it applies a release at or after
# its join cut; only then does it show DUPLEX. The master drops the anchor (RESET_UIP
# with F_ANCHOR) once no member needs it.
from firmware.wire import (const, BLOCK_SIZE, BROADCAST, CS_DUPLEX, CS_FAILED_OVER, CS_PENDING,
                           CS_RESIGNED, CS_SIMPLEX, CS_SUSPENDED, C_FAILOVER, C_SET_POLICY,
                           F_ANCHOR, F_COPY, F_SYNC, F_UIP, HDR_SIZE,
                           MODE_CLOCKLESS, MODE_SYNC, POLICY_CONTINUE, POLICY_FREEZE, PORT_BUS,
                           PORT_PEER, ROLE_PRIMARY, ROLE_SECONDARY, R_OPERATOR, R_PEER_FAILED_OVER, R_PEER_LOST,
                           ST_COPY_ACTIVE, ST_FROZEN, ST_UIP, S_BAD_COMMAND, S_BAD_STATE, S_BUSY_UIP,
                           S_OK, S_WRONG_ROLE, S_READ_ONLY, T_ACK, T_COPY_ACTIVE, T_HELD, T_IDLE, T_JOIN, T_MARKER,
                           T_NAK, T_PEER_HELLO, T_RELEASE, T_RESET_UIP, T_RESIGN, T_SUSPEND,
                           T_UPDATE_COMPLETE, T_WRITE_BATCH)
from firmware import codec
from firmware.codec import (SZ_ACK, SZ_COPY_ACTIVE, SZ_HELD, SZ_MARKER, SZ_NAK, SZ_PEER_HELLO,
                            SZ_RELEASE, SZ_RESET_UIP, SZ_RESIGN, SZ_SUSPEND, SZ_UPDATE_COMPLETE)
from firmware.peerlink import Receiver
from firmware.store import (StoreError, J_RECORD, J_CHECKPOINT, SB_SAVED, IMG_ON, IMG_RESTORING,
                            IMG_FIRST, IMG_JOINED)
from firmware.ticks import ticks_add, ticks_age, ticks_diff
from firmware import pairstate as ev
from firmware.pairstate import (transition, LINK_HELLO, LINK_UP, RV_COLLECTING,
                                 RV_RELEASED)

_HEARTBEAT = const(4)
_JOURNAL_RESERVE = const(2)     # slots kept for checkpoint markers
_RESET_RESEND = const(3)
_UNKNOWN_SESSION = const(0xFFFFFFFF)   # HELLO answer meaning "I do not know your session"

# member table entry fields
M_HELD_N = const(0)
M_HELD_T = const(1)
M_APPLIED_N = const(2)
M_APPLIED_T = const(3)
M_UIP = const(4)
M_RESIGNED = const(5)
M_ACTIVE = const(6)
M_STATE = const(7)
M_ANCHOR_T = const(8)        # the image cut the member reports it keeps (0: none)
M_KEEP = const(9)            # its pair needs the group's anchor (COPY_ACTIVE with F_ANCHOR)
M_SEEN = const(10)           # master: heard since it took over: state (1), applied cut (2), anchor (4);
                             # its first applied cut since then taken into our release (8)
_SEEN_STATE = const(1)
_SEEN_APPLIED = const(2)
_SEEN_ANCHOR = const(4)
_SEEN_RAISED = const(8)


class Secondary:
    bar_mask = 0                 # a beacon's tag when it echoes no report (primary: clockless barrier)

    def __init__(self, node):
        self.node = node
        self.cfg = node.cfg
        self.store = node.store
        self.tx = node.tx
        self.rx = Receiver()
        self.policy = self.cfg.policy   # the effective one: node took a saved SET_POLICY
        self.ckpt_n = 0              # highest checkpoint held (marker journaled)
        self.ckpt_t = 0
        self.next_lseq = 1
        self.async_top = 0           # highest record lseq taken without F_SYNC (or before boot)
        self.session = 0
        self.link = LINK_HELLO
        self.last_rx = 0
        self.released_seen = 0
        self.members = {}            # id -> [held_n, held_t, applied_n, applied_t, uip, resigned, active]
        self.was_master = False
        self.rel_n = 0
        self.rel_t = 0
        self.reset_n = 0
        self.reset_t = 0
        self.reset_resend = 0
        self.frozen = False
        self.slots = 0
        self.cycles = 0
        self.skew_last = 0
        self.skew_max = 0
        self.records_moved = 0
        self.records_acked = 0
        self.applies = 0
        self.records_applied = 0
        self.releases = 0
        self.resets = 0
        self.journal_full = 0
        self.copy_in = 0             # copy records written in the current resync
        self.joins = 0
        self.hello_refused = 0
        self.announce_due = False
        self.pbuf = bytearray(BLOCK_SIZE)   # before-image scratch (node.scratch holds the data)
        self.anchor_n = 0            # master: the group's anchor (0: none)
        self.anchor_t = 0
        self.anchor_due = False      # report the anchor kept at the next member slot
        self.anchor_wait = False     # master: a member needs an anchor not set yet (_known)
        self.told_t = 0              # the group's anchor as the master last announced it (0: none)
        self.drop_resend = 0
        self.img_full = 0            # applies or copies held back: the preserved-image area is full
        self.anchor_missed = 0       # an anchor announced that this board cannot reach
        self.anchors = 0             # anchors taken
        self.rollbacks = 0

    # -- state -------------------------------------------------------------------
    def state(self):
        return self.store.sb.copy_state

    def in_group(self):
        sb = self.store.sb
        s = sb.copy_state
        return s == CS_DUPLEX or s == CS_RESIGNED or (s == CS_PENDING and sb.img_state & IMG_JOINED != 0)

    def joining(self):
        """Joined (the volume is the cut at applied_t, counted in the group) but no group
        release at or after the join applied yet: still shown PENDING."""
        sb = self.store.sb
        return sb.copy_state == CS_PENDING and sb.img_state & IMG_JOINED != 0

    def shown_state(self):
        """The state announced on the bus: a joining board counts as DUPLEX there."""
        return CS_DUPLEX if self.joining() else self.store.sb.copy_state

    def keep(self):
        """Does this pair need the group's anchor: out of the group (suspended, resyncing,
        joining) with an image to keep? A first copy has none."""
        sb = self.store.sb
        s = sb.copy_state
        if sb.img_state & IMG_FIRST or not self.keeps_images():
            return False
        if s == CS_SUSPENDED:
            return sb.applied_t != 0 or sb.img_state & IMG_ON != 0
        return s == CS_PENDING

    def keeps_images(self):
        """Does this board keep its image through a resync? Not with keep_image off, nor on a
        store formatted without a preserved-image area (img_slots 0): a resync then
        overwrites the image, as before the area existed."""
        return bool(self.cfg.keep_image) and self.store.sb.img_slots > 0

    def waiting_anchor(self):
        """A resync onto this board's image waits for the group's anchor (copies refused)."""
        sb = self.store.sb
        return (sb.copy_state == CS_PENDING and not sb.img_state & (IMG_ON | IMG_FIRST | IMG_JOINED))

    def image_flags(self):
        """STATUS pace_us on a secondary: img_state bits, preserved blocks << 8."""
        return (self.store.sb.img_state & 0xFF) | (self.store.img_used() << 8)

    def status_flags(self):
        sb = self.store.sb
        f = 0
        if sb.uip_n:
            f |= ST_UIP
        if self.in_group() and sb.copy_state != CS_RESIGNED:
            f |= ST_COPY_ACTIVE
        if self.frozen:
            f |= ST_FROZEN
        return f

    def released_n(self):
        return self.released_seen

    def seq_time(self, now):
        # a secondary has no sequence clock: STATUS seq_time_us shows its image cut (anchor T)
        sb = self.store.sb
        return sb.img_t if sb.img_state & IMG_ON else 0

    def lag_us(self, now):
        d = self.ckpt_t - self.store.sb.applied_t
        return d if d > 0 and self.cfg.mode != MODE_CLOCKLESS else 0

    def stats(self, now):
        sb = self.store.sb
        return {
            "role": "secondary", "held_n": self.ckpt_n, "applied_n": sb.applied_n,
            "uip_n": sb.uip_n, "released_seen": self.released_seen,
            "records_received": self.records_moved, "records_applied": self.records_applied,
            "applies": self.applies, "releases": self.releases, "resets": self.resets,
            "frozen": self.frozen, "linked": self.link == LINK_UP, "journal_full": self.journal_full,
            "next_lseq": self.next_lseq, "copy_in": self.copy_in, "joins": self.joins,
            "hello_refused": self.hello_refused, "dirty_blocks": self.store.bm_total(),
            "img_state": sb.img_state, "img_n": sb.img_n, "img_t": sb.img_t,
            "img_blocks": self.store.img_used(), "img_free": self.store.img_free(),
            "img_full": self.img_full, "anchor_t": self.anchor_t, "anchors": self.anchors,
            "anchor_missed": self.anchor_missed, "rollbacks": self.rollbacks,
        }

    def ops_status(self):
        # STATUS on a secondary: copy_done = copies written in this resync, copy_total = the
        # image cut's n, pace_us = image_flags()
        sb = self.store.sb
        return self.copy_in, sb.img_n if sb.img_state & IMG_ON else 0, self.image_flags(), 0

    # -- boot ----------------------------------------------------------------------
    def boot(self, now):
        sb = self.store.sb
        self.ckpt_n, self.ckpt_t = sb.applied_n, sb.applied_t
        self.next_lseq = sb.next_lseq if sb.next_lseq else 1
        for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
            if kind == J_RECORD:
                if lseq >= self.next_lseq:
                    self.next_lseq = lseq + 1
            elif t > self.ckpt_t:
                self.ckpt_n, self.ckpt_t = lseq, t
        self.records_acked = self.next_lseq - 1
        # how the records journaled before this boot were written is not journaled: in
        # sync mode they count as synchronous (this board took SET_MODE SYNC only with
        # no asynchronous record held, and every secondary of a sync group must decide
        # its failover alike), in clock mode as asynchronous (a switch to sync waits
        # until they are applied)
        self.async_top = 0 if self.cfg.mode == MODE_SYNC else self.next_lseq - 1
        self.released_seen = sb.uip_n if sb.uip_n else sb.applied_n
        if sb.img_state & IMG_RESTORING:
            # a failover's roll back to the image cut was cut short: redo it, finish it
            self._rollback(sb.img_n, sb.img_t)
        elif sb.uip_n and sb.applied_t < sb.uip_t:
            # must-complete: a release was recorded but its apply did not finish
            self._apply(sb.uip_n, sb.uip_t)
        self.rx.reset()
        self.link = LINK_HELLO
        self.last_rx = now

    # -- host ------------------------------------------------------------------------
    def host_read_status(self):
        if self.store.sb.copy_state == CS_FAILED_OVER:
            return S_OK
        if self.store.sb.uip_n:
            return S_BUSY_UIP
        return S_OK

    def host_write(self, now, tag, vol, blk, data):
        if self.store.sb.copy_state != CS_FAILED_OVER:
            self.node.reply(tag, S_READ_ONLY)
            return
        self.store.x_write(vol, blk, data)    # sealed, marked (changed since failover), written
        self.node.complete_write(tag)

    def command(self, now, cmd, arg, arg2):
        if cmd == C_FAILOVER:
            return self.failover(arg, arg2)
        if cmd == C_SET_POLICY:
            if arg not in (POLICY_FREEZE, POLICY_CONTINUE):
                return S_BAD_COMMAND
            if arg != self.policy or not self.store.sb.policy & SB_SAVED:
                # saved (SB_SAVED): it wins over the config file at boot
                self.store.commit(policy=arg | SB_SAVED)
            self.policy = arg
            self.cfg.policy = arg            # STATUS shows the effective policy
            return S_OK
        event = ev.command_event(cmd, arg)
        if not event or event == ev.BAD_ARG:
            return S_BAD_COMMAND
        # pair operations are the primary's (the secondary follows them)
        return S_WRONG_ROLE

    def async_held(self):
        """Does the journal hold a record that was not written synchronously (it arrived
        without F_SYNC, or, in clock mode, before this boot)? Never rolled forward."""
        top = self.async_top
        if top:
            for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
                if kind == J_RECORD and lseq <= top:
                    return True
        return False

    def mode_changed(self, now):
        pass                                 # the mode is read at failover

    def failover(self, n, t):
        """Recover to checkpoint (n, T) and open the volumes to the host.

        n == 0: the newest checkpoint this board knows to be released. T == 0: the
        time of checkpoint n as journaled here. T == the image cut this board keeps
        (the group's anchor): roll back to it."""
        st = self.store
        sb = st.sb
        state = sb.copy_state
        if state == CS_FAILED_OVER:
            return S_OK                      # failed over already
        if t and sb.img_state & IMG_ON and t == sb.img_t:
            return self._rollback(n, t)
        if sb.img_state & IMG_FIRST or (state == CS_PENDING and not sb.img_state & IMG_JOINED):
            # resync running: the volume is no image; or a first copy (a blank secondary, an
            # old primary after a failback) whose join no group release confirmed yet, in
            # whatever state its copy is (not reached yet, running, suspended): no image yet
            return S_BAD_STATE
        if n == 0:
            n, t = (sb.uip_n, sb.uip_t) if sb.uip_n and sb.uip_t > sb.applied_t \
                else (sb.applied_n, sb.applied_t)
        if not t:
            t = self._marker_time(n)
            if t is None:
                return S_BAD_STATE
        roll = self.cfg.mode == MODE_SYNC and not self.async_held()
        if roll:
            # every write the host saw complete is journaled here, and a write issued
            # after another completed can only be here if that one is: roll forward
            # through the whole journal. Not over a record written asynchronously (the
            # primary left sync mode before this board did): its completion did not
            # wait for this journal, so a write that depends on it may be missing
            # elsewhere; then the recovery stops at the cut, as in clock mode.
            last = self._last_record_time()
            if last > t:
                t = last
        if t > sb.applied_t:
            if t > self.ckpt_t and not roll:
                return S_BAD_STATE           # this board never received that cut
        elif t < sb.applied_t:
            return S_BAD_STATE               # already past the requested point
        if state == CS_PENDING:
            # joined, not yet confirmed: the volume is the cut at applied_t; leave the resync
            transition(st, ROLE_SECONDARY, ev.PEER_SUSPEND)
        if t > sb.applied_t:
            self._apply(n, t, True)
        self._finish_failover()
        return S_OK

    def _finish_failover(self, **fields):
        # what the journal still holds is beyond the recovered point: those blocks were
        # written at the primary and are not in this image, so a failback must copy them
        st = self.store
        for jseq, kind, lseq, vol, blk, rt in st.j_entries():
            if kind == J_RECORD:
                st.bm_set(vol, blk)
        st.j_trim(st.j_next())
        if st.sb.img_state:
            st.img_drop(**fields)            # the image cut is no longer needed
            fields = {}
        transition(st, ROLE_SECONDARY, ev.FAILOVER, uip_n=0, uip_t=0, **fields)
        self.link = LINK_HELLO

    def _rollback(self, n, t):
        """Failover to the image cut this board keeps: write every preserved block back
        (each marked: the peer's differs), then FAILED_OVER at (n, t). A power cut on the
        way leaves IMG_RESTORING set, and boot() comes here again."""
        st = self.store
        if st.sb.copy_state == CS_PENDING:
            transition(st, ROLE_SECONDARY, ev.PEER_SUSPEND)    # the resync is over
        st.img_restore(self.pbuf)
        self.rollbacks += 1
        self._finish_failover(applied_n=n, applied_t=t)
        self.ckpt_n, self.ckpt_t = n, t
        self.released_seen = n
        return S_OK

    def failback(self):
        """Failback: this failed-over board becomes its pair's primary; its bitmap (every
        block changed since failover, plus the merged marks of the old primary) is what
        the resync copies."""
        sb = self.store.sb
        if transition(self.store, ROLE_SECONDARY, ev.BECOME_PRIMARY, role=ROLE_PRIMARY,
                      ckpt_n=sb.applied_n, ckpt_t=sb.applied_t, t_floor=sb.applied_t,
                      next_lseq=self.next_lseq) != CS_SIMPLEX:
            return S_BAD_STATE
        return S_OK

    def _last_record_time(self):
        last = 0
        for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
            if kind == J_RECORD and t > last:
                last = t
        return last

    def _marker_time(self, n):
        if n == self.store.sb.uip_n:
            return self.store.sb.uip_t
        for jseq, kind, lseq, vol, blk, t in self.store.j_entries():
            if kind == J_CHECKPOINT and lseq == n:
                return t
        return None

    # -- apply -------------------------------------------------------------------------
    def _apply(self, n, t, force=False):
        """Apply the journaled records up to T (keeping before-images when an image cut is
        kept). False: the preserved-image area could not hold their before-images (nothing
        applied; the round waits)."""
        st = self.store
        sb = st.sb
        lo = sb.applied_t
        if st.img_active() and not force and not (sb.uip_n and sb.uip_t == t):
            need = 0
            for jseq, kind, lseq, vol, blk, rt in st.j_entries():
                if kind == J_RECORD and lo < rt <= t and not st.img_preserved(vol, blk):
                    need += 1
            if need > st.img_free():
                self.img_full += 1
                return False
        st.commit(uip_n=n, uip_t=t)
        buf = self.node.scratch
        pbuf = self.pbuf
        cut = None
        count = 0
        for jseq, kind, lseq, vol, blk, rt in st.j_entries():
            if kind == J_RECORD:
                if rt > t:
                    if cut is None:
                        cut = jseq
                    continue
                if rt > lo:
                    st.j_read_data(jseq, buf)
                    if not st.img_write(vol, blk, buf, pbuf):
                        st.write_block(vol, blk, buf)   # (force: a failover going forward)
                    count += 1
            elif rt > t and cut is None:
                cut = jseq
        self.store.commit(applied_n=n, applied_t=t, next_lseq=self.next_lseq)
        tr = self.node.trace
        if tr is not None:
            tr(self.node, "applied", n, t)
        if cut is None:
            cut = self.store.j_next()
        self.store.j_trim(cut)
        self.applies += 1
        self.records_applied += count
        if t > self.ckpt_t:
            self.ckpt_n, self.ckpt_t = n, t
        self.released_seen = n
        return True

    def on_release(self, now, n, t):
        if not self.in_group():
            return
        sb = self.store.sb
        if t < sb.applied_t:
            return                       # applied already (a release sent again)
        if t > sb.applied_t:
            self.released_seen = n
            if t > self.ckpt_t:
                self.node.c["release_not_held"] += 1
                if self.joining() and self.ckpt_t > sb.applied_t:
                    # joined below the group: catch up with the cuts held (frees the journal)
                    self._apply(self.ckpt_n, self.ckpt_t)
                return
            if not self._apply(n, t):
                return
        if self.joining() and not self.announce_due and (
                not self.told_t or (sb.img_state & IMG_ON and sb.img_t == self.told_t)):
            # the group released a cut at or after the join and this board applied it:
            # the join is confirmed, the pair shows DUPLEX
            st = self.store
            transition(st, ROLE_SECONDARY, ev.JOIN,
                       img_state=st.sb.img_state & ~(IMG_JOINED | IMG_FIRST))
            self.announce_due = True

    def on_reset(self, n):
        sb = self.store.sb
        if sb.uip_n and n == sb.uip_n and sb.applied_t >= sb.uip_t:
            self.store.commit(uip_n=0, uip_t=0)
            self.resets += 1

    # -- peer link ------------------------------------------------------------------------
    def on_peer(self, now, mtype, flags, seq, ack, payload):
        state = self.store.sb.copy_state
        if state == CS_FAILED_OVER:
            # the stream ended at failover: whatever the primary sends (a HELLO after its
            # reboot, records, a keepalive) is answered "I failed over", so that it fences
            # itself instead of taking writes this board will never see
            if mtype != T_ACK and mtype != T_NAK:
                codec.pack_suspend(self.tx, HDR_SIZE, R_PEER_FAILED_OVER)
                self.node.emit(PORT_PEER, T_SUSPEND, self.cfg.peer, SZ_SUSPEND)
            return
        self.last_rx = now
        if mtype == T_PEER_HELLO:
            role, node, session, first = codec.unpack_peer_hello(payload)
            if role != ROLE_PRIMARY:
                self.node.c["unknown_type"] += 1
                return
            if flags & F_COPY:
                if state == CS_DUPLEX and first <= self.next_lseq:
                    # a resync this board joined already (its join confirmed): the primary
                    # lost the session (a reboot, a silent link) before the join marker was
                    # acknowledged, and its HELLO says COPY while its journal holds it. Nothing
                    # it resends is new here; a new resync's copies start at or after our
                    # next lseq, and the first of them starts the resync (_take)
                    pass
                elif state != CS_PENDING or first > self.next_lseq:
                    # a new resync (or one that restarted: the primary dropped the copies
                    # of an interrupted one, which never reached us, and marked them again)
                    self._enter_pending(first)
            elif transition(self.store, ROLE_SECONDARY, ev.HELLO) == ev.BAD_STATE:
                # SUSPENDED: the primary streams as if we held its volume, but this board
                # left the group: only a resync (a HELLO with COPY) brings it back.
                # (SIMPLEX, RESIGNED -> DUPLEX: back after an outage the journal covered;
                # or a pair established without a copy, both sides provisioned blank
                # together: autostart, NOCOPY)
                self.hello_refused += 1
                return
            self.session = session
            self.rx.reset()
            self.link = LINK_UP
            self._hello(session)
            return
        if mtype == T_SUSPEND:
            reason = codec.unpack_suspend(payload)[0]
            # operator: leave the group with the last applied image; otherwise (an
            # auto-suspend) resign, as if the primary were lost -- except a join not yet
            # confirmed: it leaves the group with the image of its join cut (no image yet
            # for a first copy), so the group does not freeze at what it holds
            sb = self.store.sb
            if reason == R_OPERATOR or self.joining():
                transition(self.store, ROLE_SECONDARY, ev.PEER_SUSPEND,
                           img_state=sb.img_state & ~IMG_JOINED)
            else:
                transition(self.store, ROLE_SECONDARY, ev.PEER_AUTO_SUSPEND)
            self.link = LINK_HELLO
            return
        if self.link != LINK_UP:
            # data from a session we do not know (we rebooted): ask for a new HELLO
            if mtype == T_WRITE_BATCH or mtype == T_MARKER or mtype == T_JOIN or mtype == T_IDLE:
                self._hello(_UNKNOWN_SESSION)
            return
        if mtype == T_WRITE_BATCH or mtype == T_MARKER or mtype == T_JOIN:
            k = self.rx.classify(seq)
            if k == Receiver.ACCEPT:
                if self._take(mtype, flags, payload):
                    self.rx.advance()
                    self._ack()
            elif k == Receiver.DUPLICATE:
                self._ack()
            elif self.rx.should_nak(now, self.cfg.rto_us // 4):
                self.node.emit(PORT_PEER, T_NAK, self.cfg.peer, SZ_NAK, ack=self.rx.expected)
        elif mtype == T_IDLE:
            # the keepalive carries the primary's next stream seq and follows every frame
            # sent before it: one we lack was lost, NAK it now (not after a whole RTO)
            if self.rx.classify(seq) == Receiver.GAP and self.rx.should_nak(now, self.cfg.rto_us // 4):
                self.node.emit(PORT_PEER, T_NAK, self.cfg.peer, SZ_NAK, ack=self.rx.expected)
            else:
                self._ack()
        else:
            self.node.c["unknown_type"] += 1

    def _hello(self, session):
        codec.pack_peer_hello(self.tx, HDR_SIZE, ROLE_SECONDARY, self.node.me, session, self.next_lseq)
        self.node.emit(PORT_PEER, T_PEER_HELLO, self.cfg.peer, SZ_PEER_HELLO)

    def _ack(self):
        codec.pack_ack(self.tx, HDR_SIZE, self.next_lseq - 1)
        self.node.emit(PORT_PEER, T_ACK, self.cfg.peer, SZ_ACK, ack=self.rx.expected)

    def _enter_pending(self, first):
        """A resync starts: take copies from lseq `first` on, on top of everything the journal
        holds (written to the volume first: records the primary already dropped are in
        no copy). The image this board keeps through the resync: the group's anchor if it
        keeps one already; else, if it has an image (a cut applied in the group), the
        journal stays as it is and copies wait until the master announces the anchor
        (waiting_anchor, _anchor_told); else it is a first copy (IMG_FIRST: no image yet)."""
        st = self.store
        sb = st.sb
        prev = sb.copy_state
        img = sb.img_state & (IMG_ON | IMG_RESTORING)
        if not img and (prev == CS_SIMPLEX or not sb.applied_t or sb.img_state & IMG_FIRST
                        or not self.keeps_images()):
            img |= IMG_FIRST
        for v in range(sb.nvol):
            st.bm_clear_all(v)               # the resync overwrites whatever changed here
        self.next_lseq = first
        transition(st, ROLE_SECONDARY, ev.RESYNC, next_lseq=first, uip_n=0, uip_t=0, img_state=img)
        self.records_acked = first - 1
        self.copy_in = 0
        self.announce_due = True
        if not self.waiting_anchor():
            self._drain()

    def _drain(self):
        """In a resync: write every journaled record to the volume (keeping before-images when
        an image cut is kept) and empty the journal. False: the preserved-image area is full
        (what is left stays journaled, and copies wait)."""
        st = self.store
        buf = self.node.scratch
        for jseq, kind, lseq, vol, blk, t in st.j_entries():
            if kind == J_RECORD:
                st.j_read_data(jseq, buf)
                if not st.img_write(vol, blk, buf, self.pbuf):
                    self.img_full += 1
                    st.j_trim(jseq)
                    return False
        st.j_trim(st.j_next())
        return True

    def _resync_ready(self):
        """May copies (and the join marker) be taken now? Not while the image to keep is not
        kept yet, nor while the journal from before the resync is not on the volume."""
        if self.waiting_anchor():
            return False
        if self.store.j_depth() and not self.store.sb.img_state & IMG_JOINED:
            return self._drain()
        return True

    def _join(self, n, t):
        """The join marker: every copy is written, the volume is the cut at T. The board is
        counted in the group from now on, but shows PENDING until it applies a release at
        or after T (on_release): the join is confirmed by the group."""
        st = self.store
        sb = st.sb
        if sb.copy_state != CS_PENDING or sb.img_state & IMG_JOINED:
            return                           # joined already (a marker sent again)
        st.commit(applied_n=n, applied_t=t, uip_n=0, uip_t=0, next_lseq=self.next_lseq,
                  img_state=sb.img_state | IMG_JOINED)
        self.ckpt_n, self.ckpt_t = n, t
        self.released_seen = n
        self.joins += 1
        self.announce_due = True             # tell the rendezvous master at the next slot
        tr = self.node.trace
        if tr is not None:
            tr(self.node, "joined", n, t)

    def _take(self, mtype, flags, payload):
        """Journal one in-order frame. False: not all of it could be taken (retry later)."""
        st = self.store
        if mtype == T_JOIN:
            if st.sb.copy_state == CS_PENDING and not self._resync_ready():
                return False
            n, t = codec.unpack_join(payload)
            self._join(n, t)
            return True
        if mtype == T_MARKER:
            n, t = codec.unpack_marker(payload)
            return self._take_marker(n, t)
        count, first, t0, off, moff = codec.unpack_batch_head(payload)
        copies = flags & F_COPY
        if copies and st.sb.copy_state != CS_PENDING:
            # copies mean the primary is resyncing (its HELLO said so, we missed it) --
            # unless we hold them already (a go-back reframes what we took: no new resync)
            if first < self.next_lseq:
                self.node.c["dup_records"] += 1
                return True
            self._enter_pending(first)
        if not self._take_records(payload, count, first, t0, off, copies, flags & F_SYNC):
            return False
        if moff:
            # the checkpoint marker that ends the batch, after every record before it
            n, t = codec.unpack_marker(payload, moff, moff + SZ_MARKER)
            return self._take_marker(n, t)
        return True

    def _take_marker(self, n, t):
        if t <= self.ckpt_t:
            return True                          # a marker we already hold (or an older cut)
        try:
            self.store.j_append_checkpoint(n, t)
        except StoreError:
            self.journal_full += 1
            return False
        self.ckpt_n, self.ckpt_t = n, t
        tr = self.node.trace
        if tr is not None:
            tr(self.node, "ckpt_held", n, t)
        return True

    def _take_records(self, payload, count, first, t0, off, copies, sync):
        """Take a WRITE_BATCH's records in stream order (record i: lseq first + i, time t0 +
        its dt): stream records are journaled, copies (resync) are written straight to the
        volume. False: not all of them could be taken (a hole in the stream, or a full
        journal): retry later."""
        st = self.store
        nvol = st.sb.nvol
        nblk = st.sb.vol_blocks
        ok = True
        took = False
        lseq = first - 1
        for _ in range(count):
            vol, blk, dt, data, off = codec.unpack_record(payload, off)
            lseq += 1
            if lseq < self.next_lseq:
                self.node.c["dup_records"] += 1
                continue
            if lseq > self.next_lseq:
                ok = False                       # a hole in the stream: wait for a resend
                break
            t = t0 + dt
            if vol >= nvol or blk >= nblk:
                self.node.c["records_rejected"] += 1
            elif copies:
                if not self._resync_ready():
                    ok = False                   # the image is not kept yet: the resync waits
                    break
                if not st.img_write(vol, blk, data, self.pbuf):
                    self.img_full += 1           # the preserved-image area is full: it waits
                    ok = False
                    break
                self.copy_in += 1
                self.records_moved += 1
            elif st.j_free() <= _JOURNAL_RESERVE:
                self.journal_full += 1
                ok = False
                break
            else:
                st.j_append_record(lseq, vol, blk, t, data)
                self.records_moved += 1
            self.next_lseq = lseq + 1
            took = True
        if copies and took:
            # durable before the ack: the primary drops acknowledged copies
            st.commit(next_lseq=self.next_lseq)
        elif took and not sync:
            self.async_top = self.next_lseq - 1
        self.records_acked = self.next_lseq - 1
        return ok

    # -- bus -------------------------------------------------------------------------------
    def on_beacon(self, now, src, t, new_master, warm, tag, hold):
        self.node.mac.ready = True

    def on_clock_report(self, now, src, t, n, tag):
        pass

    def echo_pick(self, now):
        return 0

    def _member(self, src):
        m = self.members.get(src)
        if m is None:
            m = [0, 0, 0, 0, False, False, True, CS_DUPLEX, 0, False, 0]
            self.members[src] = m
        return m

    def on_bus(self, now, mtype, flags, src, payload):
        # (the most frequent types first)
        if mtype == T_UPDATE_COMPLETE:
            n, t = codec.unpack_update_complete(payload)
            m = self._member(src)
            if flags & F_ANCHOR:
                m[M_ANCHOR_T] = t                # the image cut it keeps (0: none)
                m[M_SEEN] |= _SEEN_ANCHOR
                return
            m[M_SEEN] |= _SEEN_APPLIED
            if t >= m[M_APPLIED_T]:
                m[M_APPLIED_N], m[M_APPLIED_T] = n, t
            if t > m[M_HELD_T]:
                m[M_HELD_N], m[M_HELD_T] = n, t
            m[M_UIP] = bool(flags & F_UIP)
            if not m[M_ACTIVE]:
                m[M_ACTIVE] = True           # only group members report applies (a join)
                m[M_STATE] = CS_DUPLEX
            if m[M_UIP] and t <= self.reset_t and self.node.mac.is_master():
                self.reset_resend = 1
        elif mtype == T_HELD:
            n, t = codec.unpack_held(payload)
            m = self._member(src)
            if t > m[M_HELD_T]:
                m[M_HELD_N], m[M_HELD_T] = n, t
            m[M_ACTIVE] = True
        elif mtype == T_COPY_ACTIVE:
            role, peer, state, mode, inc = codec.unpack_copy_active(payload)
            if role != ROLE_SECONDARY:
                self.members.pop(src, None)      # a primary (a failback swapping roles)
                return
            m = self._member(src)
            m[M_ACTIVE] = state == CS_DUPLEX or state == CS_RESIGNED
            m[M_RESIGNED] = state == CS_RESIGNED
            m[M_STATE] = state
            m[M_KEEP] = flags & F_ANCHOR != 0
            m[M_SEEN] |= _SEEN_STATE
        elif mtype == T_RESET_UIP:
            if src == self.node.mac.master:
                if flags & F_ANCHOR:
                    self.told_t = 0
                    self._anchor_dropped()
                else:
                    self.on_reset(codec.unpack_reset_uip(payload)[0])
        elif mtype == T_RELEASE:
            if src == self.node.mac.master:
                n, t = codec.unpack_release(payload)
                if flags & F_ANCHOR:
                    self.told_t = t
                    self._anchor_told(n, t)
                else:
                    self.on_release(now, n, t)
        elif mtype == T_RESIGN:
            m = self._member(src)
            m[M_RESIGNED] = True
            m[M_SEEN] |= _SEEN_STATE
        else:
            self.node.c["unknown_type"] += 1

    def beacon_time(self, now, air_us):
        return 0

    def _self_entry(self):
        sb = self.store.sb
        m = self._member(self.node.me)
        m[M_HELD_N], m[M_HELD_T] = self.ckpt_n, self.ckpt_t
        m[M_APPLIED_N], m[M_APPLIED_T] = sb.applied_n, sb.applied_t
        m[M_UIP] = sb.uip_n != 0
        m[M_RESIGNED] = sb.copy_state == CS_RESIGNED
        m[M_ACTIVE] = self.in_group()
        m[M_STATE] = self.shown_state()
        m[M_ANCHOR_T] = sb.img_t if sb.img_state & IMG_ON else (
            self.anchor_t if sb.img_state & IMG_FIRST or not self.keeps_images() else 0)
        m[M_KEEP] = self.keep()

    def _take_over(self):
        """Just became master: pick up the round from the table (soft state)."""
        sb = self.store.sb
        n, t = sb.applied_n, sb.applied_t
        if sb.uip_n and sb.uip_t > t:
            n, t = sb.uip_n, sb.uip_t
        for m in self.members.values():
            if m[M_ACTIVE] and m[M_APPLIED_T] > t:
                n, t = m[M_APPLIED_N], m[M_APPLIED_T]
        busy = sb.uip_n != 0
        for m in self.members.values():
            if m[M_ACTIVE] and m[M_UIP]:
                busy = True
        self.rel_n, self.rel_t = n, t
        for m in self.members.values():
            m[M_SEEN] = 0                    # (what the table holds may be stale: see _known)
        # the group's anchor: the one this board keeps, else one a member reports keeping
        self.anchor_n, self.anchor_t = (sb.img_n, sb.img_t) if sb.img_state & IMG_ON else (0, 0)
        if not self.anchor_t:
            for m in self.members.values():
                if m[M_ANCHOR_T] and m[M_ANCHOR_T] <= t:
                    self.anchor_n, self.anchor_t = 0, m[M_ANCHOR_T]
        # a round in progress (somebody still in UIP) is completed before a new one
        self.reset_n, self.reset_t = (n, t - 1 if t else 0) if busy else (n, t)

    def round(self):
        """The rendezvous round as this board (master) sees it: RV_RELEASED while the
        last RELEASE is not yet followed by its RESET_UIP, else RV_COLLECTING."""
        return RV_RELEASED if self.rel_t > self.reset_t else RV_COLLECTING

    def master_cycle(self, now):
        self.cycles += 1
        node = self.node
        mac = node.mac
        self._self_entry()
        if not self.was_master:
            self.was_master = True
            self._take_over()
        sb = self.store.sb
        if self.round() == RV_COLLECTING and not sb.uip_n:
            # another member reports a cut applied above our newest release: an earlier
            # master released it before we heard (a table refilled after a reboot or an
            # election); an anchor at our release would be one it could never keep. One
            # still in its update (the old master itself, rebooted before its RESET_UIP)
            # reopens that round: it is released again until every member applied it.
            # Only a member's first applied cut since we took over says so, and never a
            # joined pair's (announced DUPLEX with F_ANCHOR: its cut is its join's, which no
            # release decided; a resync joins ahead of a lagging group, and taken as a
            # release its cut would hold every release back until all streams held it)
            for mid, m in self.members.items():
                seen = m[M_SEEN]
                if mid == node.me or not m[M_ACTIVE] or seen & (_SEEN_APPLIED | _SEEN_RAISED) \
                        != _SEEN_APPLIED:
                    continue
                m[M_SEEN] = seen | _SEEN_RAISED
                if m[M_KEEP] and m[M_STATE] == CS_DUPLEX:
                    continue
                if m[M_APPLIED_T] > self.rel_t:
                    self.rel_n, self.rel_t = m[M_APPLIED_N], m[M_APPLIED_T]
                    self.reset_n, self.reset_t = self.rel_n, self.rel_t - 1 if m[M_UIP] else self.rel_t
        if self.in_group() and sb.applied_t < self.rel_t <= self.ckpt_t and (
                self.round() == RV_RELEASED or self.joining()):
            # our own pair joined (after a resync) below the newest release: the release
            # was decided while we were outside the group, so apply it now
            self.on_release(now, self.rel_n, self.rel_t)
            self._self_entry()
        elif self.joining() and sb.applied_t < self.ckpt_t < self.rel_t:
            # joined far below it: catch up with the cuts held meanwhile
            self._apply(self.ckpt_n, self.ckpt_t)
            self._self_entry()
        self.announce_due = False            # (the master's own entry is its announcement)
        sent = self._anchor_cycle(now)
        grouped = self.in_group()
        if not grouped:
            # the master's own pair may be suspended or in resync: it still runs the
            # rendezvous for the others
            for m in self.members.values():
                if m[M_ACTIVE]:
                    grouped = True
                    break
        if grouped:
            cont = self.policy == POLICY_CONTINUE
            table = []
            frozen = False
            blocked = False
            for mid in self.cfg.site_nodes:
                m = self.members.get(mid)
                if m is None or not m[M_ACTIVE]:
                    # freeze: the consistency group is the configured set, so a board not
                    # (yet) copy-active holds releases back -- otherwise its volume would
                    # lag the others'. continue: skip it once it is known or gone.
                    # A pair in resync or suspended by the operator is out of the group:
                    # it is not waited for (it counts again once it joins).
                    # Nor is a pair not copying at all (SIMPLEX: its copy never started, or
                    # was stopped): a pair that joins shows DUPLEX only once the group
                    # released a cut at or after its join, so the group must release.
                    if m is not None and (m[M_STATE] == CS_PENDING or m[M_STATE] == CS_SUSPENDED
                                          or m[M_STATE] == CS_SIMPLEX):
                        continue
                    if not cont or (m is None and mac.alive(mid, now)):
                        blocked = True
            for mid, m in self.members.items():
                if not m[M_ACTIVE]:
                    continue
                if cont and not mac.alive(mid, now):
                    continue
                table.append(m)
                if m[M_RESIGNED]:
                    frozen = True
            self.frozen = frozen and not cont
            if self.round() == RV_RELEASED:
                done = True
                for m in table:
                    if m[M_APPLIED_T] < self.rel_t and not (cont and m[M_RESIGNED] and m[M_HELD_T] < self.rel_t):
                        done = False
                if done:
                    self.reset_n, self.reset_t = self.rel_n, self.rel_t
                    self.reset_resend = _RESET_RESEND
                    tr = node.trace
                    if tr is not None:
                        tr(node, "reset", self.reset_n, self.reset_t)
                    self.on_reset(self.reset_n)
            if self.anchor_wait:
                blocked = True
            if self.anchor_t:
                for m in table:
                    if m[M_ANCHOR_T] != self.anchor_t:
                        blocked = True           # nothing newer before every member keeps A
            if self.round() == RV_COLLECTING and not blocked:
                # the newest cut every stream is complete up to: min over the held marker times.
                # freeze: a resigned member counts with what it holds (it still obeys RELEASE
                # for those), so the group advances to the newest cut the lost pair also has,
                # then stays there (frozen) instead of stopping at whatever was released last
                low = None
                for m in table:
                    if cont and m[M_RESIGNED]:
                        continue
                    if low is None or m[M_HELD_T] < low[M_HELD_T]:
                        low = m
                if low is not None and low[M_HELD_T] > self.rel_t:
                    self.rel_n, self.rel_t = low[M_HELD_N], low[M_HELD_T]
                    self.releases += 1
                    tr = node.trace
                    if tr is not None:
                        tr(node, "release", self.rel_n, self.rel_t)
                    self.on_release(now, self.rel_n, self.rel_t)
                    self._self_entry()
            if self.round() == RV_RELEASED:
                codec.pack_release(self.tx, HDR_SIZE, self.rel_n, self.rel_t)
                sent += node.emit(PORT_BUS, T_RELEASE, BROADCAST, SZ_RELEASE)
            if self.reset_resend > 0:
                self.reset_resend -= 1
                codec.pack_reset_uip(self.tx, HDR_SIZE, self.reset_n)
                sent += node.emit(PORT_BUS, T_RESET_UIP, BROADCAST, SZ_RESET_UIP)
        if self.cycles % _HEARTBEAT == 0:
            sent += self._announce(BROADCAST)
        return sent

    # -- the group's anchor (image cut) --------------------------------------------------
    def _known(self, now):
        """Master: has every configured member (under continue: every one alive; under freeze:
        every one alive or last seen in the group) told us, since we took over, its state and,
        if it is in the group, its applied cut? Before that the
        table may be stale (refilled after a reboot, an election): a member that was silent
        (down, or the old master itself) may have applied a release this board never heard,
        and an anchor below that cut is one it can never keep (the group would release
        nothing again); nor is it known yet who needs the anchor. So neither a new anchor
        nor a drop before it. Under freeze a silent member holds the releases back anyway."""
        me = self.node.me
        mac = self.node.mac
        cont = self.policy == POLICY_CONTINUE
        for mid in self.cfg.site_nodes:
            if mid == me:
                continue
            m = self.members.get(mid)
            if m is not None and m[M_SEEN] & _SEEN_STATE and (
                    m[M_SEEN] & _SEEN_APPLIED or not m[M_ACTIVE]):
                continue
            if (cont or m is not None and not m[M_ACTIVE]) and not mac.alive(mid, now):
                continue                     # gone; (freeze) it was out of the group: it
                                             # applied no release, it held none back
            return False
        return True

    def _anchor_cycle(self, now):
        """Master: set the group's anchor when a member needs it, announce it, drop it when
        none does (see the module comment). -> bytes sent."""
        need = False
        settled = True                       # every configured member known, none out of the group
        for mid in self.cfg.site_nodes:
            m = self.members.get(mid)
            if m is None:
                settled = False
            elif m[M_KEEP]:
                need = True
                break
            elif not m[M_ACTIVE] and m[M_STATE] != CS_SIMPLEX:
                settled = False
        node = self.node
        sent = 0
        known = self._known(now)
        self.anchor_wait = False
        if not known:
            # a new anchor or a drop waits for a known table; meanwhile nothing is released
            # (a release without the member that needs the anchor is one it may not hold)
            self.anchor_wait = need and not self.anchor_t and self.rel_t != 0
        elif need and not self.anchor_t and self.rel_t:
            # the newest release: every member counted at it holds it, none applied more --
            # unless a member keeps the image of an anchor an earlier master set (and this one
            # took over without knowing it): that is still the group's anchor (the releases
            # after it did not count the pair out of the group)
            self.anchor_n, self.anchor_t = self.rel_n, self.rel_t
            kept = 0
            for m in self.members.values():
                a = m[M_ANCHOR_T]
                if m[M_SEEN] & _SEEN_ANCHOR and kept < a <= self.rel_t:
                    kept = a
            if kept:
                self.anchor_n, self.anchor_t = 0, kept
            self.drop_resend = 0
            tr = node.trace
            if tr is not None:
                tr(node, "anchor", self.anchor_n, self.anchor_t)
        elif not need and settled and self.anchor_t and self.round() == RV_COLLECTING:
            # (never on a table that may not know yet who needs it: after a reboot or an
            # election, a member out of the group is heard before the anchor is dropped)
            self.anchor_n, self.anchor_t = 0, 0
            self.drop_resend = _RESET_RESEND
        self.told_t = self.anchor_t
        if self.anchor_t:
            self._anchor_told(self.anchor_n, self.anchor_t)
            if self.cycles % 2 == 0:
                codec.pack_release(self.tx, HDR_SIZE, self.anchor_n, self.anchor_t)
                sent += node.emit(PORT_BUS, T_RELEASE, BROADCAST, SZ_RELEASE, flags=F_ANCHOR)
            return sent
        self._anchor_dropped()
        if known and not need and self.drop_resend == 0 and self.cycles % _HEARTBEAT == 2:
            for m in self.members.values():
                if m[M_ANCHOR_T]:
                    self.drop_resend = 1         # a member missed the drop
                    break
        if self.drop_resend > 0:
            self.drop_resend -= 1
            codec.pack_reset_uip(self.tx, HDR_SIZE, 0)
            sent += node.emit(PORT_BUS, T_RESET_UIP, BROADCAST, SZ_RESET_UIP, flags=F_ANCHOR)
        return sent

    def _anchor_told(self, n, t):
        """The master announced the group's anchor (n, T): reach T (apply up to it) and keep
        the image of T from now on. A board that cannot reach T counts it (anchor_missed)."""
        st = self.store
        sb = st.sb
        img = sb.img_state
        if img & IMG_ON and sb.img_t == t:
            return
        s = sb.copy_state
        if s == CS_FAILED_OVER or s == CS_SIMPLEX or img & (IMG_FIRST | IMG_RESTORING):
            return                           # no image to keep
        if s == CS_PENDING and not self.waiting_anchor():
            return                           # copies over another image cut, or joined
        if img & IMG_ON:
            st.img_drop(keep=img & (IMG_FIRST | IMG_JOINED))    # a stale anchor (a missed drop)
        if sb.applied_t < t:
            if t > self.ckpt_t or not self._apply(n, t):
                self.anchor_missed += 1
                return
        if sb.applied_t != t:
            self.anchor_missed += 1
            return
        st.img_start(n, t)
        self.anchors += 1
        self.anchor_due = True
        if s == CS_PENDING:
            self._drain()                    # the rest of the journal, over the kept image

    def _anchor_dropped(self):
        """The master dropped the anchor: forget the preserved image unless this pair needs it."""
        st = self.store
        if not st.img_active() or self.keep():
            return
        st.img_drop(keep=st.sb.img_state & (IMG_FIRST | IMG_JOINED))
        self.anchor_due = True

    def _report_anchor(self, dst):
        sb = self.store.sb
        n, t = (sb.img_n, sb.img_t) if sb.img_state & IMG_ON else (0, 0)
        if (sb.img_state & IMG_FIRST or not self.keeps_images()) and self.told_t:
            # a first copy (joined, unconfirmed) has no image to keep and confirms no join
            # while an anchor is set, a board without the area keeps none: neither holds
            # the group back
            n, t = 0, self.told_t
        codec.pack_update_complete(self.tx, HDR_SIZE, n, t)
        self.node.emit(PORT_BUS, T_UPDATE_COMPLETE, dst, SZ_UPDATE_COMPLETE, flags=F_ANCHOR)

    def member_slot(self, now):
        self.was_master = False
        self.slots += 1
        sb = self.store.sb
        master = self.node.mac.master
        budget = 2
        sent_uc = False
        if not self.in_group():
            if self.slots % _HEARTBEAT == 0 or self.announce_due:
                self._announce(BROADCAST)
                self.announce_due = False
            return
        if sb.uip_n and sb.applied_t >= sb.uip_t:
            self._update_complete(master, F_UIP)
            sent_uc = True
            budget -= 1
        if self.ckpt_t > sb.applied_t:
            codec.pack_held(self.tx, HDR_SIZE, self.ckpt_n, self.ckpt_t)
            self.node.emit(PORT_BUS, T_HELD, master, SZ_HELD)
            budget -= 1
        if budget and (self.slots % _HEARTBEAT == 0 or self.announce_due):
            self._announce(BROADCAST)
            self.announce_due = False
            budget -= 1
        if budget and (self.anchor_due or (self.slots % _HEARTBEAT == 2 and (
                sb.img_state & IMG_ON or self.told_t))):
            self._report_anchor(master)
            self.anchor_due = False
            budget -= 1
        if budget and not sent_uc and self.slots % _HEARTBEAT == 1:
            self._update_complete(master, 0)

    def _update_complete(self, dst, flags):
        sb = self.store.sb
        codec.pack_update_complete(self.tx, HDR_SIZE, sb.applied_n, sb.applied_t)
        self.node.emit(PORT_BUS, T_UPDATE_COMPLETE, dst, SZ_UPDATE_COMPLETE, flags=flags)

    def _announce(self, dst):
        sb = self.store.sb
        if sb.copy_state == CS_RESIGNED:
            codec.pack_resign(self.tx, HDR_SIZE, self.node.me, R_PEER_LOST)
            return self.node.emit(PORT_BUS, T_RESIGN, dst, SZ_RESIGN)
        codec.pack_copy_active(self.tx, HDR_SIZE, ROLE_SECONDARY, self.cfg.peer, self.shown_state(),
                               self.cfg.mode, sb.incarnation)
        return self.node.emit(PORT_BUS, T_COPY_ACTIVE, dst, SZ_COPY_ACTIVE,
                              flags=F_ANCHOR if self.keep() else 0)

    # -- timers ------------------------------------------------------------------------------
    def tick(self, now):
        sb = self.store.sb
        if sb.copy_state == CS_DUPLEX and ticks_diff(now, self.last_rx) >= self.cfg.peer_timeout_us:
            # primary or link lost: resign. Released rounds are still completed
            # (a resigned board keeps obeying RELEASE for checkpoints it holds).
            transition(self.store, ROLE_SECONDARY, ev.PEER_LOST)
            self.link = LINK_HELLO

    def deadline(self, now):
        if self.store.sb.copy_state == CS_DUPLEX:
            # ticks_add(last_rx, peer_timeout_us), inlined (this runs after every event;
            # peer_timeout_us is 0..2**28-1, Config checks)
            d = self.last_rx - 0x40000000 + self.cfg.peer_timeout_us
            return d + 0x40000000 if d < 0 else d
        return None

    def age(self, now):
        """Node.tick, at least every AGE / 2 us: keep local ticks within AGE of now."""
        self.last_rx = ticks_age(now, self.last_rx)
