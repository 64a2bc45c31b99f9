"""The rig agent: one process owns a rig's host ports and serves many CLI invocations over a Unix socket.

    python -m host_tools.rig.agent --dir RIG_DIR

An array's management server in miniature. `arcopy rig up` starts it (unless --no-agent)
and `arcopy rig down` stops it. It opens every board's host port of the rig file (a pty
path or a pyserial URL, locked as any holder locks it), listens on a Unix socket that
only its owner may use (``<dir>/agent.sock``, mode 0600), and registers itself as the
holder of those ports in the per-user port registry (host_tools/transport/serial_client.py),
so that every ``HostClient`` / ``SerialTransport`` opening one of them is routed here
instead of fighting over the line: `arcopy status --watch` runs while `arcopy workload`
drives the same boards.

One select() loop; on the socket, length-prefixed messages (serial_client.pack_msg):
a client says hello with the board it wants, then sends whole wire frames. Requests are
multiplexed by tag: each request gets a tag of the agent's own on the board's port, and
its reply goes back to the client that sent it, with the client's tag. Replies with tag 0
(the board's answers to garbage) go to every client of that board; raw bytes (b"R") go on
the line unchanged. When a board's port closes (the board died), its clients are told
("gone") and disconnected, as a direct port would fail; the port is opened again when a
client asks for the board and its port is back (an emulated board's new pty, or the hub's
TCP port accepting again).

Files: ``<dir>/agent.state`` {pid, socket} once it serves; ``<dir>/agent.log``.
"""
import argparse
import json
import os
import select
import signal
import socket
import sys
import time

import serial

from firmware import wire
from firmware.deframer import Deframer

from host_tools.transport import serial_client as sc

SOCKET_NAME = "agent.sock"
STATE_NAME = "agent.state"
_TAG_TTL_S = 120.0          # a request whose reply never came is forgotten after this long
_MAX_TX = 16 << 20          # a client that does not read its replies is dropped past this


def socket_path(d):
    """The agent's socket in rig directory d (or, if that path is too long for a Unix
    socket, one in the per-user port directory named after it)."""
    p = os.path.join(os.path.abspath(d), SOCKET_NAME)
    if len(p.encode()) <= 100:
        return p
    import hashlib
    return os.path.join(sc.ports_dir(), "agent-%s.sock" % hashlib.sha1(p.encode()).hexdigest()[:16])


class Conn:
    """One client connection."""

    def __init__(self, sock):
        self.sock = sock
        self.rx = bytearray()
        self.tx = bytearray()
        self.port = None
        self.who = "?"
        self.closed = False

    def send(self, kind, body):
        if self.closed:
            return
        self.tx += sc.pack_msg(kind, body)
        self.flush()

    def flush(self):
        while self.tx and not self.closed:
            try:
                n = self.sock.send(self.tx)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.closed = True
                break
            del self.tx[:n]
        if len(self.tx) > _MAX_TX:
            self.closed = True


class Port:
    """One board's host port, held by the agent."""

    def __init__(self, name, url, baud, what):
        self.name = name
        self.url = url
        self.baud = baud
        self.what = what
        self.ser = None
        self.ident = None
        self.dead_ident = None      # the pty of a board that died: not opened again
        self.clients = set()
        self.tags = {}              # agent tag -> (Conn, client tag, time sent)
        self._tag = 0
        self.deframer = Deframer(wire.MAX_PAYLOAD)
        self.requests = 0
        self.replies = 0

    def open(self):
        self.close()
        ident = sc.port_ident(self.url)
        self.ser = sc.open_port(self.url, self.baud, what=self.what)
        self.ident = ident
        self.deframer = Deframer(wire.MAX_PAYLOAD)

    def close(self):
        if self.ser is not None:
            self.dead_ident = self.ident
            try:
                self.ser.close()
            except Exception:
                pass
        self.ser = None
        self.tags.clear()

    def down(self):
        """Is the port the dead pty of a board that has not come back?"""
        return (self.ser is None and self.dead_ident is not None
                and sc.port_ident(self.url) == self.dead_ident)

    def stale(self):
        """Closed, or an emulated board's port symlink now names another pty."""
        return self.ser is None or (not sc.is_url(self.url) and sc.port_ident(self.url) != self.ident)

    def new_tag(self):
        for _ in range(65535):
            self._tag = self._tag % 65535 + 1
            if self._tag not in self.tags:
                return self._tag
        raise RuntimeError("65535 requests outstanding on %s" % self.name)


class Agent:
    def __init__(self, rig, sock_path):
        self.rig = rig
        self.sock_path = sock_path
        what = "arcopy rig agent, socket %s" % sock_path
        self.ports = {b["name"]: Port(b["name"], b["host"], rig.get("host_baud", 1000000), what)
                      for b in rig["boards"] if b.get("host")}
        self.conns = {}             # socket -> Conn
        self.running = True
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.lsock.bind(sock_path)
        finally:
            os.umask(old)
        os.chmod(sock_path, 0o600)
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        for p in self.ports.values():
            try:
                p.open()
            except Exception as e:
                log("%s: host port %s not open yet: %s" % (p.name, p.url, e))
            sc.register_agent(p.url, sock_path, p.name, rig["dir"])

    # -- ports ---------------------------------------------------------------------------------
    def port_down(self, p, why):
        p.close()
        for c in list(p.clients):
            c.send(b"J", json.dumps({"event": "gone", "why": "%s: %s" % (p.url, why)}).encode())
            self.drop(c)
        p.clients.clear()

    def on_port(self, p):
        try:
            data = p.ser.read(max(p.ser.in_waiting, 4096))
        except (serial.SerialException, OSError) as e:
            self.port_down(p, "host port closed (%s)" % e)
            return
        d = p.deframer
        mv = memoryview(data)
        for off in range(0, len(mv), 512):
            d.feed(mv[off:off + 512])
            while d.next():
                frame = bytes(d.frame)
                flags, tag = sc.frame_tag(frame)
                if not flags & wire.F_REPLY:
                    continue
                if tag == 0:                       # an answer to garbage: everyone's business
                    for c in p.clients:
                        c.send(b"F", frame)
                    continue
                ent = p.tags.pop(tag, None)
                if ent is None:
                    continue
                c, ctag, _ = ent
                if c in p.clients:
                    p.replies += 1
                    c.send(b"F", sc.retag(frame, ctag))

    def write(self, p, data):
        try:
            p.ser.write(data)
            return True
        except (serial.SerialException, OSError) as e:
            self.port_down(p, "write failed (%s)" % e)
            return False

    # -- clients -------------------------------------------------------------------------------
    def drop(self, c):
        if c.port is not None:
            c.port.clients.discard(c)
        c.flush()
        c.closed = True
        self.conns.pop(c.sock, None)
        try:
            c.sock.close()
        except OSError:
            pass

    def on_conn(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(c)
            return
        c.rx += data
        for kind, body in sc.unpack_msgs(c.rx):
            if c.closed:
                break
            if kind == b"J":
                self.on_json(c, body)
            elif c.port is None:
                self.drop(c)
            elif c.port.ser is None:
                self.port_down(c.port, "host port closed")
            elif kind == b"F":
                if len(body) < wire.HDR_SIZE + 4:
                    continue
                p = c.port
                tag = p.new_tag()
                p.tags[tag] = (c, sc.frame_tag(body)[1], time.monotonic())
                p.requests += 1
                self.write(p, sc.retag(body, tag))
            elif kind == b"R":
                self.write(c.port, body)
        if c.closed:
            self.drop(c)

    def on_json(self, c, body):
        try:
            req = json.loads(body)
        except ValueError:
            req = {}
        if "hello" in req:
            c.who = "PID %s (%s)" % (req.get("pid"), req.get("what", "?"))
            p = self.ports.get(req["hello"])
            if p is None:
                c.send(b"J", json.dumps({"ok": False, "error": "no board %r on this rig"
                                         % req["hello"]}).encode())
                return
            if p.stale():
                self.port_down(p, "host port changed")
                try:
                    if p.down():
                        raise OSError("the board is down (its host port closed)")
                    p.open()
                except Exception as e:
                    c.send(b"J", json.dumps({"ok": False, "busy": isinstance(e, sc.PortBusy),
                                             "error": "host port does not open: %s" % e}).encode())
                    return
            c.port = p
            p.clients.add(c)
            c.send(b"J", json.dumps({"ok": True, "board": p.name}).encode())
        elif req.get("cmd") == "stats":
            c.send(b"J", json.dumps({"ok": True, "pid": os.getpid(), "clients": len(self.conns),
                                     "ports": {n: {"open": p.ser is not None, "clients": len(p.clients),
                                                   "requests": p.requests, "replies": p.replies,
                                                   "outstanding": len(p.tags)}
                                               for n, p in self.ports.items()}}).encode())
        else:
            c.send(b"J", json.dumps({"ok": False, "error": "unknown request"}).encode())

    # -- loop ------------------------------------------------------------------------------------
    def housekeeping(self):
        now = time.monotonic()
        for p in self.ports.values():
            if p.ser is not None and p.clients and p.stale():
                self.port_down(p, "host port changed (the board restarted)")
            old = [t for t, e in p.tags.items() if now - e[2] > _TAG_TTL_S or e[0].closed]
            for t in old:
                del p.tags[t]

    def run(self):
        last = time.monotonic()
        while self.running:
            rl = [self.lsock] + list(self.conns)
            by_fd = {}
            for p in self.ports.values():
                if p.ser is not None:
                    by_fd[p.ser.fileno()] = p
            rl += list(by_fd)
            wl = [c.sock for c in self.conns.values() if c.tx]
            try:
                r, w, _ = select.select(rl, wl, (), 0.25)
            except (OSError, ValueError):
                r, w = [], []
            for s in w:
                c = self.conns.get(s)
                if c is not None:
                    c.flush()
                    if c.closed:
                        self.drop(c)
            for x in r:
                if x is self.lsock:
                    try:
                        s, _ = self.lsock.accept()
                    except OSError:
                        continue
                    s.setblocking(False)
                    self.conns[s] = Conn(s)
                elif isinstance(x, socket.socket):
                    c = self.conns.get(x)
                    if c is not None:
                        self.on_conn(c)
                else:
                    p = by_fd.get(x)
                    if p is not None and p.ser is not None:
                        self.on_port(p)
            if time.monotonic() - last >= 0.25:
                last = time.monotonic()
                self.housekeeping()

    def close(self):
        for c in list(self.conns.values()):
            self.drop(c)
        for p in self.ports.values():
            p.close()
            sc.unregister_agent(p.url)
        try:
            self.lsock.close()
            os.unlink(self.sock_path)
        except OSError:
            pass


def log(msg):
    sys.stderr.write("%.3f agent: %s\n" % (time.time(), msg))
    sys.stderr.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.rig.agent",
                                 description="Own a rig's host ports; serve arcopy commands on a Unix socket.")
    ap.add_argument("--dir", required=True)
    args = ap.parse_args(argv)
    d = os.path.abspath(args.dir)
    from host_tools.rig import manager as rigmgr
    rig = rigmgr.load(d)
    sock = socket_path(d)
    agent = Agent(rig, sock)

    def stop(*_):
        agent.running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    st = os.path.join(d, STATE_NAME)
    with open(st + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "socket": sock}, f)
    os.replace(st + ".tmp", st)
    log("up: %d host ports, socket %s" % (len(agent.ports), sock))
    try:
        agent.run()
    finally:
        agent.close()
        log("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
