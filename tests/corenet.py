"""A hand-steppable network of replication cores for focused protocol tests.

Frames travel instantly (no airtime), in order, through real deframers; any link
can be held (frames queue up) and released, which is how a test replays the
patent's example event by event. Virtual time advances only when the test says so.
The fault-injecting, baud-paced simulator lives in host_tools/sim; this harness
exists to make single protocol steps easy to see.
"""
from firmware.wire import (BLOCK_SIZE, C_FAILOVER, HOST_ID, MODE_CLOCK, POLICY_FREEZE, PORT_BUS,
                           PORT_HOST, PORT_PEER, ROLE_PRIMARY, ROLE_SECONDARY, S_OK,
                           T_H_COMMAND, T_H_READ, T_H_REPLY, T_H_STATUS, T_H_WRITE)
from protocol import hostcodec
from firmware.config import Config
from firmware.deframer import Deframer
from firmware.node import Node
from firmware.store import Store
from firmware.ticks import TICKS_MASK, ticks_diff
from host_tools.sim.disk import RamDisk, FaultyDisk


def block_of(tag, size=BLOCK_SIZE):
    b = (tag.encode() * (size // len(tag) + 1))[:size]
    return bytes(b)


class Board:
    def __init__(self, net, cfg, disk):
        self.net = net
        self.cfg = cfg
        self.disk = disk
        self.alive = False
        self.node = None
        self.deframers = {}
        self.replies = {}          # tag -> (status, body)
        self.reply_flags = {}      # tag -> the reply frame's header flags
        self.errors = []
        self.offset = 0            # this board's clock = net time + offset
        self.rate_ppm = 0          # and runs this much fast (drift)

    def t(self, now):
        # the board's clock as its firmware sees it: 30-bit ticks (a negative offset
        # starts it just below the wrap)
        return (now + self.offset + now * self.rate_ppm // 1000000) & TICKS_MASK

    def start(self, now):
        st = Store(self.disk)
        st.mount()
        self.store = st
        self.node = Node(self.cfg, st)
        self.deframers = {PORT_HOST: Deframer(), PORT_BUS: Deframer(), PORT_PEER: Deframer()}
        self.alive = True
        self.node.boot(self.t(now))

    @property
    def id(self):
        return self.cfg.node


class Net:
    """pairs: number of subsystem pairs. Primary i has id pid(i), secondary sid(i).

    ids: optional list of (primary_id, secondary_id) per pair (1-based pairs)."""

    def __init__(self, pairs=4, ids=None, mode=MODE_CLOCK, policy=POLICY_FREEZE, nvol=1,
                 vol_blocks=64, journal_slots=128, autostart=True, faulty=False, seed=1,
                 clocks=None, **kw):
        """clocks: {board id: (offset_us, drift_ppm)} applied before boot.

        Frames arrive in no time here, so a beacon (which carries the master's time at the
        end of its airtime) arrives early, against the premise of the clock error bound:
        the commit wait is off unless a test asks for it (commit_wait=True)."""
        kw.setdefault("commit_wait", False)
        self.now = 1000
        self.ids = ids or [(i, 100 + i) for i in range(1, pairs + 1)]
        self.pairs = pairs
        self.boards = {}
        self.held = set()          # ("peer", src) / ("bus", src) / ("bus", "P"|"S") / ("busto", dst)
        self.held_in = []          # bus frames waiting for a held receiver: (dst, frame)
        self.queues = []           # pending (link, src_id, port, frame)
        self.tag = 0
        self.trace = []
        import random
        self.rng = random.Random(seed)
        prim = tuple(p for p, s in self.ids)
        sec = tuple(s for p, s in self.ids)
        for p, s in self.ids:
            for me, peer, role, site in ((p, s, ROLE_PRIMARY, prim), (s, p, ROLE_SECONDARY, sec)):
                cfg = Config(node=me, role=role, peer=peer, site_nodes=site, mode=mode,
                             policy=policy, nvol=nvol, vol_blocks=vol_blocks,
                             journal_slots=journal_slots, autostart=autostart, **kw)
                disk = RamDisk(Store.blocks_needed(nvol, vol_blocks, journal_slots))
                if faulty:
                    disk = FaultyDisk(disk, random.Random(self.rng.random()))
                Store.format(disk, role, me, peer, 0, nvol, vol_blocks, journal_slots)
                self.boards[me] = Board(self, cfg, disk)
                self.boards[me].site = "P" if role == ROLE_PRIMARY else "S"   # fixed: roles may swap
        for bid, (off, ppm) in (clocks or {}).items():
            self.boards[bid].offset, self.boards[bid].rate_ppm = off, ppm
        for b in self.boards.values():
            b.start(self.now)
        self.pump()

    # -- topology --------------------------------------------------------------------
    def prim(self, pair):
        return self.boards[self.ids[pair - 1][0]]

    def sec(self, pair):
        return self.boards[self.ids[pair - 1][1]]

    def site_of(self, board):
        return board.site

    # -- delivery --------------------------------------------------------------------
    def _collect(self, b):
        for port, frame in b.node.take_out():
            self.queues.append((port, b.id, frame))

    def _deliver(self, dst, port, frame):
        b = self.boards[dst]
        if not b.alive:
            return
        d = b.deframers[port]
        d.feed(frame)
        while d.next():
            b.node.on_frame(b.t(self.now), port, d.mtype, d.flags, d.src, d.dst, d.group,
                            d.seq, d.ack, bytes(d.payload))
        self._collect(b)

    def _is_held(self, port, src):
        b = self.boards[src]
        if port == PORT_PEER:
            return ("peer", src) in self.held
        if port == PORT_BUS:
            return ("bus", src) in self.held or ("bus", self.site_of(b)) in self.held
        return False

    def pump(self, limit=100000):
        """Deliver everything deliverable now (held links keep their frames)."""
        for b in self.boards.values():
            if b.alive:
                self._collect(b)
        kept = []
        n = 0
        while self.queues and n < limit:
            port, src, frame = self.queues.pop(0)
            n += 1
            sb = self.boards[src]
            if not sb.alive:
                continue
            if self._is_held(port, src):
                kept.append((port, src, frame))
                continue
            if port == PORT_HOST:
                self._host_reply(sb, frame)
            elif port == PORT_PEER:
                self._deliver(sb.cfg.peer, PORT_PEER, frame)
            else:
                for other in self.boards.values():
                    if other.id != src and other.site == sb.site:
                        if ("busto", other.id) in self.held:
                            self.held_in.append((other.id, frame))
                        else:
                            self._deliver(other.id, PORT_BUS, frame)
        self.queues = kept + self.queues

    def _host_reply(self, b, frame):
        d = Deframer()
        d.feed(frame)
        while d.next():
            if d.mtype == T_H_REPLY:
                status = d.payload[0]
                b.replies[d.seq] = (status, bytes(d.payload[1:]))
                b.reply_flags[d.seq] = d.flags
            else:
                b.errors.append((d.mtype, bytes(d.payload)))

    def hold(self, *links):
        self.held.update(links)

    def release(self, *links):
        for l in links:
            self.held.discard(l)
            if l[0] == "busto":
                later = [(d, f) for d, f in self.held_in if d == l[1]]
                self.held_in = [(d, f) for d, f in self.held_in if d != l[1]]
                for d, f in later:
                    self._deliver(d, PORT_BUS, f)
        self.pump()

    # -- time ------------------------------------------------------------------------
    def advance(self, us, step=1000):
        end = self.now + us
        while self.now < end:
            self.now = min(end, self.now + step)
            for b in list(self.boards.values()):
                if b.alive and ticks_diff(b.t(self.now), b.node.next_deadline) >= 0:
                    b.node.tick(b.t(self.now))
            self.pump()

    def settle(self, us=2000000):
        self.advance(us)

    # -- host ------------------------------------------------------------------------
    def request(self, board, mtype, payload=b""):
        self.tag = self.tag % 0xFFFF + 1          # 1..65535: tag 0 is refused
        frame = hostcodec.encode(mtype, HOST_ID, board.id, payload, seq=self.tag)
        self._deliver(board.id, PORT_HOST, frame)
        self.pump()
        return self.tag

    def write(self, board, vol, blk, data):
        tag = self.request(board, T_H_WRITE, bytes([vol]) + blk.to_bytes(4, "little") + data)
        return board.replies.get(tag, (None, b""))[0]

    def read(self, board, vol, blk):
        tag = self.request(board, T_H_READ, bytes([vol]) + blk.to_bytes(4, "little"))
        return board.replies.get(tag, (None, b""))

    def command(self, board, cmd, arg=0, arg2=0):
        buf = bytearray(13)
        hostcodec.pack_h_command(buf, 0, cmd, arg, arg2)
        tag = self.request(board, T_H_COMMAND, bytes(buf))
        return board.replies.get(tag, (None, b""))[0]

    def status(self, board):
        tag = self.request(board, T_H_STATUS)
        st, body = board.replies[tag]
        assert st == S_OK
        return hostcodec.unpack_status_body(body)

    # -- faults ------------------------------------------------------------------------
    def kill(self, board):
        board.alive = False
        self.queues = [q for q in self.queues if q[1] != board.id]

    def reboot(self, board):
        if isinstance(board.disk, FaultyDisk):
            board.disk.power_on()
        board.start(self.now)
        self.pump()

    def disaster(self):
        for p, s in self.ids:
            self.kill(self.boards[p])

    def failover(self):
        """Group failover as the CLI does it: find the newest released checkpoint among
        the secondaries, then recover every secondary to it."""
        best = (0, 0)
        for p, s in self.ids:
            b = self.boards[s]
            if not b.alive:
                continue
            sb = b.store.sb
            cand = (sb.uip_n, sb.uip_t) if sb.uip_n and sb.uip_t > sb.applied_t \
                else (sb.applied_n, sb.applied_t)
            if cand[1] > best[1]:
                best = cand
        return {s: self.command(self.boards[s], C_FAILOVER, best[0], best[1])
                for p, s in self.ids if self.boards[s].alive}
