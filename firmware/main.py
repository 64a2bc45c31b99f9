# The board's event loop: HAL ports -> deframers -> Node -> HAL ports.
#
# On a board, boot.py (or the REPL) calls main.run(hal) with the board's HAL
# (boards/rp2/rp2_hal.py on an RP2040, host_tools/rig/board.py under CPython). The HAL
# gives: config(), block_device(), ports() -> (host, bus, peer) port objects with
# read_into(buf) -> n (non-blocking) and write(frame), ticks_us() -> the board clock as
# 30-bit wrapping microsecond ticks (firmware/ticks.py; the HALs use its Clock), wait(us)
# to sleep until input or timeout, and log(msg).
from firmware.wire import (MAX_PAYLOAD, MAX_HOST_PAYLOAD, MAX_BUS_PAYLOAD, PORT_HOST, PORT_BUS,
                           PORT_PEER)
from firmware.config import Config
from firmware.store import Store, StoreError
from firmware.deframer import Deframer
from firmware.node import Node
from firmware.portrx import PortRx
from firmware.ticks import ticks_add, ticks_diff
import gc

_RXBUF = 512
# Peak heap: about once a second, at an idle point of the loop, the heap is collected and
# gc.mem_alloc() (what live objects hold, code included) is sampled; node.heap_peak is the
# largest sample (bytes). Where gc has no mem_alloc (CPython) it stays 0.
_HEAP_SAMPLE_US = 1000000
_mem_alloc = getattr(gc, "mem_alloc", None)
# A held host write reply (commit wait, pacing) due within this many us is waited for in the
# loop, not in hal.wait: an OS's sleep overshoots its timeout (a board's sleep_us spins anyway)
_SPIN_US = 1000


def _blank(bdev):
    """True if both superblock blocks hold nothing (all 0x00 or all 0xFF)."""
    buf = bytearray(512)
    zeros = bytes(512)
    ones = b"\xff" * 512
    for n in (0, 1):
        bdev.readblocks(n, buf)
        if buf != zeros and buf != ones:
            return False
    return True


class Board:
    def __init__(self, hal):
        self.hal = hal
        self.cfg = Config.from_dict(hal.config())
        self.store = Store(hal.block_device())
        try:
            self.store.mount()
        except StoreError:
            if not _blank(hal.block_device()):
                # never format over something that was a store: that would turn a
                # damaged card into silent data loss
                hal.log("superblocks unreadable on a used device: refusing to format")
                raise
            hal.log("blank device: formatting a fresh store")
            c = self.cfg
            Store.format(hal.block_device(), c.role, c.node, c.peer, c.group,
                         c.nvol, c.vol_blocks, c.journal_slots, img_slots=c.img_slots)
            self.store = Store(hal.block_device())
            self.store.mount()
        self.node = Node(self.cfg, self.store)
        self.ports = hal.ports()                 # index = PORT_HOST, PORT_BUS, PORT_PEER
        # receive buffers sized for the largest frame each port legitimately carries: a
        # larger one is rejected (bad_length) and counted like any other garbage. Each port
        # keeps its own accumulation buffer (a partial frame survives bytes arriving on the
        # others); the scratch a frame is checked and delivered in is one for all three, since
        # a frame is consumed (Node.on_frame) before any port's deframer runs again
        n = self.node
        sizes = (MAX_HOST_PAYLOAD, MAX_BUS_PAYLOAD, MAX_PAYLOAD)     # index = PORT_*
        scratch = Deframer.scratch_for(sizes)
        self.rx_ports = [PortRx(n, p, Deframer(sizes[p], scratch=scratch))
                         for p in (PORT_HOST, PORT_BUS, PORT_PEER)]
        self.rx = bytearray(_RXBUF)
        self.rxv = memoryview(self.rx)
        self.heap_peak = 0
        self.heap_next = 0
        # node.heap_peak is what STATUS reports; set by name, since Node does not declare it
        setattr(n, "heap_peak", 0)

    def sample_heap(self, now):
        if _mem_alloc is None:
            return
        self.heap_next = ticks_add(now, _HEAP_SAMPLE_US)
        gc.collect()
        m = _mem_alloc()
        if m > self.heap_peak:
            self.heap_peak = m
            setattr(self.node, "heap_peak", m)

    def poll_ports(self, now):
        got = False
        for p in range(len(self.ports)):
            n = self.ports[p].read_into(self.rx)
            if n:
                got = True
                if p == PORT_BUS:
                    # read after the bytes are in: a beacon's time is never taken before it
                    # arrived (the clock error bound's premise; handling the host port may
                    # have taken milliseconds since `now`)
                    now = self.hal.ticks_us()
                self.rx_ports[p].data(now, self.rxv[:n])
            else:
                self.rx_ports[p].idle(now)
        return got

    def flush(self):
        if not self.node.out:         # take_out() makes a new list: not on an idle pass
            return
        for port, frame in self.node.take_out():
            self.ports[port].write(frame)

    def step(self):
        hal = self.hal
        node = self.node
        now = hal.ticks_us()
        self.poll_ports(now)
        self.flush()                  # replies first: timers (e.g. filling the peer link) after
        # the time after the requests' durable writes: a reply held (commit wait) for less
        # than they took is due now, and leaves in this step
        now = hal.ticks_us()
        if node.deferred and ticks_diff(now, node.reply_due) >= 0:
            node.release(now)         # held replies that are due leave before the timers' work
            self.flush()
        if ticks_diff(now, node.next_deadline) >= 0:
            node.tick(now)
            self.flush()
        wait = ticks_diff(node.next_deadline, hal.ticks_us())
        if wait > 0:
            if wait < _SPIN_US and node.deferred and node.reply_due == node.next_deadline:
                return                # a held reply is due next, and soon: loop, don't sleep
            h = ticks_diff(now, self.heap_next)
            if h >= 0 or h < -_HEAP_SAMPLE_US:       # due (or so old that it looks ahead)
                self.sample_heap(now)
            hal.wait(wait if wait < 20000 else 20000)

    def run(self):
        self.node.boot(self.hal.ticks_us())
        last = self.store.x_last
        if self.store.x_repaired and last is not None:
            self.hal.log("torn block repaired: volume %d block %d (rewritten from its write intent)"
                         % (last[0], last[1]))
        self.flush()
        self.sample_heap(self.hal.ticks_us())
        while True:
            self.step()


def run(hal):
    Board(hal).run()
