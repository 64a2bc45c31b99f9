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

Host ports on TCP (config "host_tcp": {"bind": "127.0.0.1"}, `arcopy rig up --tcp`): the hub
also serves every board's host port on a TCP port of its own, so a rig can be driven from
another machine as socket://ADDR:PORT. It listens on loopback unless told otherwise. The hub
opens the board's host pty (the symlink "host_link", locked like any holder locks it) and
moves bytes both ways; it reopens the pty when the board restarts. One client program per
port (its process may connect several times): a connection from another process is told
"arcopy: port busy (held by PID ...)" and disconnected. While the board
is down the port does not accept (connections are refused), and a connected client is
disconnected when the board dies, as a pty would hang up.

Config (JSON): {"state_file": path, "bus_baud": B, "peer_baud": B, "peer_latency_us": 0,
"boards": [{"name": "p0", "bus": "P", "peer": "s0", "host_link": path}, ...],
"host_tcp": {"bind": addr, "baud": B} (optional)}; the state file written at start-up is
{"pid", "control_port", "ports": {name: {"bus": path, "peer": path}}, "host_tcp": {name: port}}.
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

from host_tools.transport import serial_client as sc

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
            # every transmission of another sender that overlaps this one: still open, or
            # already over (a sender that hands over whole frames shows one only at its end)
            for o in self.active.values():
                if o.end(bt) > start:
                    self.collisions += 1
            for s, e, o in self.history:
                if o is not src and e > start:
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


def tcp_peer_pids(socks, my_port):
    """PIDs of the local processes at the other end of accepted TCP sockets `socks` (found in
    /proc/net/tcp and /proc/*/fd); -> list, None where not found (another host, another user)."""
    want = {}
    try:
        ports = [s.getpeername()[1] for s in socks]
        with open("/proc/net/tcp") as f:
            for line in f.read().splitlines()[1:]:
                x = line.split()
                lp, rp = int(x[1].split(":")[1], 16), int(x[2].split(":")[1], 16)
                if rp == my_port and lp in ports:
                    want["socket:[%s]" % x[9]] = lp
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid() or len(found) == len(want):
                continue
            try:
                for fd in os.listdir("/proc/%s/fd" % pid):
                    lp = want.get(os.readlink("/proc/%s/fd/%s" % (pid, fd)))
                    if lp is not None:
                        found[lp] = int(pid)
            except OSError:
                continue
        return [found.get(p) for p in ports]
    except (OSError, ValueError, IndexError):
        return [None] * len(socks)


class HostBridge:
    """One board's host port served on TCP, bridged to the board's pty: one client program
    at a time (several connections of that one process share the line: what the board sends
    goes to each of them, and HostClient gives the clients of one process distinct tags)."""

    def __init__(self, name, link, bind, baud):
        self.name = name
        self.link = link
        self.bind = bind
        self.baud = baud
        self.port = 0
        self.lsock = None
        self.listening = False
        self._bind()
        self.clients = {}               # socket -> bytes to send it
        self.holder = None              # PID of the process whose connections these are
        self.ser = None
        self.ident = None
        self.tty = None                 # the pty being served
        self.dead_ident = None          # the pty of a board that died: never opened again
        self.accepted = 0
        self.refused_busy = 0

    def _bind(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.bind, self.port))
        s.setblocking(False)
        self.port = s.getsockname()[1]
        self.lsock = s
        self.listening = False

    def poll(self):
        """Open the board's (new) host pty when it is up; stop serving when it is gone."""
        ident = sc.port_ident(self.link)
        if self.ser is not None:
            if ident == self.ident:
                return
            self.board_gone()
        if ident is None or ident == self.dead_ident:
            return
        try:
            self.ser = sc.open_port(self.link, self.baud,
                                    what="arcopy hub, TCP host port %s of %s" % (self.port, self.name))
        except Exception:
            self.ser = None
            return
        self.ident = ident
        self.tty = ident[-1]
        if not self.listening:
            self.lsock.listen(4)
            self.listening = True

    def drop_client(self, c=None):
        for x in ([c] if c is not None else list(self.clients)):
            self.clients.pop(x, None)
            try:
                x.close()
            except OSError:
                pass
        if not self.clients:
            self.holder = None

    def board_gone(self):
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:
                pass
        self.ser = None
        self.dead_ident = self.ident
        self.drop_client()
        if self.listening:               # refuse connections until the board is back
            self.lsock.close()
            self._bind()

    def fds(self):
        out = []
        if self.listening:
            out.append(self.lsock)
        out.extend(self.clients)
        if self.ser is not None:
            out.append(self.ser.fileno())
        return out

    def on_accept(self):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        if self.clients:
            first = next(iter(self.clients))
            if self.holder is None:
                self.holder, new = tcp_peer_pids([first, c], self.port)
            else:
                new = tcp_peer_pids([c], self.port)[0]
            if new is None or new != self.holder:
                try:
                    who = "PID %d" % self.holder if self.holder else "%s:%d" % first.getpeername()[:2]
                except OSError:
                    who = "another client"
                try:
                    c.sendall(b"arcopy: port busy (held by %s)\r\n" % who.encode())
                except OSError:
                    pass
                c.close()
                self.refused_busy += 1
                return
        c.setblocking(False)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.clients[c] = bytearray()
        self.accepted += 1

    def on_client(self, c):
        try:
            data = c.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop_client(c)
            return
        if self.ser is not None:
            try:
                self.ser.write(data)
            except Exception:
                self.board_gone()

    def on_port(self):
        try:
            data = self.ser.read(max(self.ser.in_waiting, 4096))
        except Exception:
            self.board_gone()
            return
        if data:
            for c, buf in list(self.clients.items()):
                buf += data
                self.flush(c)

    def flush(self, c):
        buf = self.clients.get(c)
        while buf:
            try:
                n = c.send(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.drop_client(c)
                return
            del buf[:n]
        if buf is not None and len(buf) > (1 << 20):
            self.drop_client(c)

    def stats(self):
        return {"port": self.port, "bind": self.bind, "board_up": self.ser is not None,
                "tty": self.tty if self.ser is not None else None, "listening": self.listening,
                "clients": len(self.clients), "holder": self.holder, "accepted": self.accepted,
                "refused_busy": self.refused_busy}


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
        self.bridges = {}                # board name -> HostBridge (host ports on TCP)
        tcp = conf.get("host_tcp")
        if tcp:
            for b in boards:
                if b.get("host_link"):
                    self.bridges[b["name"]] = HostBridge(b["name"], b["host_link"],
                                                         tcp.get("bind", "127.0.0.1"),
                                                         tcp.get("baud", 1000000))
        self.running = True
        self.started = time.time()

    def state(self):
        return {"pid": os.getpid(), "control_port": self.ctl.getsockname()[1],
                "ports": {name: {kind: self.eps[(name, kind)].path for kind in ("bus", "peer")}
                          for (name, _k) in self.eps},
                "host_tcp": {n: br.port for n, br in self.bridges.items()}}

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
                              for k, e in self.eps.items()},
                    "host_tcp": {n: br.stats() for n, br in self.bridges.items()}}
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
        next_poll = 0.0
        while self.running:
            if self.bridges and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 0.1
                for br in self.bridges.values():
                    br.poll()
            bfds = {}
            for br in self.bridges.values():
                for x in br.fds():
                    bfds[x] = br
            now = _now()
            timeout = 0.05
            for line in self.lines.values():
                d = line.due(now)
                if d is not None:
                    t = (d - now) / 1e6
                    if t < timeout:
                        timeout = t if t > 0 else 0
            wl = [c for br in self.bridges.values() for c, buf in br.clients.items() if buf]
            r, w, _ = select.select(fds + [self.ctl] + list(self.clients) + list(bfds), wl, (),
                                    timeout)
            now = _now()
            for x in w:
                for br in self.bridges.values():
                    if x in br.clients:
                        br.flush(x)
            for x in r:
                br = bfds.get(x)
                if br is not None:
                    if x is br.lsock and br.listening:
                        br.on_accept()
                    elif x in br.clients:
                        br.on_client(x)
                    elif br.ser is not None and not isinstance(x, socket.socket):
                        br.on_port()
                    continue
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
    from host_tools.rig.board import punctual_timers
    punctual_timers()
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
