"""The rig's wiring: site buses and peer links between emulated boards, in one process.

    python -m host_tools.rig.hub --config hub.json

For every board the hub creates two pseudo-terminals, one for the board's bus port and
one for its peer port. The hub keeps the master side (and holds the slave open, so a
board that dies or restarts never hangs the line up); the board opens the slave path
like a UART device node. The hub then moves bytes between the masters with select():

- Site bus (half-duplex, multi-drop): bytes a board transmits go to every other board
  on that bus, paced at the bus baud rate (10 bit times per byte). Boards pace their own
  transmitters, so bytes that arrive are taken to have been on the line during the byte
  times just before their arrival and are passed on at once; bytes that come faster than
  the line rate queue behind the sender's earlier ones. A transmission occupies the line
  from its first byte to its last. When two boards' transmissions overlap in time, every
  overlapping byte still to be delivered is garbled for all receivers (a random byte is
  delivered instead), and the collision is counted.
- Peer link (full duplex, point to point): each direction is paced at the peer baud
  rate, optionally with a fixed extra latency.

Control: a TCP listener on 127.0.0.1 (port in the state file) takes one JSON object per
line and answers one JSON line:
    {"cmd": "ping"}
    {"cmd": "stats"}                          counters per bus, link and board
    {"cmd": "mute", "board": "s1", "rx": true, "tx": false}   bus port of a board:
                                              drop what it would receive / transmit
    {"cmd": "cut", "board": "p1", "on": true} peer link of a board: drop both directions
    {"cmd": "inject", "board": "p1", "port": "bus"|"peer", "hex": "a55c..."}
                                              raw bytes delivered to that board's port
    {"cmd": "quit"}

Config (JSON): {"state_file": path, "bus_baud": B, "peer_baud": B, "peer_latency_us": 0,
"boards": [{"name": "p0", "bus": "P", "peer": "s0"}, ...]}; the state file written at
start-up is {"pid", "control_port", "ports": {name: {"bus": path, "peer": path}}}.
"""
import argparse
import json
import os
import random
import select
import socket
import sys
import time
import tty

_GRAIN_US = 500          # deliver paced bytes in chunks of at least this much line time
_HISTORY_US = 50000      # keep finished transmissions this long for overlap checks


def _now():
    return time.monotonic_ns() // 1000


class Endpoint:
    """The hub's side of one board port (a pty master)."""

    def __init__(self, board, kind):
        self.board = board
        self.kind = kind
        m, s = os.openpty()
        tty.setraw(s)
        os.set_blocking(m, False)
        self.fd = m
        self.hold = s                    # never read: keeps the line up while the board is away
        self.path = os.ttyname(s)
        self.rx_mute = False             # drop what would be delivered to the board
        self.tx_mute = False             # drop what the board transmits
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped = 0                 # deliveries the board's side could not take

    def deliver(self, data):
        if self.rx_mute:
            self.dropped += len(data)
            return
        try:
            n = os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = 0
        self.bytes_out += n
        if n < len(data):
            self.dropped += len(data) - n


class Transmission:
    """Bytes one sender put on a line, occupying it from `start` at one byte per `bt` us."""
    __slots__ = ("src", "start", "data", "sent")

    def __init__(self, src, start):
        self.src = src
        self.start = start
        self.data = bytearray()
        self.sent = 0

    def end(self, bt):
        return self.start + len(self.data) * bt


class Line:
    """A shared medium (a site bus) or one direction of a peer link.

    Senders append bytes; `run(now)` delivers the bytes whose line time has passed to
    the receivers. On a shared line, a byte whose time overlaps another sender's
    transmission is garbled."""

    def __init__(self, name, baud, shared, latency_us=0, rng=None):
        self.name = name
        self.bt = 10000000.0 / baud
        self.shared = shared
        self.latency = latency_us
        self.rng = rng or random.Random(1)
        self.members = []                # endpoints on this line
        self.active = {}                 # src endpoint -> open Transmission
        self.history = []                # finished transmissions (for overlap checks)
        self.last_end = {}               # src endpoint -> end of its last transmission
        self.bytes = 0
        self.garbled = 0
        self.collisions = 0
        self.cut = False

    def send(self, src, data, now):
        """`data` arrived from `src` at `now`. A paced sender's bytes were on the line
        during the len(data) byte times before their arrival; a sender that is faster
        than the line (or a burst after a stall) is queued behind its own earlier bytes
        and delivered at the line rate."""
        bt = self.bt
        self.run(now)                    # deliver what is due and retire ended transmissions
        start = now - len(data) * bt
        t = self.active.get(src)
        if t is not None:
            if start <= t.end(bt) + bt:  # continues (or queues behind) the same transmission
                t.data += data
                self.run(now)
                return
            self._finish(src, t)
        last = self.last_end.get(src)
        if last is not None and start < last:
            start = last
        t = Transmission(src, start)
        if self.shared:
            for o in self.active.values():
                if o.end(bt) > start:
                    self.collisions += 1
        self.active[src] = t
        t.data += data
        self.run(now)

    def _finish(self, src, t):
        self.last_end[src] = t.end(self.bt)
        if self.shared:
            self.history.append((t.start, t.end(self.bt), src))
        del self.active[src]

    def _others(self, src, a, b):
        """Intervals of other senders' transmissions that meet [a, b)."""
        out = []
        for o, t in self.active.items():
            if o is not src and t.start < b and t.end(self.bt) > a:
                out.append((t.start, t.end(self.bt)))
        for s, e, o in self.history:
            if o is not src and s < b and e > a:
                out.append((s, e))
        return out

    def run(self, now):
        bt = self.bt
        lat = self.latency
        for src in list(self.active):
            t = self.active[src]
            done = int((now - lat - t.start) / bt + 1e-6)
            if done > len(t.data):
                done = len(t.data)
            if done > t.sent:
                chunk = bytes(t.data[t.sent:done])
                if self.shared:
                    chunk = self._garble(src, t, t.sent, chunk)
                t.sent = done
                if done > 65536:             # a long stream: forget what is delivered
                    del t.data[:done]
                    t.start += done * bt
                    t.sent = 0
                self.bytes += len(chunk)
                if not self.cut and not src.tx_mute:
                    for m in self.members:
                        if m is not src:
                            m.deliver(chunk)
            if t.sent == len(t.data) and now - lat > t.end(bt) + bt:
                self._finish(src, t)
        if self.history:
            old = now - _HISTORY_US
            self.history = [h for h in self.history if h[1] > old]

    def _garble(self, src, t, first, chunk):
        bt = self.bt
        a0 = t.start + first * bt
        others = self._others(src, a0, a0 + len(chunk) * bt)
        if not others:
            return chunk
        out = bytearray(chunk)
        for i in range(len(chunk)):
            a = a0 + i * bt
            for s, e in others:
                if s < a + bt and e > a:
                    out[i] = self.rng.randrange(256)
                    self.garbled += 1
                    break
        return bytes(out)

    def due(self, now):
        """Next time run() has something to deliver, or None."""
        d = None
        for t in self.active.values():
            if t.sent < len(t.data):
                k = min(len(t.data), t.sent + max(1, int(_GRAIN_US / self.bt)))
                x = t.start + k * self.bt + self.latency
            else:
                x = t.end(self.bt) + 2 * self.bt + self.latency
            if d is None or x < d:
                d = x
        return d

    def stats(self):
        return {"bytes": self.bytes, "garbled": self.garbled, "collisions": self.collisions,
                "cut": self.cut}


class Hub:
    def __init__(self, conf):
        self.conf = conf
        self.rng = random.Random(conf.get("seed", 1))
        bus_baud = conf.get("bus_baud", 115200)
        peer_baud = conf.get("peer_baud", 115200)
        lat = conf.get("peer_latency_us", 0)
        self.eps = {}                    # (name, kind) -> Endpoint
        self.lines = {}                  # name -> Line
        self.line_of = {}                # endpoint -> the line it transmits on
        boards = conf["boards"]
        for b in boards:
            for kind in ("bus", "peer"):
                self.eps[(b["name"], kind)] = Endpoint(b["name"], kind)
        for b in boards:
            bus = b["bus"]
            line = self.lines.get("bus:" + bus)
            if line is None:
                line = self.lines["bus:" + bus] = Line("bus:" + bus, bus_baud, True, rng=self.rng)
            ep = self.eps[(b["name"], "bus")]
            line.members.append(ep)
            self.line_of[ep] = line
        for b in boards:
            other = b.get("peer")
            if other is None:
                continue
            src = self.eps[(b["name"], "peer")]
            dst = self.eps[(other, "peer")]
            line = Line("peer:%s>%s" % (b["name"], other), peer_baud, False, lat, rng=self.rng)
            line.members = [src, dst]
            self.lines[line.name] = line
            self.line_of[src] = line
        self.by_fd = {ep.fd: ep for ep in self.eps.values()}
        self.ctl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ctl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ctl.bind(("127.0.0.1", 0))
        self.ctl.listen(8)
        self.clients = {}                # socket -> input buffer
        self.running = True
        self.started = time.time()

    def state(self):
        return {"pid": os.getpid(), "control_port": self.ctl.getsockname()[1],
                "ports": {name: {kind: self.eps[(name, kind)].path for kind in ("bus", "peer")}
                          for (name, _k) in self.eps}}

    # -- control -------------------------------------------------------------------------
    def _ep(self, req, kind):
        ep = self.eps.get((req.get("board"), kind))
        if ep is None:
            raise ValueError("unknown board %r" % req.get("board"))
        return ep

    def control(self, req):
        cmd = req.get("cmd")
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "stats":
            return {"ok": True, "uptime_s": round(time.time() - self.started, 3),
                    "lines": {n: l.stats() for n, l in self.lines.items()},
                    "ports": {"%s.%s" % k: {"in": e.bytes_in, "out": e.bytes_out,
                                            "dropped": e.dropped, "rx_mute": e.rx_mute,
                                            "tx_mute": e.tx_mute}
                              for k, e in self.eps.items()}}
        if cmd == "mute":
            ep = self._ep(req, "bus")
            if "rx" in req:
                ep.rx_mute = bool(req["rx"])
            if "tx" in req:
                ep.tx_mute = bool(req["tx"])
            return {"ok": True, "rx": ep.rx_mute, "tx": ep.tx_mute}
        if cmd == "cut":
            ep = self._ep(req, "peer")
            on = bool(req.get("on", True))
            self.line_of[ep].cut = on
            for line in self.lines.values():
                if not line.shared and ep in line.members:
                    line.cut = on
            return {"ok": True, "cut": on}
        if cmd == "inject":
            ep = self._ep(req, req.get("port", "bus"))
            data = bytes.fromhex(req["hex"])
            ep.deliver(data)
            return {"ok": True, "bytes": len(data)}
        if cmd == "quit":
            self.running = False
            return {"ok": True}
        raise ValueError("unknown command %r" % cmd)

    def _on_client(self, sock):
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.clients.pop(sock, None)
            sock.close()
            return
        buf = self.clients[sock] + data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                rep = self.control(json.loads(line))
            except Exception as e:          # a bad request gets an error answer
                rep = {"ok": False, "error": str(e)}
            try:
                sock.sendall((json.dumps(rep) + "\n").encode())
            except OSError:
                pass
        self.clients[sock] = buf

    # -- main loop -------------------------------------------------------------------------
    def run(self):
        fds = list(self.by_fd)
        while self.running:
            now = _now()
            timeout = 0.05
            for line in self.lines.values():
                d = line.due(now)
                if d is not None:
                    t = (d - now) / 1e6
                    if t < timeout:
                        timeout = t if t > 0 else 0
            r, _, _ = select.select(fds + [self.ctl] + list(self.clients), (), (), timeout)
            now = _now()
            for x in r:
                if x is self.ctl:
                    c, _ = self.ctl.accept()
                    self.clients[c] = b""
                elif isinstance(x, socket.socket):
                    self._on_client(x)
                else:
                    ep = self.by_fd[x]
                    try:
                        data = os.read(x, 4096)
                    except (BlockingIOError, InterruptedError, OSError):
                        continue
                    if data:
                        ep.bytes_in += len(data)
                        line = self.line_of.get(ep)
                        if line is not None:
                            line.send(ep, data, now)
            for line in self.lines.values():
                if line.active:
                    line.run(now)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.rig.hub",
                                 description="Site buses and peer links for emulated boards.")
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    with open(args.config) as f:
        conf = json.load(f)
    hub = Hub(conf)
    st = conf.get("state_file")
    if st:
        tmp = st + ".tmp"
        with open(tmp, "w") as f:
            json.dump(hub.state(), f, indent=1)
        os.replace(tmp, st)
    sys.stderr.write("hub up: %d ports, control port %d\n"
                     % (len(hub.eps), hub.ctl.getsockname()[1]))
    sys.stderr.flush()
    hub.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
