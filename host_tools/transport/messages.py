"""Host-port messages, once for every transport: request payloads, replies, STATUS by field name, typed requests.

    write(t, board, vol, blk, data)     -> status
    read(t, board, vol, blk)            -> (status, 512 bytes or b"")
    status(t, board)                    -> dict of the STATUS fields by name (plus decoded names)
    command(t, board, cmd, arg, arg2)   -> status
    command_reply(t, board, cmd, ...)   -> Reply (status and body)
    dirty_list(t, board, vol, vol_blocks) -> sorted blocks marked in the change bitmap

`t` is any host_tools.transport.Transport. This module is the only place of the host
tools that takes the host-only codec helpers (the STATUS field-name tuple, the STATUS
body decoder, the frame encoder, the ERROR decoder).
"""
import struct

from firmware import wire
# the host-only codec helpers: imported here and nowhere else of host_tools/transport, ops, rig, sim
from protocol.hostcodec import (STATUS_FIELDS, encode, pack_h_command, pack_h_read, pack_h_write,
                                unpack_error, unpack_status_body)

from host_tools.transport import Reply

STATUS_NAMES = {getattr(wire, n): n[2:] for n in dir(wire) if n.startswith("S_")}
COPY_STATE_NAMES = {getattr(wire, n): n[3:] for n in dir(wire) if n.startswith("CS_")}
ROLE_NAMES = {wire.ROLE_PRIMARY: "primary", wire.ROLE_SECONDARY: "secondary"}
MODE_NAMES = {wire.MODE_CLOCK: "clock", wire.MODE_CLOCKLESS: "clockless", wire.MODE_SYNC: "sync"}
POLICY_NAMES = {wire.POLICY_FREEZE: "freeze", wire.POLICY_CONTINUE: "continue"}
REASON_NAMES = {0: "", wire.R_PEER_LOST: "peer-lost", wire.R_OPERATOR: "operator",
                wire.R_ERROR: "error", wire.R_JOURNAL_FULL: "auto",
                wire.R_PEER_FAILED_OVER: "peer-failed-over"}
FLAG_NAMES = (("is_master", wire.ST_MASTER), ("uip", wire.ST_UIP), ("copy_active", wire.ST_COPY_ACTIVE),
              ("frozen", wire.ST_FROZEN), ("must_complete", wire.ST_MUST_COMPLETE))


def status_name(code):
    if code is None:
        return "no reply"
    return STATUS_NAMES.get(code, "S_%d" % code)


class Refused(Exception):
    """A board answered a request it must not refuse (STATUS, DIRTY_LIST) with an error."""


# -- frames ----------------------------------------------------------------------------------
def encode_request(mtype, dst, payload, tag, group=0):
    """A host request frame to node `dst` (the board's id, or BROADCAST: whoever is on the port;
    a board ignores any other dst), tagged `tag` (1..65535: a board refuses tag 0, which marks
    its unsolicited errors)."""
    if not 1 <= dst <= wire.BROADCAST:
        raise ValueError("host request dst must be a board id or BROADCAST, not %r" % (dst,))
    if not 1 <= tag <= 0xFFFF:
        raise ValueError("host request tag must be 1..65535 (0 is reserved), not %r" % (tag,))
    return encode(mtype, wire.HOST_ID, dst, payload, seq=tag, group=group)


def make_reply(mtype, flags, tag, payload):
    """A frame received on a host port -> (Reply, None), or (None, (code, mtype, detail)) for an
    ERROR answering garbage (tag 0), or (None, None) for anything that is not a reply."""
    if not flags & wire.F_REPLY:
        return None, None
    pl = bytes(payload)
    if mtype == wire.T_H_REPLY and pl:
        return Reply(pl[0], pl[1:], mtype, tag, False, flags), None
    if mtype == wire.T_ERROR and len(pl) >= 4:
        code, mt, detail = unpack_error(pl)
        if tag == 0:
            return None, (code, mt, detail)
        return Reply(code, pl, mtype, tag, True), None
    return None, None


# -- payloads -----------------------------------------------------------------------------------
def write_payload(vol, blk, data):
    if len(data) != wire.BLOCK_SIZE:
        raise ValueError("a block is %d bytes, got %d" % (wire.BLOCK_SIZE, len(data)))
    buf = bytearray(5 + wire.BLOCK_SIZE)
    pack_h_write(buf, 0, vol, blk, data)
    return bytes(buf)


def read_payload(vol, blk):
    buf = bytearray(5)
    pack_h_read(buf, 0, vol, blk)
    return bytes(buf)


def command_payload(cmd, arg=0, arg2=0):
    buf = bytearray(13)
    pack_h_command(buf, 0, cmd, arg, arg2)
    return bytes(buf)


# -- reply bodies -------------------------------------------------------------------------------
def decode_status(body):
    """STATUS reply body -> dict of the STATUS fields by name plus decoded names."""
    vals = unpack_status_body(body)
    d = dict(zip(STATUS_FIELDS, vals))
    d["role_name"] = ROLE_NAMES.get(d["role"], str(d["role"]))
    d["copy_state_name"] = COPY_STATE_NAMES.get(d["copy_state"], str(d["copy_state"]))
    d["mode_name"] = MODE_NAMES.get(d["mode"], str(d["mode"]))
    d["policy_name"] = POLICY_NAMES.get(d["policy"], str(d["policy"]))
    if d.get("clock_err_us") == 0xFFFFFFFF:
        d["clock_err_us"] = None             # follows no master's time (or a secondary)
    if "suspend_reason" in d:
        d["suspend_reason_name"] = REASON_NAMES.get(d["suspend_reason"], str(d["suspend_reason"]))
    for name, bit in FLAG_NAMES:
        d[name] = bool(d["flags"] & bit)
    return d


def unpack_dirty_list(body):
    """C_DIRTY_LIST reply body (after the status byte) -> (count, next_block, [blocks])."""
    head = struct.calcsize(wire.P_DIRTY_HEAD)
    if len(body) < head:
        raise Refused("DIRTY_LIST reply body of %d bytes" % len(body))
    count, nxt = struct.unpack_from(wire.P_DIRTY_HEAD, body, 0)
    if len(body) != head + 4 * count:
        raise Refused("DIRTY_LIST reply: %d blocks announced, body of %d bytes" % (count, len(body)))
    blocks = list(struct.unpack_from("<%dI" % count, body, head)) if count else []
    return count, nxt, blocks


# -- typed requests over any Transport -----------------------------------------------------------
def write(t, board, vol, blk, data, timeout=None):
    """Write one block; -> status (S_OK when the board completed it)."""
    return t.request(board, wire.T_H_WRITE, write_payload(vol, blk, data), timeout).status


def read(t, board, vol, blk, timeout=None):
    """Read one block; -> (status, data); data is b"" unless status is S_OK."""
    r = t.request(board, wire.T_H_READ, read_payload(vol, blk), timeout, idempotent=True)
    if r.status == wire.S_OK and not r.error:
        return r.status, r.body
    return r.status, b""


def status(t, board, timeout=None):
    """-> dict of the board's STATUS (see decode_status); raises Refused if refused."""
    r = t.request(board, wire.T_H_STATUS, b"", timeout, idempotent=True)
    if r.status != wire.S_OK or r.error:
        raise Refused("%s: STATUS refused: %s" % (board, status_name(r.status)))
    return decode_status(r.body)


def command(t, board, cmd, arg=0, arg2=0, timeout=None):
    """Host command (C_*); -> status. Sent once."""
    return t.request(board, wire.T_H_COMMAND, command_payload(cmd, arg, arg2), timeout).status


def command_reply(t, board, cmd, arg=0, arg2=0, timeout=None, idempotent=False):
    """Host command; -> Reply. Only read-only commands (C_DIRTY_LIST) may pass idempotent=True."""
    return t.request(board, wire.T_H_COMMAND, command_payload(cmd, arg, arg2), timeout, idempotent)


def dirty_list(t, board, vol, vol_blocks, timeout=None):
    """Every block of volume `vol` (of `vol_blocks` blocks) marked in the board's change bitmap,
    asked page by page with C_DIRTY_LIST; -> sorted list. Raises Refused if refused or if the
    board makes no progress."""
    out = set()
    first = 0
    while first < vol_blocks:
        r = command_reply(t, board, wire.C_DIRTY_LIST, vol, first, timeout, idempotent=True)
        if r.status != wire.S_OK or r.error:
            raise Refused("%s: DIRTY_LIST vol %d from block %d refused: %s"
                          % (board, vol, first, status_name(r.status)))
        count, nxt, blocks = unpack_dirty_list(r.body)
        out.update(blocks)
        if nxt <= first:
            raise Refused("%s: DIRTY_LIST vol %d from block %d: next block %d" % (board, vol, first, nxt))
        first = nxt
    return sorted(out)
