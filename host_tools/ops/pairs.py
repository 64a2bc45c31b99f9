"""Suspend and resume pairs (the resume copies the blocks marked in the change bitmap, then joins)."""
from firmware import wire

from host_tools.ops import command as _command
from host_tools.ops import copy as _copy
from host_tools.ops.errors import OpError


def select_pairs(npairs, pair=None, all_pairs=False):
    """--pair P / --all -> list of pair indexes (exactly one of them must be given)."""
    if (pair is None) == (not all_pairs):
        raise OpError("give exactly one of --pair P and --all")
    if all_pairs:
        return list(range(npairs))
    if not 0 <= pair < npairs:
        raise OpError("no pair %d on this rig (pairs 0..%d)" % (pair, npairs - 1))
    return [pair]


def suspend_pair(t, primary, **send_kw):
    """C_SUSPEND to one primary. -> ops.command.Sent."""
    return _command.send(t, primary, wire.C_SUSPEND, **send_kw)


def resume_pair(t, primary, **send_kw):
    """C_RESUME to one primary. -> ops.command.Sent."""
    return _command.send(t, primary, wire.C_RESUME, **send_kw)


def suspend(t, pairs):
    """C_SUSPEND to the primaries of `pairs` ({i: (primary, secondary)}). -> {primary: status}."""
    return {pairs[i][0]: suspend_pair(t, pairs[i][0]).status for i in sorted(pairs)}


def resume(t, pairs, wait=True, timeout=60.0, progress=None):
    """C_RESUME to the primaries of `pairs` (copy of the marked blocks, then join); with
    wait, until they are duplex again. -> (results {primary: status}, copied {pair: ...})."""
    since = _copy.snapshot(t, pairs) if wait else None
    res = {pairs[i][0]: resume_pair(t, pairs[i][0]).status for i in sorted(pairs)}
    if not wait or any(rc != wire.S_OK for rc in res.values()):
        return res, {}
    return res, _copy.wait_copy(t, pairs, timeout, progress, since)
