"""The simulated installation: N primary + N secondary boards, two site buses, N
peer links, a host port per board, a workload, faults and the disaster, all in
one Scheduler and all derived from one seed.

    w = World(seed=7, faults="loss,crash", pairs=4, workload=my_workload)
    w.run()                       # until duration_us
    w.stats(); w.read_volume("s0", 0); w.call("s0", T_H_COMMAND, payload)

Names: primaries "p0".."p{n-1}" (node ids 1..n on the primary bus), secondaries
"s0".."s{n-1}" (node ids 129..128+n on the secondary bus); peer link i joins p<i>
(side 0) and s<i> (side 1).

Randomness: FaultOptions.from_seed(seed, ...) decides every fault; the runtime
draws (which frame is lost, chunk sizes, torn prefixes, reboot clock offsets)
come from named streams of SeedTree(seed), one per fake, so the same seed gives
the same run, event for event.
"""
import struct
from functools import partial

from host_tools.transport import Site
from .scheduler import Scheduler
from .rng import SeedTree, FaultOptions, parse_faults, primary_name, secondary_name
from .rng import _merge as merge_windows
from .clock import LocalClock
from .link import SerialLink
from .bus import Bus
from .board import SimBoard, SimError, PORT_HOST

SECONDARY_ID_BASE = 128

DEFAULTS = {
    "pairs": 4,
    "duration_us": 30000000,
    "bus_baud": 115200,
    "peer_baud": 115200,
    "host_latency_us": 200,          # host PC <-> board, one way (USB), no pacing
    "host_timeout_us": 2000000,      # a host request without reply fails after this
    "peer_chunk_max": 512,           # UART driver hand-over size on the peer links (main.py reads <= 512)
    "bus_chunk_max": 0,              # 0: a bus transmission is handed over whole
    "bus_read_late_us": 0,           # > 0: every board reads its bus port late, each transmission
                                     # by a delay drawn in [0, this) (a board busy elsewhere, a
                                     # master whose tick work delays its beacon's flush), in order
    "boot_spread_us": 20000,         # boards power on at random instants in [0, this)
    "workload_start_us": 1000000,
    "powercut_window_us": 200000,
    "offset_max_us": 1 << 28,        # local clocks start below this (small ints on a board)
    "drift_ppm": 0,                  # > 0: every board's clock drifts by a rate drawn in +-this
                                     # (ppm), over what the faults drew; boards are configured with
                                     # drift_max_ppm covering it (see _drift_config)
    "nvol": 1,
    "vol_blocks": 256,
    "journal_slots": 512,
    "autostart": True,
    "config": None,                  # extra config.Config fields for every board
    "board_config": None,            # {board name: {field: value}}: per-board overrides of those
    "trace": False,                  # fold every event into a digest (slower)
    "count_events": False,           # count executed events by handler (sched.counts; slower)
    "disaster": True,                # add the disaster class to `faults` (False: only if named)
}


# ---------------------------------------------------------------------------
class HostPort:
    """The host PC's port to one board: request frames go to the board after a fixed
    latency; reply frames come back, are deframed and matched by tag (seq).

    callback(now, status, mtype, payload): status is the S_* code (payload[0] of
    H_REPLY or ERROR), or None when the request timed out.
    """

    def __init__(self, sched, board, latency_us=200, timeout_us=2000000, encode=None,
                 deframer=None):
        self.sched = sched
        self.board = board
        self.latency_us = latency_us
        self.timeout_us = timeout_us
        self._encode = encode
        self._deframer = deframer
        self._encode_request = None   # the default encoder, called directly
        self._build_frame = None      # firmware.codec.build_frame, with the default encoder
        self._layout = None           # (HDR_SIZE, OVERHEAD, HOST_ID, BROADCAST) of firmware.wire
        self._decode = None           # protocol.hostcodec.decode (fast path for whole frames)
        self._pending = {}            # tag -> (callback, timeout handle)
        self._tag = 0
        self.board_up = False
        # counters
        self.requests = 0
        self.replies = 0
        self.timeouts = 0
        self.unmatched = 0            # replies with an unknown tag (late, or ERROR tag 0)

    def _codec(self):
        if self._encode is None or self._deframer is None:
            from firmware import deframer
            from firmware import wire
            if self._encode is None:
                from host_tools.transport.messages import encode_request
                from firmware.codec import build_frame
                # request_write's encoder (the same frame) and the frame layout it needs
                self._build_frame = build_frame
                self._layout = (wire.HDR_SIZE, wire.OVERHEAD, wire.HOST_ID, wire.BROADCAST)
                self._encode_request = encode_request
                self._encode = lambda mtype, src, dst, payload, seq, group: \
                    encode_request(mtype, dst, payload, seq, group)
            if self._deframer is None:
                self._deframer = deframer.Deframer(wire.MAX_PAYLOAD)
                if self._decode is None:
                    from protocol.hostcodec import decode
                    self._decode = decode

    def board_state(self, up):
        self.board_up = up

    def _next_tag(self):
        for _ in range(65535):
            self._tag = self._tag % 65535 + 1
            if self._tag not in self._pending:
                return self._tag
        raise SimError("host port %s: 65535 requests outstanding" % self.board.name)

    def request(self, mtype, payload, callback, timeout_us=None):
        """Send a request frame; returns its tag."""
        if self._deframer is None or self._encode is None:
            self._codec()
        tag = self._take_tag()
        cfg = self.board.cfg
        if self._encode_request is not None:
            frame = self._encode_request(mtype, cfg.node, payload, tag, cfg.group)
        else:
            frame = self._encode(mtype, 0, cfg.node, payload, seq=tag, group=cfg.group)
        self._send(tag, frame, callback, self.timeout_us if timeout_us is None else timeout_us)
        return tag

    def _take_tag(self):
        """The next free request tag (1..65535, round robin)."""
        tag = self._tag % 65535 + 1
        if tag in self._pending:
            return self._next_tag()
        self._tag = tag
        return tag

    def _send(self, tag, frame, callback, timeout_us):
        """Keep the request pending (with its timeout) and put the frame on the host port."""
        sched = self.sched
        self._pending[tag] = (callback, sched.timer(timeout_us, self._timeout, tag) if timeout_us else None)
        self.requests += 1
        sched.after(self.latency_us, self.board.receive, PORT_HOST, frame)

    def request_write(self, mtype, fmt, vol, block, data, callback):
        """request(mtype, struct.pack(fmt, vol, block) + data, callback), the frame built in
        one buffer (the workload's writes: the same bytes, fewer copies and calls)."""
        if self._deframer is None or self._encode is None:
            self._codec()
        cfg = self.board.cfg
        dst = cfg.node
        build = self._build_frame
        if build is None or not 1 <= dst <= self._layout[3]:
            return self.request(mtype, struct.pack(fmt, vol, block) + bytes(data), callback)
        hdr, overhead, host_id, _ = self._layout
        tag = self._take_tag()
        hsz = struct.calcsize(fmt)
        n = len(data)
        plen = hsz + n
        buf = bytearray(plen + overhead)
        struct.pack_into(fmt, buf, hdr, vol, block)
        buf[hdr + hsz:hdr + plen] = data
        build(buf, mtype, 0, host_id, dst, cfg.group, tag, 0, plen)
        self._send(tag, bytes(buf), callback, self.timeout_us)
        return tag

    def from_board(self, frame):
        """The board's sender for PORT_HOST."""
        self.sched.after(self.latency_us, self._arrive, frame)

    def _arrive(self, frame):
        d = self._deframer
        if d is None or self._encode is None:
            self._codec()
            d = self._deframer
        if self._decode is not None and not d.pending:
            # the usual case: exactly one whole frame and nothing buffered, which the
            # deframer would return as it is; anything else goes through the deframer
            try:
                mtype, _, _, _, _, tag, _, payload = self._decode(frame)
            except ValueError:
                pass
            else:
                self._reply(tag, mtype, bytes(payload))
                return
        d.feed(frame)
        while d.next():
            self._reply(d.seq, d.mtype, bytes(d.payload))

    def _reply(self, tag, mtype, payload):
        ent = self._pending.pop(tag, None)
        if ent is None:
            self.unmatched += 1
            return
        cb, h = ent
        if h is not None:
            self.sched.cancel(h)
        self.replies += 1
        cb(self.sched.now, payload[0] if payload else None, mtype, payload)

    def _timeout(self, tag):
        ent = self._pending.pop(tag, None)
        if ent is None:
            return
        self.timeouts += 1
        ent[0](self.sched.now, None, None, b"")

    def outstanding(self):
        return len(self._pending)


# ---------------------------------------------------------------------------
class WorkloadDriver:
    """Feeds a sans-I/O workload's write requests to the primaries' host ports.

    The workload: start(now); poll(now) -> [(write_id, pair, vol, block, data, ...)]
    (tuples or host_tools.check.workload.WriteRequest);
    complete(write_id, now, ok); next_wakeup() -> virtual us or None; done (attribute
    or method). Times are virtual microseconds (the host PC's clock).
    """

    def __init__(self, sched, workload, hosts, h_write_type, h_write_fmt, ok_status=0):
        self.sched = sched
        self.workload = workload
        self.hosts = hosts                # pair index -> HostPort of that primary
        self._t_write = h_write_type
        self._fmt = h_write_fmt
        self._ok = ok_status
        self._wake = None
        self._wake_at = None
        self.stopped = False
        self.paused = False
        self.issued = 0
        self.completed = 0
        self.failed = 0                   # error status, or timed out before the disaster
        self.refused = 0                  # of those: an error status (the board said no)
        self.refusals = {}                # error status -> count
        self.refusal_log = []             # (virtual us, write id, status) of each refusal
        self.abandoned = 0                # timed out after the disaster (left in flight)

    def _done(self):
        d = getattr(self.workload, "done", False)
        return d() if callable(d) else bool(d)

    def start(self):
        self.workload.start(self.sched.now)
        self._pump()

    def stop(self):
        """No more requests (the primary site is gone); completions still count."""
        self.stopped = True
        if self._wake is not None:
            self.sched.cancel(self._wake)
            self._wake = None

    def pause(self):
        """Issue nothing until ``resume`` (the application is quiesced); writes already
        issued still complete. Unlike ``stop``, a timeout while paused is a failure."""
        self.paused = True
        if self._wake is not None:
            self.sched.cancel(self._wake)
            self._wake = None
            self._wake_at = None

    def resume(self):
        self.paused = False
        self._pump()

    def outstanding(self):
        """Writes issued and not yet completed (or given up)."""
        return self.issued - self.completed - self.failed - self.abandoned

    def _pump(self):
        if self.stopped or self.paused:
            return
        d = getattr(self.workload, "done", False)     # as _done(), inlined: twice per write
        if d is not False and (d is True or (d() if callable(d) else bool(d))):
            return
        sched = self.sched
        now = sched.now
        wl = self.workload
        reqs = wl.poll(now)
        if reqs:
            fmt = self._fmt
            hosts = self.hosts
            t_write = self._t_write
            complete = self._complete
            for req in reqs:
                self.issued += 1
                # request(t_write, struct.pack(fmt, vol, block) + data, partial(_complete, id))
                hosts[req[1]].request_write(t_write, fmt, req[2], req[3], req[4],
                                            partial(complete, req[0]))
        nw = wl.next_wakeup()
        if nw is None:
            return
        d = getattr(wl, "done", False)
        if d is not False and (d is True or (d() if callable(d) else bool(d))):
            return
        if nw <= now:
            nw = now if reqs else now + 1
        if self._wake is not None:
            if self._wake_at == nw:
                return
            sched.cancel(self._wake)
        self._wake_at = nw
        self._wake = sched.schedule(nw, self._on_wake)

    def _on_wake(self):
        self._wake = None
        self._wake_at = None
        self._pump()

    def _complete(self, wid, now, status, mtype=None, payload=None):
        # a HostPort callback (partial(_complete, wid)): the reply's type and payload are unused
        if status is None and self.stopped:
            # timed out after the disaster: the outcome is unknown, the write stays
            # in flight in the workload's log
            self.abandoned += 1
            return
        ok = status == self._ok
        if ok:
            self.completed += 1
        else:
            self.failed += 1
            if status is not None:
                self.refused += 1
                self.refusals[status] = self.refusals.get(status, 0) + 1
                self.refusal_log.append((now, wid, status))
        self.workload.complete(wid, now, ok)
        self._pump()


# ---------------------------------------------------------------------------
class LateReader:
    """A board that reads its bus port late: every transmission reaches the firmware a delay
    drawn in [0, max_us) after its last byte arrived, never before an earlier one."""

    def __init__(self, sched, rng, max_us, deliver):
        self.sched = sched
        self.rng = rng
        self.max_us = int(max_us)
        self.deliver = deliver
        self.last = 0                 # virtual time the latest delivery was scheduled for

    def __call__(self, data):
        at = self.sched.now + self.rng.randrange(self.max_us)
        if at < self.last:
            at = self.last
        self.last = at
        self.sched.schedule(at, self.deliver, bytes(data))


# ---------------------------------------------------------------------------
SIM_SYNC_LATE_US = 20    # a simulated board reads a frame the instant its last byte arrives (unless
                         # bus_read_late_us); the master's air-time estimate rounds down by a few
                         # us: beacons later than 20 us are counted in late_samples (no premise of
                         # the clock bound any more: SPEC section 9)


def _drift_config(drift_ppm):
    """Config every board gets from the hardware it runs on, as an operator sets it: drift_max_ppm,
    the largest rate between two boards' clocks (twice the worst drift, rounded up; absent when
    within the default), and sync_late_us, what a board counts as a late beacon."""
    from firmware import config as config_mod
    worst = max([abs(v) for v in drift_ppm.values()] or [0.0])
    need = int(2 * worst) + 1
    out = {"sync_late_us": SIM_SYNC_LATE_US}
    if need > config_mod.DRIFT_MAX_PPM:
        out["drift_max_ppm"] = need
    return out


def _default_disk_factory(name, cfg, rng, nblocks):
    from .disk import RamDisk, FaultyDisk
    return FaultyDisk(RamDisk(nblocks), rng)


class World(Site):
    """The simulated installation (see the module docstring). It is also the
    host_tools.transport.Site of the simulation: kill(names) switches boards off, restart(names)
    powers them on again; add_tracer(fn) observes the firmware's trace events."""

    def __init__(self, seed=0, faults="none", workload=None, fault_options=None,
                 disk_factory=None, **options):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise TypeError("unknown World option(s): %s" % ", ".join(sorted(unknown)))
        o = dict(DEFAULTS)
        o.update(options)
        self.opts = o
        self.seed = int(seed)
        n = o["pairs"]
        self.pairs = n
        self.duration_us = o["duration_us"]
        self.tree = SeedTree(self.seed)
        if fault_options is None:
            fault_options = FaultOptions.from_seed(self.seed, parse_faults(faults, o["disaster"]), n,
                                                   self.duration_us, o["offset_max_us"])
        self.faults = fo = fault_options
        if o["drift_ppm"]:
            r = self.tree.stream("drift-option")
            for name in sorted(fo.drift_ppm):
                fo.drift_ppm[name] = round(r.uniform(-o["drift_ppm"], o["drift_ppm"]), 3)
        self.sched = sched = Scheduler(trace=o["trace"], count=o["count_events"])
        self.disaster_time = None
        self.errors = []                  # harness-level problems (mount failures, ...)
        self._tracers = []                # fn(board name, virtual us, event, n, t)

        from firmware import wire
        from firmware import config as config_mod
        from firmware import store as store_mod
        try:
            from .disk import PowerCut
        except ImportError:               # pragma: no cover - the disk module is separate work
            PowerCut = None
        self._wire = wire

        # site buses
        t = self.tree
        self.bus_p = Bus(sched, o["bus_baud"], t.stream("bus/primary"), ber=fo.bus_ber,
                         burst_rate=fo.bus_burst_rate, chunk_max=o["bus_chunk_max"], name="bus-p")
        self.bus_s = Bus(sched, o["bus_baud"], t.stream("bus/secondary"), ber=fo.bus_ber,
                         burst_rate=fo.bus_burst_rate, chunk_max=o["bus_chunk_max"], name="bus-s")
        # peer links
        self.links = []
        for i in range(n):
            self.links.append(SerialLink(
                sched, o["peer_baud"], t.stream("link/%d" % i), latency_us=fo.peer_latency_us,
                jitter_us=fo.peer_jitter_us, frame_loss=fo.peer_frame_loss,
                range_loss=fo.peer_range_loss, ber=fo.peer_ber, outages=fo.peer_outages.get(i, ()),
                chunk_max=o["peer_chunk_max"], name="peer%d" % i))

        # boards
        p_ids = [i + 1 for i in range(n)]
        s_ids = [SECONDARY_ID_BASE + 1 + i for i in range(n)]
        extra = _drift_config(fo.drift_ppm)
        extra.update(o["config"] or {})
        self.boards = {}
        self.primaries = []
        self.secondaries = []
        self.hosts = {}
        make_disk = disk_factory or _default_disk_factory
        for role, names, ids, peers, bus in (
                (wire.ROLE_PRIMARY, [primary_name(i) for i in range(n)], p_ids, s_ids, self.bus_p),
                (wire.ROLE_SECONDARY, [secondary_name(i) for i in range(n)], s_ids, p_ids, self.bus_s)):
            for i, name in enumerate(names):
                kw = {
                    "node": ids[i], "role": role, "peer": peers[i], "site_nodes": list(ids),
                    "nvol": o["nvol"], "vol_blocks": o["vol_blocks"],
                    "journal_slots": o["journal_slots"], "bus_baud": o["bus_baud"],
                    "peer_baud": o["peer_baud"], "autostart": o["autostart"],
                    "latency_us": fo.peer_latency_us + fo.peer_jitter_us,
                }
                kw.update(extra)
                kw.update((o["board_config"] or {}).get(name, {}))
                cfg = config_mod.Config(**kw)
                nblocks = store_mod.Store.blocks_needed(cfg.nvol, cfg.vol_blocks, cfg.journal_slots,
                                                        cfg.img_slots)
                disk = make_disk(name, cfg, t.stream("disk/" + name), nblocks)
                store_mod.Store.format(disk, cfg.role, cfg.node, cfg.peer, cfg.group, cfg.nvol,
                                       cfg.vol_blocks, cfg.journal_slots, img_slots=cfg.img_slots)
                clock = LocalClock(fo.drift_ppm.get(name, 0.0), fo.clock_offset_us.get(name, 0))
                b = SimBoard(sched, name, cfg, disk, clock, t.stream("board/" + name),
                             powercut_exc=PowerCut, offset_max_us=o["offset_max_us"])
                b.attach_bus(bus, cfg.node)
                if o["bus_read_late_us"] > 0:
                    bus.set_deliver(cfg.node, LateReader(sched, t.stream("late/" + name),
                                                         o["bus_read_late_us"],
                                                         b.receiver(wire.PORT_BUS)))
                b.attach_peer(self.links[i], 0 if role == wire.ROLE_PRIMARY else 1)
                host = HostPort(sched, b, o["host_latency_us"], o["host_timeout_us"])
                b.attach_host(host)
                b.on_death = self._on_death
                self.boards[name] = b
                self.hosts[name] = host
                (self.primaries if role == wire.ROLE_PRIMARY else self.secondaries).append(b)

        # power on, faults, disaster, workload
        r = t.stream("boot")
        spread = o["boot_spread_us"]
        for name in sorted(self.boards):
            sched.schedule(r.randrange(spread) if spread > 0 else 0, self.boards[name].power_on)
        for at, name, after, torn, down in fo.power_cuts:
            sched.schedule(at, self._power_cut, name, after, torn, down)
        for at, name, down in fo.crashes:
            sched.schedule(at, self._crash, name, down)
        if fo.disaster_at is not None:
            sched.schedule(fo.disaster_at, self.disaster)
        self.workload = workload
        self.driver = None
        if workload is not None:
            self.driver = WorkloadDriver(sched, workload, [self.hosts[b.name] for b in self.primaries],
                                         wire.T_H_WRITE, wire.P_H_WRITE, wire.S_OK)
            sched.schedule(o["workload_start_us"], self.driver.start)

    # -- faults ------------------------------------------------------------------------
    def _power_cut(self, name, after, torn, down):
        b = self.boards[name]
        b.arm_power_cut(after, torn, down, self.opts["powercut_window_us"])

    def _crash(self, name, down):
        self.boards[name].crash(down)

    def _on_death(self, board, reason):
        if reason == "mount-failed":
            self.errors.append((self.sched.now, board.name, "mount failed after reboot"))

    def add_outage(self, link, start_us, end_us):
        """Silence peer link `link` (both directions) from start_us to end_us: bytes that
        finish leaving a sender inside the window are lost (as a seeded outage)."""
        for ch in (self.links[link].ab, self.links[link].ba):
            ch.outages = merge_windows(sorted(ch.outages + [(start_us, end_us)]))

    def kill(self, names):
        """Switch the named boards off now (host_tools.transport.Site); they stay off, even
        through a reboot a fault scheduled, until restart(). -> names that were running."""
        out = []
        for name in names:
            b = self.boards[name]
            if b.alive:
                out.append(name)
            b.halt()
        return out

    def restart(self, names):
        """Power the named boards on (host_tools.transport.Site). -> names started."""
        return [name for name in names if self.boards[name].power_on()]

    # -- observation -------------------------------------------------------------------
    def add_tracer(self, fn):
        """Call fn(board name, virtual us, event, n, t) for every trace event of the firmware
        core (Node.trace: "ckpt_accepted", "ckpt_held", "release", "reset", "joined",
        "applied") on every board, through reboots. -> a function that removes it."""
        self._tracers.append(fn)
        if len(self._tracers) == 1:
            for b in self.boards.values():
                b.set_trace_sink(self._trace)

        def remove():
            if fn in self._tracers:
                self._tracers.remove(fn)
                if not self._tracers:
                    for b in self.boards.values():
                        b.set_trace_sink(None)
        return remove

    def _trace(self, name, now, event, n, t):
        for fn in list(self._tracers):
            fn(name, now, event, n, t)

    def disaster(self):
        """The whole primary site is lost now: every primary stops for good (its bytes
        already on a peer line still arrive), and the host stops writing."""
        if self.disaster_time is not None:
            return
        self.disaster_time = self.sched.now
        if self.driver is not None:
            self.driver.stop()
        for b in self.primaries:
            b.destroy()

    # -- running -------------------------------------------------------------------------
    def run(self, until_us=None):
        """Run to until_us (default: the configured duration). Returns events executed."""
        return self.sched.run_until(self.duration_us if until_us is None else until_us)

    @property
    def now(self):
        return self.sched.now

    def digest(self):
        return self.sched.digest()

    # -- host access ---------------------------------------------------------------------
    def request(self, name, mtype, payload, callback, timeout_us=None):
        return self.hosts[name].request(mtype, payload, callback, timeout_us)

    def call(self, name, mtype, payload=b"", timeout_us=None):
        """Send one host request and run the simulation until its reply (or timeout).
        Returns (status, mtype, payload); status None on timeout."""
        box = []

        def done(now, status, mt, pl):
            box.append((status, mt, pl))
            self.sched.stop()

        host = self.hosts[name]
        host.request(mtype, payload, done, timeout_us)
        limit = self.sched.now + (host.timeout_us if timeout_us is None else timeout_us) + 1
        while not box and self.sched.now < limit:
            self.sched.run_until(limit)
            if not box and self.sched.peek() is None:
                break
        return box[0] if box else (None, None, b"")

    def command(self, name, cmd, arg=0, arg2=0, timeout_us=None):
        """H_COMMAND to a board (synchronous, see call)."""
        w = self._wire
        return self.call(name, w.T_H_COMMAND, struct.pack(w.P_H_COMMAND, cmd, arg, arg2), timeout_us)

    # -- inspection -------------------------------------------------------------------------
    def read_volume(self, name, vol):
        """The whole volume `vol` of board `name`, read through the store (bypassing the
        firmware's UIP refusal: the harness sees the disk). A dead board's disk is
        mounted read-only for the purpose."""
        b = self.boards[name]
        st = b.store if (b.alive and b.store is not None) else None
        if st is None:
            from firmware import store as store_mod
            dev = getattr(b.disk, "inner", b.disk)
            st = store_mod.Store(dev)
            st.mount()
        bs = self._wire.BLOCK_SIZE
        nblk = st.sb.vol_blocks
        out = bytearray(nblk * bs)
        mv = memoryview(out)
        for blk in range(nblk):
            st.read_block(vol, blk, mv[blk * bs:(blk + 1) * bs])
        return out

    def stats(self):
        s = self.sched
        return {
            "seed": self.seed,
            "virtual_us": s.now,
            "events": s.events,
            "faults": self.faults.to_dict(),
            "disaster_us": self.disaster_time,
            "boards": {name: b.stats() for name, b in sorted(self.boards.items())},
            "links": {l.name: l.stats() for l in self.links},
            "buses": {self.bus_p.name: self.bus_p.stats(), self.bus_s.name: self.bus_s.stats()},
            "hosts": {name: {"requests": h.requests, "replies": h.replies,
                             "timeouts": h.timeouts, "unmatched": h.unmatched}
                      for name, h in sorted(self.hosts.items())},
            "workload": None if self.driver is None else {
                "issued": self.driver.issued, "completed": self.driver.completed,
                "failed": self.driver.failed, "abandoned": self.driver.abandoned},
            "errors": list(self.errors),
        }
