"""The serial transport: a rig's host ports over pyserial (HostClient per port, SerialTransport over a rig).

It works the same on a real board's USB serial port and on an emulated board's
pseudo-terminal: it only speaks the wire protocol (protocol/SPEC.md).

    t = SerialTransport.from_rig(rig)       # the host_tools.transport.Transport of a rig file
    t.request("s0", T_H_STATUS)             -> Reply

    c = HostClient("/dev/ttyACM0")          # one port (or the rig's host port path)
    c.write(0, 17, data)            -> status
    c.read(0, 17)                   -> (status, 512 bytes or b"")
    c.status()                      -> dict (STATUS body fields, plus decoded names)
    c.command(C_FAILOVER, n, t)     -> status
    c.command_reply(cmd, a, a2)     -> Reply (status and body)
    c.dirty_list(vol, vol_blocks)   -> blocks marked in the change bitmap (C_DIRTY_LIST)
    c.request(mtype, payload)       -> Reply(status, body, mtype, tag, error)

Requests carry a 16-bit tag in the header's seq field (never 0: the board tags
replies to garbage with 0); the reply is the frame with the REPLY flag and the same
tag: an H_REPLY (status byte + body) or an ERROR (code, offending type, detail).
``request`` waits for the matching reply, skips stale ones, and retries on timeout
only when the request is idempotent (status, read: ``idempotent=True``, the default
for those helpers). Writes and commands are never sent twice by this module.

For pipelined use (many requests outstanding, several boards, one select loop):
``send()`` returns the tag, ``pump()`` reads what has arrived and returns the new
replies, ``fileno()`` is for select.

Ports: every port opens through ``serial.serial_for_url`` (``open_port``), so a device path,
``socket://host:port`` or ``rfc2217://host:port`` all work. A port is held by one program at
a time: a local device (or pty) is locked with ``fcntl.flock`` on its file descriptor (the
lock mpremote takes too), and the holder writes its PID in a note, so a second program gets
``PortBusy`` "port busy (held by PID ...)"; the rig hub's TCP host ports take one client each
and tell a second one the same. A port that a rig agent (host_tools/rig/agent.py) holds is
reached through the agent instead: ``HostClient`` looks the port up in the per-user port
registry and, when an agent serves it, talks to it over the agent's Unix socket
(``AgentPort``, a serial-like object), so several programs share the port without stealing
each other's replies.
"""
import errno
import fcntl
import hashlib
import json
import os
import select
import socket
import struct
import sys
import tempfile
import threading
import time
import zlib

import serial

from firmware import wire
from firmware.deframer import Deframer

from host_tools import transport
from host_tools.transport import Transport
from host_tools.transport import messages
from host_tools.transport.messages import unpack_dirty_list as _unpack_dirty_list


class ClientError(transport.TransportError):
    """A host-port request that failed (no reply, port gone, refused)."""


class Timeout(ClientError, transport.Timeout):
    """No matching reply in time."""


class PortGone(ClientError, transport.BoardGone):
    """The port closed under us (the board died, or the cable was pulled)."""


class PortBusy(PortGone):
    """Another program holds the port ("port busy (held by PID ...)")."""


# -- opening ports: URLs, exclusive locks, the port registry ---------------------------------------
BUSY_PREFIX = b"arcopy: port busy"         # what the rig hub says to a second TCP client


def is_url(port):
    """Is `port` a pyserial URL (socket://, rfc2217://, loop://, ...) rather than a device path?"""
    return isinstance(port, str) and "://" in port


def port_key(port):
    """The name a port is registered under: the URL as given, or the absolute device path."""
    return port if is_url(port) else os.path.abspath(port)


def ports_dir():
    """The per-user directory of port notes (lock holders) and agent registrations."""
    d = os.environ.get("ARCOPY_PORTS_DIR") or os.path.join(
        tempfile.gettempdir(), "arcopy-ports-%d" % os.getuid())
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def _note_path(kind, key):
    return os.path.join(ports_dir(), "%s-%s.json" % (kind, hashlib.sha1(key.encode()).hexdigest()[:20]))


def _write_note(path, obj):
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def _read_note(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _me():
    """What this process is, for a port note: 'arcopy workload --rate 40', 'python -c', ..."""
    argv = list(sys.argv) or ["python"]
    name = os.path.basename(argv[0])
    if name in ("cli.py", "__main__.py", "arcopy") or argv[0].endswith("host_tools/cli.py"):
        name = "arcopy"
    elif name in ("-c", "-m", ""):
        name = "python " + (name or "-")
    return " ".join([name] + argv[1:])[:160]


def describe_holder(note):
    """'PID 123 (arcopy workload ...)' from a port note, or None if its holder is gone."""
    if not note or not _pid_alive(note.get("pid")):
        return None
    what = note.get("what")
    return "PID %d%s" % (note["pid"], " (%s)" % what if what else "")


_held = {}          # realpath of a locked local device -> [dup'ed fd holding the flock, users]


def _lock_local(path, fd, what=None):
    """Take the exclusive lock of local device `path` (open as `fd`) for this process; a
    process may open a port it holds again (its clients share the lock). Raises PortBusy."""
    real = os.path.realpath(path)
    ent = _held.get(real)
    if ent is not None:
        ent[1] += 1
        return real
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        who = describe_holder(_read_note(_note_path("lock", real))) or "another process"
        raise PortBusy("%s: port busy (held by %s)" % (path, who))
    _held[real] = [os.dup(fd), 1]
    try:
        _write_note(_note_path("lock", real), {"pid": os.getpid(), "port": path,
                                               "what": what or _me(), "time": time.time()})
    except OSError:
        pass
    return real


def _unlock_local(real):
    ent = _held.get(real)
    if ent is None:
        return
    ent[1] -= 1
    if ent[1] > 0:
        return
    del _held[real]
    path = _note_path("lock", real)
    note = _read_note(path)
    if note and note.get("pid") == os.getpid():
        try:
            os.unlink(path)
        except OSError:
            pass
    os.close(ent[0])


class _Port:
    """A pyserial port opened by open_port: closing it releases the port's lock."""

    def __init__(self, ser, real):
        self._ser = ser
        self._real = real

    def __getattr__(self, name):
        return getattr(self._ser, name)

    @property
    def in_waiting(self):
        return self._ser.in_waiting

    def close(self):
        try:
            self._ser.close()
        finally:
            if self._real is not None:
                real, self._real = self._real, None
                _unlock_local(real)


def open_port(url, baud=1000000, what=None):
    """Open `url` (a device path or a pyserial URL) with serial.serial_for_url, non-blocking
    reads; a local device is locked for this process. -> serial-like object. Raises PortBusy
    when another program holds it, serial.SerialException / OSError when it does not open."""
    ser = serial.serial_for_url(url, baud, timeout=0, write_timeout=5)
    sock = getattr(ser, "_socket", None)
    if sock is not None:            # socket:// and rfc2217://: small frames, no Nagle delay
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    real = None
    if not is_url(url):
        try:
            real = _lock_local(url, ser.fileno(), what)
        except Exception:
            ser.close()
            raise
    return _Port(ser, real)


# -- the agent registry: which ports a rig agent holds, and its socket ---------------------------------
def register_agent(port, sock, board, rig_dir):
    _write_note(_note_path("agent", port_key(port)), {"pid": os.getpid(), "socket": sock,
                                                      "board": board, "dir": rig_dir,
                                                      "port": port})


def unregister_agent(port):
    path = _note_path("agent", port_key(port))
    note = _read_note(path)
    if note and note.get("pid") == os.getpid():
        try:
            os.unlink(path)
        except OSError:
            pass


def agent_for(port):
    """(socket path, board name) of the live rig agent that holds `port`, or None."""
    if not isinstance(port, str):
        return None
    note = _read_note(_note_path("agent", port_key(port)))
    if not note or note.get("pid") == os.getpid() or not _pid_alive(note.get("pid")):
        return None
    if not os.path.exists(note.get("socket", "")):
        return None
    return note["socket"], note["board"]


# -- the agent's socket protocol: length-prefixed messages ---------------------------------------------
# u32 big-endian length of what follows, then one kind byte and the body:
#   b"J" + JSON object   (hello {"hello": board, "pid", "what"} -> {"ok": true} | {"ok": false,
#                          "error": text, "busy": bool}; {"event": "gone", "why": text})
#   b"F" + one wire frame (a request; its reply comes back with the request's own tag)
#   b"R" + raw bytes     (put on the line as they are: tests of garbage)
def pack_msg(kind, body):
    return struct.pack(">I", len(body) + 1) + kind + body


def unpack_msgs(buf):
    """Take every complete message off the front of bytearray `buf`; -> [(kind, body)]."""
    out = []
    while len(buf) >= 5:
        n = struct.unpack_from(">I", buf, 0)[0]
        if len(buf) < 4 + n:
            break
        out.append((bytes(buf[4:5]), bytes(buf[5:4 + n])))
        del buf[:4 + n]
    return out


def whole_frame(data):
    """Is `data` exactly one well-formed wire frame (header check and CRC right)?"""
    n = len(data)
    if n < wire.HDR_SIZE + 4 or data[0] != wire.MAGIC0 or data[1] != wire.MAGIC1:
        return False
    if struct.unpack_from("<H", data, 12)[0] + wire.HDR_SIZE + 4 != n:
        return False
    if zlib.crc32(bytes(data[:14])) & 0xFFFF != struct.unpack_from("<H", data, 14)[0]:
        return False
    return zlib.crc32(bytes(data[:n - 4])) == struct.unpack_from("<I", data, n - 4)[0]


def frame_tag(frame):
    """-> (flags, tag) of a wire frame."""
    return frame[4], struct.unpack_from("<H", frame, 8)[0]


def retag(frame, tag):
    """The same frame with `tag` in its seq field (header check and CRC recomputed)."""
    f = bytearray(frame)
    n = len(f)
    struct.pack_into("<H", f, 8, tag)
    struct.pack_into("<H", f, 14, zlib.crc32(bytes(f[:14])) & 0xFFFF)
    struct.pack_into("<I", f, n - 4, zlib.crc32(bytes(f[:n - 4])))
    return bytes(f)


class AgentUnreachable(PortGone):
    """The registered agent does not listen (it died without cleaning up)."""


class AgentPort:
    """A board's host port reached through a rig agent's Unix socket, as a serial-like object
    (read / write / in_waiting / fileno / reset_input_buffer / close) for HostClient."""

    def __init__(self, sock_path, board, port, timeout=5.0):
        self.port = port
        self.board = board
        self.gone = None
        self._rx = bytearray()
        self._in = bytearray()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(sock_path)
        except (ConnectionRefusedError, FileNotFoundError) as e:
            s.close()
            raise AgentUnreachable("%s: rig agent %s: %s" % (port, sock_path, e))
        try:
            s.sendall(pack_msg(b"J", json.dumps({"hello": board, "pid": os.getpid(),
                                                 "what": _me()}).encode()))
            rep = None
            while rep is None:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("the agent closed the connection")
                self._rx += chunk
                for kind, body in unpack_msgs(self._rx):
                    if kind == b"J" and rep is None:
                        rep = json.loads(body)
                    elif kind == b"F":
                        self._in += body
        except (OSError, ValueError) as e:
            s.close()
            raise PortGone("%s: rig agent %s: %s" % (port, sock_path, e))
        if not rep.get("ok"):
            s.close()
            raise (PortBusy if rep.get("busy") else PortGone)("%s: %s" % (port, rep.get("error")))
        s.settimeout(None)          # blocking sends (the agent never blocks); reads use MSG_DONTWAIT
        self.sock = s

    def fileno(self):
        return self.sock.fileno()

    def _fill(self):
        while self.gone is None:
            try:
                chunk = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.gone = str(e)
                break
            if not chunk:
                self.gone = "the rig agent closed the connection"
                break
            self._rx += chunk
        for kind, body in unpack_msgs(self._rx):
            if kind == b"F":
                self._in += body
            elif kind == b"J":
                ev = json.loads(body)
                if ev.get("event") == "gone":
                    self.gone = ev.get("why") or "board gone"

    @property
    def in_waiting(self):
        self._fill()
        return len(self._in)

    def read(self, n=1):
        if not self._in:            # never leave bytes taken off the socket behind select()
            self._fill()
        if not self._in and self.gone is not None:
            raise serial.SerialException(self.gone)
        out = bytes(self._in[:n])
        del self._in[:n]
        return out

    def write(self, data):
        if self.gone is not None:
            raise serial.SerialException(self.gone)
        kind = b"F" if whole_frame(data) else b"R"
        try:
            self.sock.sendall(pack_msg(kind, bytes(data)))
        except OSError as e:
            self.gone = str(e)
            raise serial.SerialException(self.gone)
        return len(data)

    def reset_input_buffer(self):
        self._fill()
        self._in.clear()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def unpack_dirty_list(body):
    """C_DIRTY_LIST reply body (after the status byte) -> (count, next_block, [blocks])."""
    try:
        return _unpack_dirty_list(body)
    except messages.Refused as e:
        raise ClientError(str(e))


_tag_lock = threading.Lock()
_tag_next = {}          # port key -> last tag handed out in this process


class HostClient:
    """One board's host port.

    port: device path or pyserial URL (socket://HOST:PORT, rfc2217://HOST:PORT), reached
    through the rig agent when one holds it (direct=True: never; the agent itself), else
    opened and held exclusively (PortBusy if another program holds it); or an open
    serial-like object with read/write/in_waiting/fileno;
    baud: line rate (ignored by USB and pty ports); timeout: seconds per attempt;
    retries: extra attempts for idempotent requests; node: destination id in the
    header (BROADCAST = whichever board is on the port; a board answers only its own
    id or BROADCAST, and never a request tagged 0: see protocol/SPEC.md section 8)."""

    def __init__(self, port, baud=1000000, timeout=1.0, retries=2, node=wire.BROADCAST,
                 direct=False):
        self._busy_check = False
        self._head = bytearray()
        if isinstance(port, str):
            agent = None if direct else agent_for(port)
            self.ser = None
            if agent is not None:
                try:
                    self.ser = AgentPort(agent[0], agent[1], port)
                except AgentUnreachable:
                    self.ser = None         # a stale registration: open the port directly
            if self.ser is None:
                self.ser = open_port(port, baud)
                self._busy_check = port.startswith("socket://")
            self.path = port
        else:
            self.ser = port
            self.path = getattr(port, "port", "?")
        try:
            self.ser.reset_input_buffer()
        except Exception:
            pass
        self.timeout = timeout
        self.retries = retries
        self.node = node
        self.deframer = Deframer(wire.MAX_PAYLOAD)
        self._tag = 0
        self._tag_key = port_key(port) if isinstance(port, str) else id(self)
        self.pending = set()          # tags sent and not answered
        self.replies = {}             # tag -> Reply, answers not yet taken
        self.unsolicited = []         # ERROR frames with tag 0 (answers to garbage), (code, mtype, detail)
        self.stale = 0                # replies to tags nobody waits for
        self.gone = False
        self.sent = 0
        self.received = 0

    # -- plumbing ---------------------------------------------------------------------------
    def fileno(self):
        return self.ser.fileno()

    def close(self):
        try:
            self.ser.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _next_tag(self):
        # tags come from one counter per port in this process, so that clients of one process
        # on one port (which the rig hub's TCP port lets share the line) never share a tag
        with _tag_lock:
            for _ in range(65535):
                t = _tag_next.get(self._tag_key, 0) % 65535 + 1
                _tag_next[self._tag_key] = t
                if t not in self.pending and t not in self.replies:
                    self._tag = t
                    return t
        raise ClientError("65535 requests outstanding")

    def send_raw(self, data):
        """Put raw bytes on the line (tests: garbage, truncated frames)."""
        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as e:
            self.gone = True
            raise PortGone("%s: %s" % (self.path, e))

    def send(self, mtype, payload=b""):
        """Send one request; -> its tag."""
        if self.gone:
            raise PortGone(self.path)
        tag = self._next_tag()
        frame = messages.encode_request(mtype, self.node, payload, tag)
        self.send_raw(frame)
        self.pending.add(tag)
        self.sent += 1
        return tag

    def pump(self, keep=True):
        """Read whatever has arrived (never blocks); -> list of new Replies. With keep
        (the default) they are also kept for wait(); a pipelined caller that handles the
        returned replies itself passes keep=False."""
        if self.gone:
            raise PortGone(self.path)
        try:
            n = self.ser.in_waiting
            data = self.ser.read(max(n, 4096))
        except (serial.SerialException, OSError) as e:
            self.gone = True
            if self._busy_check and self._head.startswith(BUSY_PREFIX):
                raise PortBusy("%s: %s" % (self.path, self._busy_text()))
            raise PortGone("%s: %s" % (self.path, e))
        if self._busy_check and data:
            # the rig hub's TCP host port tells a second client that it is busy, then closes
            self._head += data
            if BUSY_PREFIX.startswith(bytes(self._head[:len(BUSY_PREFIX)])):
                if len(self._head) < len(BUSY_PREFIX) or b"\n" not in self._head:
                    return []
                self.gone = True
                raise PortBusy("%s: %s" % (self.path, self._busy_text()))
            self._busy_check = False
            data, self._head = bytes(self._head), b""
        out = []
        d = self.deframer
        mv = memoryview(data)
        for off in range(0, len(mv), 512):
            d.feed(mv[off:off + 512])
            while d.next():
                r = self._reply(d)
                if r is not None:
                    out.append(r)
        if not keep:
            for r in out:
                self.replies.pop(r.tag, None)
        return out

    def _busy_text(self):
        return bytes(self._head).split(b"\n")[0].decode("ascii", "replace").strip()[len("arcopy: "):]

    def _reply(self, d):
        r, unsolicited = messages.make_reply(d.mtype, d.flags, d.seq, d.payload)
        if unsolicited is not None:
            self.unsolicited.append(unsolicited)
        if r is None:
            return None
        self.received += 1
        if r.tag in self.pending:
            self.pending.discard(r.tag)
            self.replies[r.tag] = r
            return r
        self.stale += 1
        return None

    def wait(self, tag, timeout=None):
        """Wait for the reply to `tag`; -> Reply. Raises Timeout or PortGone."""
        timeout = self.timeout if timeout is None else timeout
        end = time.monotonic() + timeout
        while True:
            r = self.replies.pop(tag, None)
            if r is not None:
                return r
            left = end - time.monotonic()
            if left <= 0:
                self.pending.discard(tag)
                raise Timeout("%s: no reply to tag %d in %.1f s" % (self.path, tag, timeout))
            rl, _, _ = select.select([self.ser.fileno()], (), (), min(left, 0.05))
            if rl:
                self.pump()

    def request(self, mtype, payload=b"", timeout=None, retries=None, idempotent=False):
        """Send a request and wait for its reply; -> Reply."""
        attempts = 1 + ((self.retries if retries is None else retries) if idempotent else 0)
        last = None
        for _ in range(attempts):
            tag = self.send(mtype, payload)
            try:
                return self.wait(tag, timeout)
            except Timeout as e:
                last = e
        raise last

    # -- typed helpers ------------------------------------------------------------------------
    write_payload = staticmethod(messages.write_payload)
    read_payload = staticmethod(messages.read_payload)
    command_payload = staticmethod(messages.command_payload)

    # the typed requests are those of host_tools/transport/messages.py, over this one port
    def _one(self, retries=None):
        return _OnePort(self, retries)

    def write(self, vol, blk, data, timeout=None):
        """Write one block; -> status (S_OK when the board completed it)."""
        return messages.write(self._one(), self.path, vol, blk, data, timeout)

    def read(self, vol, blk, timeout=None, retries=None):
        """Read one block; -> (status, data); data is b"" unless status is S_OK."""
        return messages.read(self._one(retries), self.path, vol, blk, timeout)

    def status(self, timeout=None, retries=None):
        """-> dict of the board's STATUS (see decode_status); raises ClientError if refused."""
        try:
            return messages.status(self._one(retries), self.path, timeout)
        except messages.Refused as e:
            raise ClientError(str(e))

    def command(self, cmd, arg=0, arg2=0, timeout=None):
        """Host command (C_*); -> status."""
        return messages.command(self._one(), self.path, cmd, arg, arg2, timeout)

    def command_reply(self, cmd, arg=0, arg2=0, timeout=None, idempotent=False):
        """Host command (C_*); -> Reply (status and the reply body after the status byte).
        Only read-only commands (e.g. C_DIRTY_LIST) may pass idempotent=True."""
        return messages.command_reply(self._one(), self.path, cmd, arg, arg2, timeout, idempotent)

    def dirty_list(self, vol, vol_blocks, timeout=None):
        """Every block of volume `vol` (of `vol_blocks` blocks) marked in the board's change
        bitmap, asked page by page with C_DIRTY_LIST; -> sorted list of block numbers.
        Raises ClientError if refused or if the board makes no progress."""
        try:
            return messages.dirty_list(self._one(), self.path, vol, vol_blocks, timeout)
        except messages.Refused as e:
            raise ClientError(str(e))


class _OnePort(Transport):
    """One HostClient seen as a Transport (for the typed requests of transport/messages.py)."""

    def __init__(self, client, retries=None):
        self.client = client
        self.retries = retries

    def request(self, board, mtype, payload=b"", timeout=None, idempotent=False):
        return self.client.request(mtype, payload, timeout, self.retries, idempotent)

    def boards(self):
        return [self.client.path]

    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)

# ---------------------------------------------------------------------------------------------
def port_ident(path):
    """Identity of a host port path: the symlink's inode, creation time and target (an
    emulated board replaces its symlink at every boot; a restarted board may get the same
    pty and the same inode number again, never the same creation time), else None."""
    try:
        if os.path.islink(path):
            st = os.lstat(path)
            return (st.st_ino, st.st_mtime_ns, os.readlink(path))
    except OSError:
        pass
    return None


class SerialTransport(Transport):
    """host_tools.transport.Transport over the host ports of a rig (real or emulated boards).

    ports: {board name: host port} (a device path or a pyserial URL; a port that a rig agent
    holds is reached through the agent). A port is opened at its first request and kept;
    it is opened again after the board went away (its port closed, a request timed out, or
    an emulated board's port symlink now names a new pseudo-terminal). A port that does not
    open is BoardGone."""

    def __init__(self, ports, timeout=1.0, retries=2, baud=1000000):
        self.ports = dict(ports)
        self.timeout = timeout
        self.retries = retries
        self.baud = baud
        self._clients = {}            # name -> (HostClient, port identity when opened)

    @classmethod
    def from_rig(cls, rig, **kw):
        """The transport of a rig dict (host_tools/rig/manager.py load())."""
        return cls({b["name"]: b["host"] for b in rig["boards"]}, **kw)

    def boards(self):
        return sorted(self.ports)

    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)

    def client(self, board):
        """The open HostClient of `board` (opened now if need be); raises PortGone."""
        if board not in self.ports:
            raise PortGone("%s: no such board in the rig" % board)
        path = self.ports[board]
        ent = self._clients.get(board)
        if ent is not None:
            c, ident = ent
            if not c.gone and port_ident(path) == ident:
                return c
            self._drop(board)
        ident = port_ident(path)
        try:
            c = HostClient(path, self.baud, self.timeout, self.retries)
        except PortBusy as e:
            raise PortBusy("%s: %s" % (board, e))
        except Exception as e:
            raise PortGone("%s: host port %s does not open: %s" % (board, path, e))
        self._clients[board] = (c, ident)
        return c

    def _drop(self, board):
        ent = self._clients.pop(board, None)
        if ent is not None:
            ent[0].close()

    def request(self, board, mtype, payload=b"", timeout=None, idempotent=False):
        c = self.client(board)
        try:
            return c.request(mtype, payload, timeout, None, idempotent)
        except (Timeout, PortGone):
            self._drop(board)
            raise

    def close(self):
        for name in list(self._clients):
            self._drop(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
