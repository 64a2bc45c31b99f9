"""Suspend and resume pairs (the resume copies the blocks marked in the change bitmap, then joins)."""
from firmware import wire

from host_tools.ops import command as _command
from host_tools.ops import status as _status
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


def set_mode(t, pairs, mode, settle_s=30.0, poll_s=0.2):
    """Switch the copy mode of a whole group (C_SET_MODE to every board of `pairs`), in the
    only order that keeps every instant recoverable (protocol/SPEC.md, "Changing the mode"):
    the mode must be the group's, since a secondary in SYNC rolls its whole journal forward at
    failover while one in CLOCK recovers to the released cut.
    - to sync: every primary first (from then on its writes wait for their secondary); then,
      once every secondary has applied a cut taken after the last primary switched (every
      record written asynchronously is applied), every secondary;
    - to async: every secondary first (they stop rolling forward), then every primary.
    A primary that refuses the switch to sync puts the primaries already switched back to
    async and the secondaries are not asked. mode: "sync" or "async" (or a MODE_* value).
    -> {board: status} (None: no answer; a secondary not asked is absent)."""
    m = MODES.get(mode, mode)
    prims = [pairs[i][0] for i in sorted(pairs)]
    secs = [pairs[i][1] for i in sorted(pairs)]
    out = {}
    if m != wire.MODE_SYNC:
        for b in secs + prims:
            out[b] = _command.send(t, b, wire.C_SET_MODE, m).status
        return out
    for b in prims:
        out[b] = _command.send(t, b, wire.C_SET_MODE, m).status
    if any(out[b] != wire.S_OK for b in prims):
        for b in prims:
            if out[b] == wire.S_OK:
                _command.send(t, b, wire.C_SET_MODE, wire.MODE_CLOCK)
        return out
    # the newest time any primary had stamped when the last one switched: once every
    # secondary has applied a cut at or after it, no asynchronous record is left unapplied
    after = max((s["seq_time_us"] for s in _status.collect(t, prims).values() if s), default=0)
    end = t.now() + settle_s
    while True:
        st = _status.collect(t, secs)
        if all(s is not None and s["applied_t"] >= after for s in st.values()) or t.now() >= end:
            break
        t.sleep(poll_s)
    for b in secs:
        # BAD_STATE: its journal still holds a record written asynchronously: the next release
        out[b] = _command.send(t, b, wire.C_SET_MODE, m, retry_s=settle_s, pause_s=poll_s,
                               retry_on=_command.RETRY + (wire.S_BAD_STATE,)).status
    return out


def set_policy(t, secondaries, policy):
    """C_SET_POLICY(policy) to every secondary (the policy is theirs: what the group does when
    a pair is lost); policy "freeze" or "continue" (or a POLICY_* value). -> {board: status}."""
    p = POLICIES.get(policy, policy)
    return {b: _command.send(t, b, wire.C_SET_POLICY, p).status for b in secondaries}
