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


def stop_copy(t, pairs):
    """C_STOP_COPY to the primaries of `pairs`: the pair ends (the primary goes SIMPLEX, its
    journal becomes change-bitmap marks; writes go on). -> {primary: status}."""
    return {pairs[i][0]: _command.send(t, pairs[i][0], wire.C_STOP_COPY).status for i in sorted(pairs)}


MODES = {"async": wire.MODE_CLOCK, "sync": wire.MODE_SYNC}
POLICIES = {"freeze": wire.POLICY_FREEZE, "continue": wire.POLICY_CONTINUE}


def set_mode(t, pairs, mode, settle_s=10.0):
    """C_SET_MODE(mode) to both boards of every pair of `pairs`, the primary first: from then
    on its records travel as synchronous, and the secondary, which refuses SYNC (BAD_STATE)
    while its journal holds records written asynchronously, takes it once those are applied
    (asked again for up to `settle_s`). mode: "sync" or "async" (or a MODE_* value).
    A primary that refuses (a clockless board, a bad argument) leaves its secondary as it
    was (not asked). -> {board: status}."""
    m = MODES.get(mode, mode)
    out = {}
    for i in sorted(pairs):
        prim, sec = pairs[i]
        out[prim] = _command.send(t, prim, wire.C_SET_MODE, m).status
        if out[prim] != wire.S_OK:
            continue
        retry = _command.RETRY + ((wire.S_BAD_STATE,) if m == wire.MODE_SYNC else ())
        out[sec] = _command.send(t, sec, wire.C_SET_MODE, m, retry_s=settle_s, pause_s=0.1,
                                 retry_on=retry).status
    return out


def set_policy(t, secondaries, policy):
    """C_SET_POLICY(policy) to every secondary (the policy is theirs: what the group does when
    a pair is lost); policy "freeze" or "continue" (or a POLICY_* value). -> {board: status}."""
    p = POLICIES.get(policy, policy)
    return {b: _command.send(t, b, wire.C_SET_POLICY, p).status for b in secondaries}
