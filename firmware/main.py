# The board's event loop: HAL ports -> deframers -> Node -> HAL ports.
#
# On a board, boot.py (or the REPL) calls main.run(hal) with the board's HAL
# (boards/rp2_hal.py on an RP2040, boards/emulated.py under CPython). The HAL
# gives: config(), block_device(), ports() -> (host, bus, peer) port objects with
# read_into(buf) -> n (non-blocking) and write(frame), ticks_us() -> monotonic
# microseconds, wait(us) to sleep until input or timeout, and log(msg).
from wire import MAX_PAYLOAD, MAX_HOST_PAYLOAD, MAX_BUS_PAYLOAD
from config import Config
from store import Store, StoreError
from deframer import Deframer
from node import Node, PORT_HOST, PORT_BUS, PORT_PEER

_RXBUF = 512
_QUIET_US = 250000      # a line silent this long mid-frame: the rest of that frame is not coming


class Board:
    def __init__(self, hal):
        self.hal = hal
        self.cfg = Config.from_dict(hal.config())
        self.store = Store(hal.block_device())
        try:
            self.store.mount()
        except StoreError:
            hal.log("no valid superblock: formatting a fresh store")
            c = self.cfg
            Store.format(hal.block_device(), c.role, c.node, c.peer, c.group,
                         c.nvol, c.vol_blocks, c.journal_slots)
            self.store = Store(hal.block_device())
            self.store.mount()
        self.node = Node(self.cfg, self.store)
        self.ports = hal.ports()                 # index = PORT_HOST, PORT_BUS, PORT_PEER
        # receive buffers sized for the largest frame each port legitimately carries: a
        # larger one is rejected (bad_length) and counted like any other garbage
        self.deframers = [Deframer(MAX_HOST_PAYLOAD), Deframer(MAX_BUS_PAYLOAD),
                          Deframer(MAX_PAYLOAD)]
        self.garbage = [0] * len(self.ports)
        self.last_rx = [0] * len(self.ports)
        self.rx = bytearray(_RXBUF)
        self.rxv = memoryview(self.rx)

    def _errors(self, d):
        return (d.bad_magic + d.bad_version + d.bad_hcheck + d.bad_length + d.bad_crc
                + d.overflow + d.abandoned)

    def poll_ports(self, now):
        node = self.node
        got = False
        for p in range(len(self.ports)):
            n = self.ports[p].read_into(self.rx)
            d = self.deframers[p]
            if not n:
                # a frame cut short would keep the deframer waiting for bytes that never
                # come, and the port would stall: give it up once the line is quiet
                if now - self.last_rx[p] > _QUIET_US and d.abandon():
                    while d.next():
                        node.on_frame(now, p, d.mtype, d.flags, d.src, d.dst, d.group,
                                      d.seq, d.ack, d.payload)
                    self._report(now, p, d)
                continue
            got = True
            self.last_rx[p] = now
            d.feed(self.rxv[:n])
            while d.next():
                node.on_frame(now, p, d.mtype, d.flags, d.src, d.dst, d.group,
                              d.seq, d.ack, d.payload)
            self._report(now, p, d)
        return got

    def _report(self, now, p, d):
        e = self._errors(d)
        if e != self.garbage[p]:
            self.node.on_garbage(now, p, e - self.garbage[p])
            self.garbage[p] = e

    def flush(self):
        for port, frame in self.node.take_out():
            self.ports[port].write(frame)

    def step(self):
        hal = self.hal
        now = hal.ticks_us()
        self.poll_ports(now)
        if now >= self.node.next_deadline:
            self.node.tick(now)
        self.flush()
        wait = self.node.next_deadline - hal.ticks_us()
        if wait > 0:
            hal.wait(wait if wait < 20000 else 20000)

    def run(self):
        self.node.boot(self.hal.ticks_us())
        self.flush()
        while True:
            self.step()


def run(hal):
    Board(hal).run()
