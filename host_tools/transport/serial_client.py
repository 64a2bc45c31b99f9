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
"""
import os
import select
import time

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


def unpack_dirty_list(body):
    """C_DIRTY_LIST reply body (after the status byte) -> (count, next_block, [blocks])."""
    try:
        return _unpack_dirty_list(body)
    except messages.Refused as e:
        raise ClientError(str(e))


class HostClient:
    """One board's host port.

    port: device path (or an open serial-like object with read/write/in_waiting/fileno);
    baud: line rate (ignored by USB and pty ports); timeout: seconds per attempt;
    retries: extra attempts for idempotent requests; node: destination id in the
    header (0 = whoever is on the port; boards answer any dst on the host port)."""

    def __init__(self, port, baud=1000000, timeout=1.0, retries=2, node=wire.BROADCAST):
        if isinstance(port, str):
            self.ser = serial.Serial(port, baud, timeout=0, write_timeout=5)
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
        for _ in range(65535):
            self._tag = self._tag % 65535 + 1
            if self._tag not in self.pending and self._tag not in self.replies:
                return self._tag
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
            data = self.ser.read(n if n else 1)
        except (serial.SerialException, OSError) as e:
            self.gone = True
            raise PortGone("%s: %s" % (self.path, e))
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
    """Identity of a host port path: the symlink's inode and target (an emulated board
    replaces its symlink at every boot), else None."""
    try:
        if os.path.islink(path):
            return (os.lstat(path).st_ino, os.readlink(path))
    except OSError:
        pass
    return None


class SerialTransport(Transport):
    """host_tools.transport.Transport over the host ports of a rig (real or emulated boards).

    ports: {board name: host port path}. A port is opened at its first request and kept;
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
