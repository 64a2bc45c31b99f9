"""One simulated board: the firmware core (firmware/node.py) driven in virtual time.

A SimBoard does what firmware/main.py does on a real board, with the simulator's
fakes in place of the HAL:

- bytes arriving on a port go into that port's Deframer; every validated frame is
  handed to ``node.on_frame`` and growth of the deframer's error counters to
  ``node.on_garbage``;
- after every event the frames of ``node.take_out()`` go to the port's sender
  (host port, bus or peer link);
- the tick is rescheduled at ``node.next_deadline`` (the board's local time,
  converted to virtual time through its LocalClock);
- ``crash`` stops the board at once (events dropped, links cut, the disk keeps
  what was written); ``reboot`` mounts the store again, builds a new Node and
  boots it. A PowerCut raised by the disk during any call is a crash at that
  instant.

Firmware modules are imported lazily, by bare name, after ``host_tools.fwpath``,
so this module imports without them.
"""
from functools import partial
from firmware.ticks import TICKS_MASK

_TICKS_HALF = (TICKS_MASK + 1) >> 1
_TICKS_WRAP = TICKS_MASK + 1
_PPB = 1000000000            # host_tools/sim/clock.py's rate unit (LocalClock is inlined below)

PORT_HOST = 0
PORT_BUS = 1
PORT_PEER = 2
PORT_NAMES = ("host", "bus", "peer")

SPIN_LIMIT = 100000      # consecutive ticks whose deadline is already due: a firmware bug


class SimError(Exception):
    """The simulation found a firmware or harness fault (not a simulated fault)."""


class _NeverRaised(Exception):
    pass


def _firmware():
    from firmware import store
    from firmware import node
    from firmware import deframer
    from firmware import wire
    return store, node, deframer, wire


class SimBoard:
    """A board in the simulator.

    frame_sink (class attribute, for the pinned outcome digests): None, or
    fn(board, port, local_us, frame) called for every frame the board sends, in order.

    sched: the Scheduler; name: "p0", "s3", ...; cfg: firmware config.Config;
    disk: a block device (a FaultyDisk to get power cuts); clock: LocalClock;
    rng: random.Random for this board's own choices (reboot clock offsets);
    powercut_exc: exception class(es) that mean "power lost" (the disk's PowerCut);
    node_factory / store_factory / deframer_factory: for tests (default: firmware).
    """

    frame_sink = None

    def __init__(self, sched, name, cfg, disk, clock, rng, powercut_exc=None,
                 node_factory=None, store_factory=None, deframer_factory=None,
                 offset_max_us=1 << 28):
        self.sched = sched
        self.name = name
        self.cfg = cfg
        self.disk = disk
        self.clock = clock
        self.rng = rng
        self.powercut_exc = powercut_exc or _NeverRaised
        self.offset_max_us = offset_max_us
        self._node_factory = node_factory
        self._store_factory = store_factory
        self._deframer_factory = deframer_factory
        self.senders = [None, None, None]       # port -> fn(bytes)
        self._bus = None                        # (bus, station id)
        self._peer = None                       # (link, side)
        self._host = None                       # HostPort
        self.node = None
        self.store = None
        self.deframers = None
        self._garbage = [0, 0, 0]
        self.alive = False
        self.destroyed = False                  # never comes back (disaster)
        self.incarnation = 0                    # boots in this run
        self._tick_ev = None
        self._tick_at = None
        self._spins = 0
        self._reboot_ev = None
        self._pc_pending = None                 # (incarnation, down_us) of an armed power cut
        self.last_stats = {}
        self.on_death = None                    # fn(board, reason) for the world
        self.trace_sink = None                  # fn(name, virtual us, event, n, t), or None
        self.history = []                       # [(virtual_us, event, detail)]
        # counters
        self.crashes = 0
        self.power_cuts = 0
        self.reboots = 0
        self.mount_failures = 0
        self.frames_in = [0, 0, 0]
        self.frames_out = [0, 0, 0]
        self.frames_unrouted = 0

    # -- wiring -------------------------------------------------------------------
    def attach_bus(self, bus, sid):
        self._bus = (bus, sid)
        bus.attach(sid, self.receiver(PORT_BUS))
        self.senders[PORT_BUS] = partial(bus.send, sid)
        bus.set_up(sid, False)

    def attach_peer(self, link, side):
        self._peer = (link, side)
        link.attach(side, self.receiver(PORT_PEER))
        self.senders[PORT_PEER] = partial(link.send, side)
        link.cut(side)

    def attach_host(self, host):
        self._host = host
        self.senders[PORT_HOST] = host.from_board

    def set_trace_sink(self, sink):
        """Observe the firmware's trace events: sink(board name, virtual us, event, n, t) is
        called for every event of this board's Node, re-attached at every boot (None: off)."""
        self.trace_sink = sink
        if self.node is not None:
            self.node.trace = self._on_trace if sink is not None else None

    def _on_trace(self, node, event, n, t):
        sink = self.trace_sink
        if sink is not None:
            sink(self.name, self.sched.now, event, n, t)

    def receiver(self, port):
        """The deliver(bytes) callback for `port`."""
        return partial(self.receive, port)

    # -- life cycle ---------------------------------------------------------------
    def power_on(self):
        """Start (or restart) the board at the current virtual time."""
        if self.alive or self.destroyed:
            return False
        now_v = self.sched.now
        self._reboot_ev = None
        if self.incarnation:
            self.clock.restart(now_v, self.rng.randrange(self.offset_max_us) if self.offset_max_us else 0)
            self.reboots += 1
        if hasattr(self.disk, "power_on"):
            self.disk.power_on()
        store_mod, node_mod, deframer_mod, wire = (None, None, None, None)
        if not (self._node_factory and self._store_factory and self._deframer_factory):
            store_mod, node_mod, deframer_mod, wire = _firmware()
        mk_store = self._store_factory or store_mod.Store
        mk_node = self._node_factory or node_mod.Node
        self.incarnation += 1
        self.alive = True
        if self._deframer_factory:
            mk_def = self._deframer_factory
            self.deframers = [mk_def(), mk_def(), mk_def()]
        else:
            # sized per port as firmware/main.py does
            D = deframer_mod.Deframer
            self.deframers = [D(wire.MAX_HOST_PAYLOAD), D(wire.MAX_BUS_PAYLOAD), D(wire.MAX_PAYLOAD)]
        self._rx = None                  # PortRx per port, made once the node exists
        self._spins = 0
        self._connect(True)
        self.history.append((now_v, "boot", self.incarnation))
        local = self.clock.local_us(now_v)
        try:
            st = mk_store(self.disk)
            try:
                st.mount()
            except self.powercut_exc:
                raise
            except Exception as e:          # no valid superblock: the board cannot serve
                if store_mod is not None and not isinstance(e, store_mod.StoreError):
                    raise
                self.mount_failures += 1
                self.history.append((now_v, "mount-failed", str(e)))
                self._die("mount-failed", reboot_after=None)
                return False
            self.store = st
            self.node = mk_node(self.cfg, st)
            if self.trace_sink is not None:
                self.node.trace = self._on_trace
            self.node.boot(local & TICKS_MASK)
        except self.powercut_exc:
            self._powercut()
            return False
        self._after(local, False)
        return True

    def crash(self, down_us=None, reason="crash"):
        """Stop now (no torn write); reboot after down_us (None: stay down)."""
        if not self.alive:
            return False
        self.crashes += 1
        self._die(reason, down_us)
        return True

    def destroy(self):
        """Gone for good (site disaster)."""
        self.destroyed = True
        if self._reboot_ev is not None:
            self.sched.cancel(self._reboot_ev)
            self._reboot_ev = None
        if self.alive:
            self._die("destroyed", None)

    def halt(self):
        """Switch the board off until told otherwise (``power_on``): unlike ``destroy``
        it may come back; unlike ``crash`` no reboot is pending, not even one a
        fault scheduled before."""
        if self._reboot_ev is not None:
            self.sched.cancel(self._reboot_ev)
            self._reboot_ev = None
        if self.alive:
            self._die("halted", None)

    def arm_power_cut(self, after_writes, torn, down_us, window_us=200000):
        """Cut the power at the (after_writes+1)-th block write from now (torn: that
        block gets a random prefix of its new contents); reboot down_us later. If the
        board writes nothing within window_us, the power goes anyway (no write in
        flight, so nothing torn)."""
        if not self.alive or not hasattr(self.disk, "arm_power_cut"):
            return False
        self.disk.arm_power_cut(after_writes, torn=torn)
        self._pc_pending = (self.incarnation, down_us)
        self.sched.after(window_us, self._power_cut_fallback, self.incarnation)
        return True

    def _power_cut_fallback(self, inc):
        if self._pc_pending is not None and self._pc_pending[0] == inc and self.alive \
                and self.incarnation == inc:
            down = self._pc_pending[1]
            self._pc_pending = None
            if hasattr(self.disk, "disarm"):
                self.disk.disarm()
            self.power_cuts += 1
            self._die("powercut-idle", down)

    def _powercut(self):
        """The disk raised PowerCut during a call into the firmware."""
        down = None
        if self._pc_pending is not None:
            down = self._pc_pending[1]
            self._pc_pending = None
        self.power_cuts += 1
        self._die("powercut", down)

    def _die(self, reason, reboot_after):
        now_v = self.sched.now
        if self.node is not None:
            try:
                self.last_stats = self.node.stats(self.clock.local_us(now_v))
            except Exception:                 # the store may be dead: keep what we had
                pass
        self.alive = False
        self.node = None
        self.store = None
        self._pc_pending = None
        if self._tick_ev is not None:
            self.sched.cancel(self._tick_ev)
            self._tick_ev = None
            self._tick_at = None
        self._connect(False)
        self.history.append((now_v, reason, reboot_after))
        if reboot_after is not None and not self.destroyed:
            self._reboot_ev = self.sched.after(reboot_after, self.power_on)
        if self.on_death is not None:
            self.on_death(self, reason)

    def _connect(self, up):
        if self._bus is not None:
            bus, sid = self._bus
            bus.set_up(sid, up)
        if self._peer is not None:
            link, side = self._peer
            if up:
                link.restore(side)
            else:
                link.cut(side)
        if self._host is not None:
            self._host.board_state(up)

    # -- events ---------------------------------------------------------------------
    def receive(self, port, data):
        """Bytes arrived on `port` (a link/bus/host deliver callback)."""
        if not self.alive:
            return
        # local = self.clock.local_us(now), inlined (this runs for every delivery)
        c = self.clock
        local = c.offset + ((self.sched.now - c.v0) * c._rate) // _PPB
        rxs = self._rx
        if rxs is None:                  # made once per boot (power_on resets it)
            rxs = self._rx = [_port_rx()(self.node, p, self.deframers[p]) for p in range(3)]
        rx = rxs[port]
        before = rx.frames
        try:
            rx.data(local & TICKS_MASK, data)   # the firmware's own receive path (portrx.py)
        except self.powercut_exc:
            self._powercut()
            return
        except Exception as exc:
            _note(exc, "board %s, port %s, at virtual %d us"
                  % (self.name, PORT_NAMES[port], self.sched.now))
            raise
        if rx.frames != before:
            self.frames_in[port] += rx.frames - before
        self._after(local, False)

    def _tick(self):
        self._tick_ev = None
        self._tick_at = None
        if not self.alive:
            return
        c = self.clock                   # local_us(now), inlined as in receive
        local = c.offset + ((self.sched.now - c.v0) * c._rate) // _PPB
        try:
            self.node.tick(local & TICKS_MASK)
        except self.powercut_exc:
            self._powercut()
            return
        except Exception as exc:
            _note(exc, "board %s, tick at virtual %d us" % (self.name, self.sched.now))
            raise
        self._after(local, True)

    def _after(self, local, ticked):
        node = self.node
        if node.out:
            out = node.take_out()
            senders = self.senders
            trace = self.sched.trace
            sink = self.frame_sink
            for port, frame in out:
                send = senders[port]
                if send is None:
                    self.frames_unrouted += 1
                    continue
                self.frames_out[port] += 1
                if trace:
                    self.sched.note(self.name, port, bytes(frame))
                if sink is not None:
                    sink(self, port, local, frame)
                send(frame)
                if not self.alive:        # a sender cannot kill us, but be safe
                    return
        nd = node.next_deadline
        if nd is None:
            if self._tick_ev is not None:
                self.sched.cancel(self._tick_ev)
                self._tick_ev = None
                self._tick_at = None
            return
        sched = self.sched
        now = sched.now
        # nd is a tick (firmware/ticks.py): as local time, the one within 2**29 us of now
        # (ticks_diff(nd, local & TICKS_MASK), inlined), then clock.to_virtual of it, inlined
        d = (nd - local) & TICKS_MASK
        if d >= _TICKS_HALF:
            d -= _TICKS_WRAP
        c = self.clock
        d += local - c.offset
        v = c.v0 if d <= 0 else c.v0 + (d * _PPB + c._rate - 1) // c._rate
        if v <= now:
            if ticked:
                # the deadline is still due right after a tick: a main loop would
                # spin; give it one microsecond, and catch a deadline stuck in the past
                self._spins += 1
                if self._spins > SPIN_LIMIT:
                    raise SimError("board %s: node.next_deadline (%r) stays in the past "
                                   "(local now %d)" % (self.name, nd, local))
                v = now + 1
            else:
                v = now
        elif ticked:
            self._spins = 0
        ev = self._tick_ev
        if ev is not None:
            if self._tick_at == v:
                return
            sched.cancel(ev)
        self._tick_at = v
        self._tick_ev = sched.schedule(v, self._tick)

    # -- inspection -------------------------------------------------------------------
    def local_now(self):
        return self.clock.local_us(self.sched.now)

    def stats(self):
        """The node's stats (live, or the last seen before it died) plus the harness's."""
        d = {}
        if self.node is not None:
            try:
                d.update(self.node.stats(self.local_now()))
            except self.powercut_exc:
                d.update(self.last_stats)
        else:
            d.update(self.last_stats)
        d["sim"] = {
            "alive": self.alive, "destroyed": self.destroyed, "incarnation": self.incarnation,
            "crashes": self.crashes, "power_cuts": self.power_cuts, "reboots": self.reboots,
            "mount_failures": self.mount_failures, "frames_in": list(self.frames_in),
            "frames_out": list(self.frames_out), "frames_unrouted": self.frames_unrouted,
            "drift_ppm": self.clock.drift_ppm,
            "deframer": self._deframer_stats(),
        }
        return d

    def _deframer_stats(self):
        if not self.deframers:
            return {}
        out = {}
        for p, d in enumerate(self.deframers):
            out[PORT_NAMES[p]] = {k: getattr(d, k, 0) for k in
                                  ("frames", "bad_magic", "bad_version", "bad_hcheck",
                                   "bad_length", "bad_crc", "overflow")}
        return out


def _port_rx():
    from firmware.portrx import PortRx
    return PortRx


def _note(exc, text):
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(text)
