# The replication core's entry point (sans-I/O).
#
#   node = Node(cfg, store); node.boot(now)
#   node.on_frame(now, port, mtype, flags, src, dst, group, seq, ack, payload)
#   node.on_garbage(now, port, count)     # the deframer dropped bytes on a port
#   node.tick(now)                        # when now >= node.next_deadline
#   node.release(now)                     # when deferred and now is past reply_due: held replies only
#   node.take_out() -> [(port, bytes)]
#
# `now` is this board's own microsecond clock. The node never reads a clock or a
# port; disk I/O goes through the injected Store. Role logic lives in primary.py
# and secondary.py; this file routes frames, answers the host port, and runs the
# bus access layer.
#
# Trace hook: `node.trace` is None by default. A host (simulator, benchmark, test)
# may set it to a function trace(node, event, n, t), called at these points of the
# core, so protocol steps can be observed without patching methods (on a board it
# costs one None check per point):
#   "ckpt_accepted"  a primary accepted checkpoint (n, T) (its marker is journaled)
#   "ckpt_held"      a secondary journaled a checkpoint marker; its held time is now T
#   "release"        the secondary master decided RELEASE(n, T)
#   "reset"          the secondary master decided RESET_UIP for round (n, T)
#   "joined"         a secondary took the join marker at (n, T): the resync ended there
#   "applied"        a secondary recorded (n, T) as applied
# The hook must not call back into the core.
#
# Imports go one way: node -> primary/secondary -> wire, codec, peerlink, store,
# pairstate. The ports (PORT_*) are wire constants, re-exported here for host code.
from firmware.wire import (const, BLOCK_SIZE, BROADCAST, C_DIRTY_LIST, C_FAILBACK, C_MARK_DIRTY, C_SET_MODE, DIRTY_MAX,
                           F_EXPOSED, F_REPLY, F_WARM, HDR_SIZE, HOST_ID, MAX_FRAME, OVERHEAD, PORT_BUS, PORT_HOST,
                           PORT_PEER, ROLE_PRIMARY, ROLE_SECONDARY, ST_MASTER, S_BAD_FRAME, S_BAD_LENGTH,
                           S_BAD_COMMAND, S_BAD_STATE, S_OK, S_OUT_OF_RANGE, S_UNKNOWN_TYPE, S_UNKNOWN_VOLUME,
                           T_CHECKPOINT, T_CLOCK_SYNC, T_ERROR, T_HELD, T_H_COMMAND, T_H_READ, T_H_REPLY,
                           T_H_STATUS, T_H_WRITE)
from firmware import codec
from firmware.codec import SZ_CLOCK_SYNC, SZ_ERROR, SZ_H_REPLY_HEAD
from firmware import pairstate
from firmware.config import MODES, POLICIES
from firmware.store import SB_SAVED
from firmware.busmac import BusMac, ACT_MASTER, ACT_SLOT
from firmware.primary import Primary, ERR_UNKNOWN
from firmware.secondary import Secondary
from firmware.ticks import AGE, TICKS_MASK, ticks_add, ticks_diff

_BODY = HDR_SIZE + SZ_H_REPLY_HEAD      # where a host reply's body starts in tx
_HALF = const(0x20000000)               # firmware/ticks.py: a tick difference's sign bit
_AGE_EVERY = AGE // 2                   # how often kept local times are aged (Node.tick)


class Node:
    def __init__(self, cfg, store):
        self.cfg = cfg
        self.store = store
        self.me = cfg.node
        self.out = []
        self.tx = bytearray(MAX_FRAME)
        self.txv = memoryview(self.tx)
        self.scratch = bytearray(BLOCK_SIZE)
        self.mac = BusMac(cfg.node, cfg.site_nodes, cfg.slot_us, cfg.cycle_us, cfg.member_timeout_us)
        self.next_deadline = 0       # a tick (firmware/ticks.py), as every local time here
        self.aged = 0                # when kept local times were last aged (ticks_age)
        self.now = 0                 # the time of the event being handled (write replies)
        self.booted = False
        self.deferred = []           # (due, tag, stamp) of host write replies held back: pacing,
                                     # and the commit wait (stamp != 0: asked again when due)
        self.reply_due = 0           # ticks: the earliest due of `deferred` (only while it holds any)
        self.heap_peak = 0           # bytes: the most heap the main loop saw in use (0 = unknown)
        self.dirty = [0] * DIRTY_MAX  # C_DIRTY_LIST scratch
        self.trace = None            # trace(node, event, n, t): see the top of this file
        sb = getattr(store, "sb", None)
        if sb is not None and sb.role in (ROLE_PRIMARY, ROLE_SECONDARY):
            # the store is the durable truth: a failback swaps the role there, and
            # SET_MODE / SET_POLICY save the mode and policy there (SB_SAVED | value)
            cfg.role = sb.role
            if sb.mode & SB_SAVED and (sb.mode & 0x7F) in MODES:
                cfg.mode = sb.mode & 0x7F
            if sb.policy & SB_SAVED and (sb.policy & 0x7F) in POLICIES:
                cfg.policy = sb.policy & 0x7F
        self.c = {
            "frames_in": 0, "frames_out": 0, "bad_frames": 0, "unknown_src": 0,
            "unknown_type": 0, "host_errors": 0, "records_rejected": 0,
            "stale_ckpt": 0, "markers_dropped": 0, "release_not_held": 0, "dup_records": 0,
            "host_writes": 0, "host_reads": 0, "writes_completed": 0, "failbacks": 0,
            "not_mine": 0, "writes_exposed": 0,
        }
        self._make_role()

    def _make_role(self):
        if self.cfg.role == ROLE_PRIMARY:
            self.role = Primary(self)
        else:
            self.role = Secondary(self)

    # -- output ----------------------------------------------------------------
    def emit(self, port, mtype, dst, plen, seq=0, ack=0, flags=0):
        """Seal the payload already packed at tx[HDR_SIZE:] and queue the frame."""
        txv = self.txv          # (the frame is copied out: its CRC through a slice, not the scratch)
        n = codec.build_frame(self.tx, mtype, flags, self.me, dst, self.cfg.group, seq, ack, plen, txv)
        self.out.append((port, bytes(txv[:n])))
        self.c["frames_out"] += 1
        return n

    def emit_raw(self, port, frame):
        self.out.append((port, frame))
        self.c["frames_out"] += 1

    def take_out(self):
        o = self.out
        self.out = []
        return o

    def reply(self, tag, status, body_len=0, flags=0):
        """Host reply; a body, if any, is already packed at tx[_BODY:]."""
        codec.pack_h_reply(self.tx, HDR_SIZE, status)
        self.emit(PORT_HOST, T_H_REPLY, HOST_ID, SZ_H_REPLY_HEAD + body_len, seq=tag,
                  flags=F_REPLY | flags)
        if status != S_OK:
            self.c["host_errors"] += 1

    def error(self, port, code, mtype=0, detail=0, dst=HOST_ID, tag=0):
        codec.pack_error(self.tx, HDR_SIZE, code, mtype, detail)
        self.emit(port, T_ERROR, dst, SZ_ERROR, seq=tag, flags=F_REPLY if port == PORT_HOST else 0)

    # -- events ----------------------------------------------------------------
    def boot(self, now):
        inc = (self.store.sb.incarnation + 1) & 0xFFFFFFFF
        self.store.commit(incarnation=inc)
        # a marked write the power cut interrupted: rewrite it from its sealed copy
        # before anything reads or writes the volume (Store.x_redo; counted in stats)
        self.store.x_redo(self.scratch)
        self.mac.boot(now)
        self.aged = now
        self.role.boot(now)
        self.booted = True
        self._schedule(now)

    def on_garbage(self, now, port, count):
        """A run of bad input on `port` ended (PortRx reports each run once): `count` bytes
        were discarded. On the host port: one ERROR(BAD_FRAME, detail = count), tag 0."""
        self.c["bad_frames"] += 1
        if port == PORT_HOST:
            self.error(PORT_HOST, S_BAD_FRAME, 0, count if count < 0xFFFF else 0xFFFF)

    def on_frame(self, now, port, mtype, flags, src, dst, group, seq, ack, payload):
        self.c["frames_in"] += 1
        self.now = now
        try:
            if port == PORT_BUS:                 # (the most frequent first)
                self._bus(now, mtype, flags, src, dst, group, payload)
            elif port == PORT_HOST:
                if dst == self.me or dst == BROADCAST:
                    self._host(now, mtype, flags, src, seq, payload)
                else:
                    self.c["not_mine"] += 1      # for another board: not answered
            elif port == PORT_PEER:
                if src != self.cfg.peer or group != self.cfg.group:
                    self.c["unknown_src"] += 1
                else:
                    self.role.on_peer(now, mtype, flags, seq, ack, payload)
        except ValueError:
            # a payload that does not decode (wrong length, bad field)
            self.c["bad_frames"] += 1
            if port == PORT_HOST:
                self.error(PORT_HOST, S_BAD_LENGTH, mtype, len(payload), tag=seq)
        self._schedule(now)

    def release(self, now):
        """Reply to the held host writes that are due (tick does it too, before its timers;
        a main loop may call this first, to send the replies before the timers' work)."""
        self.now = now
        if self.deferred:
            self._release_deferred(now)
            self._schedule(now)

    def tick(self, now):
        self.now = now
        d = (now - self.aged) & TICKS_MASK      # ticks_diff(now, self.aged) >= AGE // 2, inlined
        if _AGE_EVERY <= d < _HALF:
            # local times kept for long never get 2**29 us old (firmware/ticks.py)
            self.aged = now
            self.mac.age(now)
            self.role.age(now)
        if self.deferred:
            self._release_deferred(now)
        act = self.mac.poll(now)
        if act == ACT_MASTER:
            sent = self.role.master_cycle(now)
            self._beacon(now, sent)
        elif act == ACT_SLOT:
            self.role.member_slot(now)
        self.role.tick(now)
        self._schedule(now)

    def _schedule(self, now):
        d = self.mac.deadline(now)
        r = self.role.deadline(now)
        # (ticks_diff(a, d) < 0, inlined: this runs after every event)
        if r is not None and (r - d) & TICKS_MASK >= _HALF:
            d = r
        deferred = self.deferred
        if deferred:
            rd = None
            for e in deferred:
                if rd is None or (e[0] - rd) & TICKS_MASK >= _HALF:
                    rd = e[0]
            self.reply_due = rd      # meaningful only while `deferred` holds replies
            if (rd - d) & TICKS_MASK >= _HALF:
                d = rd
        self.next_deadline = d

    # -- bus ---------------------------------------------------------------------
    def _beacon(self, now, bytes_before):
        # the time the beacon carries is the sender's sequence time at the END of its
        # transmission (frames queued before it, plus the beacon itself), and it echoes one
        # member's clock report: that report's tag and how long before the beacon's end, in
        # our time, we read it (a round trip: SPEC section 9); clockless: t and tag are the
        # checkpoint barrier's confirmed T and member mask (primary.py's header)
        air = ((bytes_before + OVERHEAD + SZ_CLOCK_SYNC) * 10000000 // self.cfg.bus_baud)
        role = self.role
        t = role.beacon_time(now, air)
        peer = role.echo_pick(now)
        hold = 0
        if peer:
            hold = ticks_diff(now, role.echo_at) + air
        codec.pack_clock_sync(self.tx, HDR_SIZE, t, self.mac.cycle, peer, role.echo_tag if peer else role.bar_mask, hold)
        self.emit(PORT_BUS, T_CLOCK_SYNC, BROADCAST, SZ_CLOCK_SYNC, flags=F_WARM if self.mac.ready else 0)

    def _bus(self, now, mtype, flags, src, dst, group, payload):
        cfg = self.cfg
        me = self.me
        if src == me or group != cfg.group or src not in cfg.site_nodes:
            self.c["unknown_src"] += 1
            return
        mac = self.mac
        mac.on_heard(now, src)
        # every board takes in every valid frame on its bus: reports addressed to the
        # master are overheard by all, so whoever is elected next starts with a warm table
        if mtype == T_CLOCK_SYNC:
            if dst != BROADCAST:
                # a member's clock report to the master: (its sequence time, its last checkpoint)
                if dst == me:
                    t, n, _, tag, _ = codec.unpack_clock_sync(payload)
                    self.role.on_clock_report(now, src, t, n, tag)
                return
            t, cycle, peer, tag, hold = codec.unpack_clock_sync(payload)
            was = mac.master
            mac.on_beacon(now, src, cycle)
            if mac.master == src:
                # hold < 0: the beacon echoes no report of ours
                self.role.on_beacon(now, src, t, was != src, flags & F_WARM,
                                    tag, hold if peer == me else -1)
            return
        if (mtype == T_CHECKPOINT and cfg.role == ROLE_SECONDARY) or \
                (mtype == T_HELD and cfg.role == ROLE_PRIMARY):
            # the other site's message (this bus is changing roles in a failback): a
            # primary master's cut reaches no secondary, a held report no primary
            self.c["unknown_src"] += 1
            return
        self.role.on_bus(now, mtype, flags, src, payload)

    # -- host port ---------------------------------------------------------------
    def _host(self, now, mtype, flags, src, tag, payload):
        if tag == 0:
            # tag 0 marks the board's unsolicited errors: a request carrying it is refused
            # unexecuted, with ERROR(BAD_FRAME, mtype = its type, detail 0)
            self.c["host_errors"] += 1
            self.error(PORT_HOST, S_BAD_FRAME, mtype, 0)
            return
        if mtype == T_H_WRITE:
            vol, blk, data = codec.unpack_h_write(payload)
            if not self._in_range(tag, vol, blk):
                return
            self.c["host_writes"] += 1
            self.role.host_write(now, tag, vol, blk, data)
        elif mtype == T_H_READ:
            vol, blk = codec.unpack_h_read(payload)
            if not self._in_range(tag, vol, blk):
                return
            st = self.role.host_read_status()
            if st != S_OK:
                self.reply(tag, st)
                return
            self.c["host_reads"] += 1
            self.store.read_block(vol, blk, self.txv[_BODY:_BODY + BLOCK_SIZE])
            self.reply(tag, S_OK, BLOCK_SIZE)
        elif mtype == T_H_STATUS:
            if len(payload):
                raise ValueError("h_status: payload must be empty")
            n = self.pack_status(now, _BODY)
            self.reply(tag, S_OK, n)
        elif mtype == T_H_COMMAND:
            cmd, arg, arg2 = codec.unpack_h_command(payload)
            if cmd == C_DIRTY_LIST:
                self._dirty_list(tag, arg, arg2)
            elif cmd == C_MARK_DIRTY:
                if self._in_range(tag, arg, arg2):
                    self.store.bm_set(arg, arg2)
                    self.reply(tag, S_OK)
            elif cmd == C_FAILBACK:
                self.reply(tag, self._failback(now, arg))
            elif cmd == C_SET_MODE:
                self.reply(tag, self._set_mode(now, arg))
            else:
                self.reply(tag, self.role.command(now, cmd, arg, arg2))
        else:
            self.c["unknown_type"] += 1
            self.error(PORT_HOST, S_UNKNOWN_TYPE, mtype, 0, tag=tag)

    def _in_range(self, tag, vol, blk):
        sb = self.store.sb
        if vol >= sb.nvol:
            self.reply(tag, S_UNKNOWN_VOLUME)
            return False
        if blk >= sb.vol_blocks:
            self.reply(tag, S_OUT_OF_RANGE)
            return False
        return True

    def complete_write(self, tag, status=S_OK, delay_us=0, now=0, stamp=0):
        """Reply to a host write; with delay_us (pacing, commit wait) the reply is held
        back that long (the write is already durable: only its completion waits). With a
        stamp, the role's commit_delay(now, stamp) is asked again when it is due."""
        if delay_us > 0:
            self.deferred.append((ticks_add(now, delay_us), tag, stamp))
            return
        if status == S_OK:
            self.c["writes_completed"] += 1
            self.reply(tag, status, flags=self._exposed())
        else:
            self.reply(tag, status)

    def _exposed(self):
        """F_EXPOSED for a write completed OK now if a primary's pair does not protect it as
        configured (Primary.exposed: SPEC section 8, "Exposed writes"), else 0."""
        if self.cfg.role == ROLE_PRIMARY and self.role.exposed(self.now):
            self.c["writes_exposed"] += 1
            return F_EXPOSED
        return 0

    def _release_deferred(self, now):
        keep = []
        for e in self.deferred:
            d = (e[0] - now) & TICKS_MASK       # ticks_diff(e[0], now) <= 0, inlined
            if d == 0 or d >= _HALF:
                w = self.role.commit_delay(now, e[2]) if e[2] else 0
                if w > 0:
                    keep.append((ticks_add(now, w), e[1], e[2]))
                    continue
                self.c["writes_completed"] += 1
                self.reply(e[1], S_OK, flags=self._exposed())
            else:
                keep.append(e)
        self.deferred = keep

    # -- operations --------------------------------------------------------------
    def _dirty_list(self, tag, vol, start):
        sb = self.store.sb
        if vol >= sb.nvol:
            self.reply(tag, S_UNKNOWN_VOLUME)
            return
        n = 0
        blk = start
        while n < DIRTY_MAX and blk < sb.vol_blocks:
            b = self.store.bm_first(vol, blk)
            if b is None:
                blk = sb.vol_blocks
                break
            self.dirty[n] = b
            n += 1
            blk = b + 1
        if blk > sb.vol_blocks:
            blk = sb.vol_blocks
        end = codec.pack_dirty_list(self.tx, _BODY, blk, self.dirty, n)
        self.reply(tag, S_OK, end - _BODY)

    def _failback(self, now, new_role):
        """Reverse the pair: an old primary becomes a secondary (new_role 2), a failed-over
        secondary becomes a primary that resyncs its peer (new_role 1)."""
        if new_role == ROLE_PRIMARY:
            event = pairstate.BECOME_PRIMARY
        elif new_role == ROLE_SECONDARY:
            event = pairstate.BECOME_SECONDARY
        else:
            return S_BAD_COMMAND
        new = pairstate.next_state(self.cfg.role, self.store.sb.copy_state, event)
        if new == pairstate.BAD_STATE:
            return S_BAD_STATE
        if new == pairstate.SAME:
            # done already (a retried command): a primary in resync or duplex, a secondary
            return S_OK
        st = self.role.failback()        # the table moves a pair only to the other role
        if st != S_OK:
            return st
        self.cfg.role = new_role
        self.c["failbacks"] += 1
        self.deferred = []
        self._make_role()
        self.role.boot(now)
        if new_role == ROLE_PRIMARY:
            self.role.start_pending(now)
        self._schedule(now)
        return S_OK

    def _set_mode(self, now, mode):
        """SET_MODE, either role: the rules are pairstate.mode_change()'s; the mode is
        saved in the superblock (it wins over the config file at boot)."""
        new = pairstate.mode_change(self.cfg.mode, mode, self.role.async_held())
        if new == pairstate.BAD_ARG:
            return S_BAD_COMMAND
        if new == pairstate.BAD_STATE:
            return S_BAD_STATE
        if new == pairstate.SAME:
            if not self.store.sb.mode & SB_SAVED:
                self.store.commit(mode=mode | SB_SAVED)   # the config's value, now the operator's
            return S_OK
        self.cfg.mode = new
        self.store.commit(mode=new | SB_SAVED)
        self.role.mode_changed(now)
        self._schedule(now)
        return S_OK

    # -- status --------------------------------------------------------------------
    def pack_status(self, now, off):
        r = self.role
        sb = self.store.sb
        flags = 0
        if self.mac.is_master():
            flags |= ST_MASTER
        flags |= r.status_flags()
        done, total, pace, reason = r.ops_status()
        return codec.pack_status_body(
            self.tx, off,
            sb.role, self.me, sb.copy_state, flags, self.cfg.mode, self.cfg.policy,
            self.mac.master, self.cfg.peer,
            r.ckpt_n, r.ckpt_t, r.released_n(), sb.applied_n, sb.applied_t, sb.uip_n, sb.uip_t,
            self.store.j_depth(), sb.journal_slots, self.c["writes_completed"],
            r.records_moved, r.records_acked, r.seq_time(now),
            r.skew_last, r.clock_err(now) if sb.role == ROLE_PRIMARY else ERR_UNKNOWN, r.lag_us(now),
            self.c["bad_frames"], self.c["records_rejected"], self.store.bm_total(),
            done, total, pace, self.cfg.pace_threshold, self.cfg.pace_max_us, reason,
            self.heap_peak) - off

    def stats(self, now=0):
        d = dict(self.c)
        d.update(self.role.stats(now))
        d["master"] = self.mac.master
        d["elections"] = self.mac.elections
        d["journal_depth"] = self.store.j_depth()
        d["copy_state"] = self.store.sb.copy_state
        d["torn_repaired"] = self.store.x_repaired      # blocks rewritten by x_redo at boot
        d["intents_redone"] = self.store.x_redone
        return d
