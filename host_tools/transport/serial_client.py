"""Host-port client: talk to one board's host port over a serial line (pyserial).

It works the same on a real board's USB serial port and on an emulated board's
pseudo-terminal: it only speaks the wire protocol (protocol/SPEC.md).

    c = HostClient("/dev/ttyACM0")          # or the bench's host port path
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
import select
import struct
import time
from collections import namedtuple

import serial

from firmware import codec
from firmware import wire
from firmware.deframer import Deframer

Reply = namedtuple("Reply", "status body mtype tag error")

STATUS_FIELDS = codec.STATUS_FIELDS

STATUS_NAMES = {getattr(wire, n): n[2:] for n in dir(wire) if n.startswith("S_")}
COPY_STATE_NAMES = {getattr(wire, n): n[3:] for n in dir(wire) if n.startswith("CS_")}
ROLE_NAMES = {wire.ROLE_PRIMARY: "primary", wire.ROLE_SECONDARY: "secondary"}
MODE_NAMES = {wire.MODE_CLOCK: "clock", wire.MODE_CLOCKLESS: "clockless", wire.MODE_SYNC: "sync"}
POLICY_NAMES = {wire.POLICY_FREEZE: "freeze", wire.POLICY_CONTINUE: "continue"}
REASON_NAMES = {0: "", wire.R_PEER_LOST: "peer-lost", wire.R_OPERATOR: "operator",
                wire.R_ERROR: "error", wire.R_JOURNAL_FULL: "auto"}
FLAG_NAMES = (("is_master", wire.ST_MASTER), ("uip", wire.ST_UIP), ("copy_active", wire.ST_COPY_ACTIVE),
              ("frozen", wire.ST_FROZEN), ("must_complete", wire.ST_MUST_COMPLETE))


def status_name(code):
    return STATUS_NAMES.get(code, "S_%d" % code)


class ClientError(Exception):
    pass


class Timeout(ClientError):
    """No matching reply in time."""


class PortGone(ClientError):
    """The port closed under us (the board died, or the cable was pulled)."""


def decode_status(body):
    """STATUS reply body -> dict of the P_STATUS_BODY fields plus decoded names."""
    vals = codec.unpack_status_body(body)
    d = dict(zip(STATUS_FIELDS, vals))
    d["role_name"] = ROLE_NAMES.get(d["role"], str(d["role"]))
    d["copy_state_name"] = COPY_STATE_NAMES.get(d["copy_state"], str(d["copy_state"]))
    d["mode_name"] = MODE_NAMES.get(d["mode"], str(d["mode"]))
    d["policy_name"] = POLICY_NAMES.get(d["policy"], str(d["policy"]))
    if "suspend_reason" in d:
        d["suspend_reason_name"] = REASON_NAMES.get(d["suspend_reason"], str(d["suspend_reason"]))
    for name, bit in FLAG_NAMES:
        d[name] = bool(d["flags"] & bit)
    return d


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
        frame = codec.encode(mtype, wire.HOST_ID, self.node, payload, seq=tag)
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
        if not d.flags & wire.F_REPLY:
            return None
        pl = bytes(d.payload)
        if d.mtype == wire.T_H_REPLY and pl:
            r = Reply(pl[0], pl[1:], d.mtype, d.seq, False)
        elif d.mtype == wire.T_ERROR and len(pl) >= 4:
            code, mt, detail = codec.unpack_error(pl)
            if d.seq == 0:
                self.unsolicited.append((code, mt, detail))
                return None
            r = Reply(code, pl, d.mtype, d.seq, True)
        else:
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
    @staticmethod
    def write_payload(vol, blk, data):
        if len(data) != wire.BLOCK_SIZE:
            raise ValueError("a block is %d bytes, got %d" % (wire.BLOCK_SIZE, len(data)))
        buf = bytearray(5 + wire.BLOCK_SIZE)
        codec.pack_h_write(buf, 0, vol, blk, data)
        return bytes(buf)

    @staticmethod
    def read_payload(vol, blk):
        buf = bytearray(5)
        codec.pack_h_read(buf, 0, vol, blk)
        return bytes(buf)

    @staticmethod
    def command_payload(cmd, arg=0, arg2=0):
        buf = bytearray(13)
        codec.pack_h_command(buf, 0, cmd, arg, arg2)
        return bytes(buf)

    def write(self, vol, blk, data, timeout=None):
        """Write one block; -> status (S_OK when the board completed it)."""
        return self.request(wire.T_H_WRITE, self.write_payload(vol, blk, data), timeout).status

    def read(self, vol, blk, timeout=None, retries=None):
        """Read one block; -> (status, data); data is b"" unless status is S_OK."""
        r = self.request(wire.T_H_READ, self.read_payload(vol, blk), timeout, retries, True)
        if r.status == wire.S_OK and not r.error:
            return r.status, r.body
        return r.status, b""

    def status(self, timeout=None, retries=None):
        """-> dict of the board's STATUS (see decode_status); raises ClientError if refused."""
        r = self.request(wire.T_H_STATUS, b"", timeout, retries, True)
        if r.status != wire.S_OK or r.error:
            raise ClientError("%s: STATUS refused: %s" % (self.path, status_name(r.status)))
        return decode_status(r.body)

    def command(self, cmd, arg=0, arg2=0, timeout=None):
        """Host command (C_*); -> status."""
        return self.request(wire.T_H_COMMAND, self.command_payload(cmd, arg, arg2), timeout).status

    def command_reply(self, cmd, arg=0, arg2=0, timeout=None, idempotent=False):
        """Host command (C_*); -> Reply (status and the reply body after the status byte).
        Only read-only commands (e.g. C_DIRTY_LIST) may pass idempotent=True."""
        return self.request(wire.T_H_COMMAND, self.command_payload(cmd, arg, arg2), timeout,
                            None, idempotent)

    def dirty_list(self, vol, vol_blocks, timeout=None):
        """Every block of volume `vol` (of `vol_blocks` blocks) marked in the board's change
        bitmap, asked page by page with C_DIRTY_LIST; -> sorted list of block numbers.
        Raises ClientError if refused or if the board makes no progress."""
        out = set()
        first = 0
        while first < vol_blocks:
            r = self.command_reply(wire.C_DIRTY_LIST, vol, first, timeout, idempotent=True)
            if r.status != wire.S_OK or r.error:
                raise ClientError("%s: DIRTY_LIST vol %d from block %d refused: %s"
                                  % (self.path, vol, first, status_name(r.status)))
            count, nxt, blocks = unpack_dirty_list(r.body)
            out.update(blocks)
            if nxt <= first:
                raise ClientError("%s: DIRTY_LIST vol %d from block %d: next block %d"
                                  % (self.path, vol, first, nxt))
            first = nxt
        return sorted(out)


def unpack_dirty_list(body):
    """C_DIRTY_LIST reply body (after the status byte) -> (count, next_block, [blocks])."""
    head = struct.calcsize(wire.P_DIRTY_HEAD)
    if len(body) < head:
        raise ClientError("DIRTY_LIST reply body of %d bytes" % len(body))
    count, nxt = struct.unpack_from(wire.P_DIRTY_HEAD, body, 0)
    if len(body) != head + 4 * count:
        raise ClientError("DIRTY_LIST reply: %d blocks announced, body of %d bytes"
                          % (count, len(body)))
    blocks = list(struct.unpack_from("<%dI" % count, body, head)) if count else []
    return count, nxt, blocks
