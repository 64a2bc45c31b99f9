"""Failback: after a failover, reverse the pairs and copy back only what changed.

0. the old primaries' change bitmaps (C_DIRTY_LIST) are the blocks written there after
   the failover (a fenced old primary with fence_writes off marks them): the failback
   would overwrite them, so it refuses unless forced;
1. C_FAILBACK(2) to every old primary (it becomes a secondary; its journal records
   become change-bitmap marks);
2. merge: every block marked at an old primary is marked at its peer (C_DIRTY_LIST,
   C_MARK_DIRTY), so that blocks the old primary holds beyond the recovered image are
   overwritten;
3. C_FAILBACK(1) to every old secondary (FAILED_OVER -> primary, copy pending of its
   marked blocks);
4. the caller records the swapped roles (on_swapped: the rig file);
5. with wait, until every pair is duplex in the new direction with a checkpoint applied.

A FAILBACK that went unanswered (power lost around it) and then says S_BAD_STATE is
taken as done when STATUS shows the requested role (the role is durable).
"""
from firmware import wire

from host_tools.ops import command as _command
from host_tools.ops import copy as _copy
from host_tools.ops import status as _status
from host_tools.ops.errors import OpError
from host_tools.transport.messages import status_name


def _failback(t, board, role, **send_kw):
    """C_FAILBACK(role) to `board`; -> (status, resolved): resolved is True when an
    unanswered attempt followed by S_BAD_STATE turned out done (STATUS shows the role)."""
    sent = _command.send(t, board, wire.C_FAILBACK, role, **send_kw)
    if sent.status == wire.S_BAD_STATE and sent.unanswered:
        s = _status.get(t, board, attempts=send_kw.get("attempts") or 3)
        if s is not None and s["role"] == role:
            return wire.S_OK, True
    return sent.status, False


def to_secondary(t, old_primary, **send_kw):
    """Step 1 for one pair: the old primary becomes a secondary. -> (status, resolved)."""
    return _failback(t, old_primary, wire.ROLE_SECONDARY, **send_kw)


def merge_marks(t, old_primary, new_primary, nvol, vol_blocks, list_attempts=1, list_pause_s=0.25,
                **send_kw):
    """Step 2 for one pair: mark at `new_primary` every block marked at `old_primary`
    (C_DIRTY_LIST asked up to `list_attempts` times; each C_MARK_DIRTY sent as send_kw says).
    -> (marks {vol: [blocks]} or None if the old primary did not list them, merged count,
    refused [(vol, block, status)])."""
    marks = _status.dirty_blocks(t, old_primary, nvol, vol_blocks, list_attempts, list_pause_s)
    merged, refused = 0, []
    for v, blocks in sorted((marks or {}).items()):
        for blk in blocks:
            rc = _command.send(t, new_primary, wire.C_MARK_DIRTY, v, blk, **send_kw).status
            if rc == wire.S_OK:
                merged += 1
            else:
                refused.append((v, blk, rc))
    return marks, merged, refused


def to_primary(t, old_secondary, **send_kw):
    """Step 3 for one pair: the failed-over secondary becomes the primary and copies back
    its marked blocks. -> (status, resolved)."""
    return _failback(t, old_secondary, wire.ROLE_PRIMARY, **send_kw)


class WrittenAfterFailover(OpError):
    """Old primaries hold blocks written after the failover; `written` is
    {old primary: {vol: [blocks]}} (only boards with any)."""

    def __init__(self, msg, written):
        OpError.__init__(self, msg)
        self.written = written


SHOW_BLOCKS = 8          # block numbers shown per board


def describe_written(board, marks):
    """One line: how many blocks `board` holds written after the failover, the first few."""
    n = sum(len(b) for b in marks.values())
    shown = []
    for v, blocks in sorted(marks.items()):
        shown += ["%d:%d" % (v, b) if len(marks) > 1 else str(b) for b in blocks]
    more = " ..." if len(shown) > SHOW_BLOCKS else ""
    return "%s: %d block%s written after the failover (%s%s)" % (
        board, n, "" if n == 1 else "s", ", ".join(shown[:SHOW_BLOCKS]), more)


def written_after_failover(t, old_primaries, nvol, vol_blocks):
    """{old primary: {vol: [blocks]}} of the blocks marked in the change bitmap of each
    board in `old_primaries` (still primaries: a fenced old primary marks what it takes
    after the failover), boards with none left out. Raises OpError when one does not list."""
    out = {}
    for prim in old_primaries:
        marks = _status.dirty_blocks(t, prim, nvol, vol_blocks, attempts=3)
        if marks is None:
            raise OpError("%s: no answer to DIRTY_LIST" % prim)
        marks = {v: b for v, b in marks.items() if b}
        if marks:
            out[prim] = marks
    return out


def failback(t, pairs, nvol, vol_blocks, wait=True, timeout=120.0, progress=None, log=None,
             on_swapped=None, force=False):
    """The whole failback of `pairs` ({i: (old primary, old secondary)} as they are before it).
    -> {"results": {name: status name}, "pairs": {pair: {"old_primary", "old_secondary",
    "merged", "old_primary_dirty", "dirty", "to_copy", "copied", ...}},
    "written_after_failover": {old primary: {vol: [blocks]}}, "ok": bool}.
    Raises WrittenAfterFailover (unless `force`) when an old primary holds blocks written
    after the failover, OpError when a board does not answer or refuses a step."""
    say = log or (lambda m: None)
    info = {}
    results = {}
    # 0. preconditions: every board answers; old secondaries are failed over
    for i in sorted(pairs):
        prim, sec = pairs[i]
        p, s = _status.get(t, prim, 1.0), _status.get(t, sec, 1.0)
        if p is None:
            raise OpError("%s (old primary of pair %d) does not answer: start it first "
                          "(emulated rig: arcopy rig restart %s)" % (prim, i, prim))
        if s is None:
            raise OpError("%s (secondary of pair %d) does not answer" % (sec, i))
        if s["copy_state"] != wire.CS_FAILED_OVER:
            raise OpError("%s is %s, not FAILED_OVER: failback follows a failover"
                          % (sec, s["copy_state_name"]))
        info[i] = {"old_primary": prim, "old_secondary": sec, "p_role": p["role"]}
    # 0b. blocks written at the old primaries after the failover: the failback overwrites them
    written = written_after_failover(
        t, [pairs[i][0] for i in sorted(pairs) if info[i]["p_role"] == wire.ROLE_PRIMARY],
        nvol, vol_blocks)
    for prim, marks in sorted(written.items()):
        say(describe_written(prim, marks))
    if written and not force:
        raise WrittenAfterFailover(
            "refused: blocks written after the failover at the old primar%s (%s), which the "
            "failback would overwrite with the failed-over site's data: save what you need, then "
            "run the failback again with --force" % (
                "ies" if len(written) > 1 else "y",
                ", ".join("%s: %d" % (b, sum(len(x) for x in m.values()))
                          for b, m in sorted(written.items()))), written)
    # 1. old primaries become secondaries
    for i in sorted(pairs):
        prim = pairs[i][0]
        if info[i].pop("p_role") == wire.ROLE_SECONDARY:
            rc = wire.S_OK                      # done by an earlier, interrupted failback
        else:
            rc, _ = to_secondary(t, prim)
        results[prim] = rc
        say("%s: FAILBACK(secondary) -> %s" % (prim, status_name(rc)))
        if rc != wire.S_OK:
            raise OpError("%s refused FAILBACK(secondary): %s" % (prim, status_name(rc)))
    # 2. merge the old primaries' marks into their peers
    for i in sorted(pairs):
        prim, sec = pairs[i]
        marks, merged, refused = merge_marks(t, prim, sec, nvol, vol_blocks, list_attempts=3)
        if marks is None:
            raise OpError("%s: no answer to DIRTY_LIST" % prim)
        if refused:
            v, blk, rc = refused[0]
            raise OpError("%s: MARK_DIRTY vol %d block %d -> %s" % (sec, v, blk, status_name(rc)))
        dirty = _status.dirty_blocks(t, sec, nvol, vol_blocks, attempts=3)
        if dirty is None:
            raise OpError("%s: no answer to DIRTY_LIST" % sec)
        info[i].update(merged=merged, old_primary_dirty=marks, dirty=dirty,
                       to_copy=sum(len(x) for x in dirty.values()))
        say("pair %d: %d blocks marked at %s merged into %s: %d blocks to copy"
            % (i, merged, prim, sec, info[i]["to_copy"]))
    # 3. old secondaries become primaries and copy back
    since = {}
    swapped = []
    for i in sorted(pairs):
        prim, sec = pairs[i]
        since[i] = _status.applied(_status.get(t, prim))
        rc, _ = to_primary(t, sec)
        results[sec] = rc
        say("%s: FAILBACK(primary) -> %s" % (sec, status_name(rc)))
        if rc == wire.S_OK:
            swapped.append(i)
    # 4. the caller's record of the roles follows
    if swapped and on_swapped is not None:
        on_swapped(swapped)
    ok = len(swapped) == len(pairs)
    out = {"results": {n: status_name(rc) for n, rc in sorted(results.items())},
           "pairs": info, "written_after_failover": written, "ok": ok}
    if not ok or not wait:
        return out
    # 5. the reversed pairs: old secondary -> old primary
    rev = {i: (pairs[i][1], pairs[i][0]) for i in pairs}
    copied = _copy.wait_copy(t, rev, timeout, progress, since)
    for i, c in copied.items():
        info[i]["copied"] = c["copied"]
        info[i]["primary"] = c["primary"]
        info[i]["secondary"] = c["secondary"]
    return out
