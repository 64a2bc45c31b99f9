"""Group failover: recover every secondary to the newest released cut (n, T) and open it to the host.

1. Settle (bounded): poll every secondary's STATUS until the group is quiet: every board
   answered (or is gone), no update in progress, the same statuses over `settle_polls`
   polls (rounds already released finish).
   Secondaries left in different modes by an interrupted `set-mode` are all set to async
   (CLOCK) first: a SYNC secondary rolls its whole journal forward, a CLOCK one stops at the
   released cut, and the group must do one or the other.
2. Target = the newest released checkpoint any secondary knows (the uip checkpoint if it
   is newer than the applied one, else the applied one), newest by its time T, if every
   secondary can reach it; else the newest cut every one can reach: the group's image cut
   (anchor) that each keeps during a resync, or a cut a pair that just joined holds
   (choose_target). A board in a resync reaches only the image cut it keeps.
3. C_FAILOVER(n, T) to the secondary master first (after it, nobody releases more), then
   to the others (a board that keeps the target as its image cut rolls back to it);
   S_BUSY_UIP / S_NOT_READY and silence are retried until `cmd_timeout`.
   A board that answers S_BAD_STATE because it moved past the target makes us
   recompute the target.
4. Every board is then classed: recovered (FAILED_OVER at the target), no image (it
   refused: a resync was running on a pair that had an image), no image yet (a first copy
   onto a blank secondary that never had one: IMG_FIRST, until a group release confirms
   its join), no common cut (it never received the target), or silent (no answer).
"""
from firmware import wire

from host_tools import transport
from host_tools.ops import command as _command
from host_tools.ops import status as _status
from host_tools.transport import messages
from host_tools.transport.messages import status_name


def _key(s):
    return (s["applied_n"], s["uip_n"], s["released_n"], s["ckpt_n"], s["flags"] & wire.ST_UIP,
            s["copy_state"])


def settle(t, boards, timeout=10.0, polls=3, poll_s=0.25, status_timeout=None):
    """Poll until the group is quiet (see the module docstring) or `timeout`.
    -> ({name: STATUS} of the boards that answered the last poll, set of boards gone)."""
    end = t.now() + timeout
    prev, same = None, 0
    gone = set()
    while True:
        st, silent = {}, []
        for n in boards:
            if n in gone:
                continue
            try:
                st[n] = messages.status(t, n, status_timeout)
            except transport.BoardGone:
                gone.add(n)
            except (transport.TransportError, messages.Refused):
                silent.append(n)
        key = {n: _key(s) for n, s in st.items()}
        busy = any(s["uip"] for s in st.values() if s["copy_state"] != wire.CS_FAILED_OVER)
        same = same + 1 if key == prev else 0
        prev = key
        if (same >= polls - 1 and not busy and not silent) or t.now() >= end:
            return st, gone
        t.sleep(poll_s)


def choose_target(statuses):
    """The cut (n, T) to recover every secondary to, from their STATUS. Only boards with an image
    count (ops.status.had_image: a first copy has none until a group release confirms its join).
    The newest released cut if every board can reach it
    (ops.status.reach: from its applied cut up to the newest it holds, or the image cut it
    keeps); else the newest cut every board can reach (the group's anchor during a resync, a
    joined pair's cut). Else the newest released cut. (0, 0) if there is none."""
    sts = [s for s in statuses.values() if s]
    imaged = [s for s in sts if _status.had_image(s)]
    released = max((_status.released_point(s) for s in imaged or sts), key=lambda p: p[1],
                   default=(0, 0))
    for group in (imaged,):
        if not group:
            continue
        rel = max((_status.released_point(s) for s in group), key=lambda p: p[1])
        if rel[1] and all(_status.can_reach(s, rel[1]) for s in group):
            return rel
        names = {}
        for s in group:
            im = _status.image(s)
            for n, t in ((s["applied_n"], s["applied_t"]), (s["ckpt_n"], s["ckpt_t"]),
                         _status.released_point(s), (im["n"], im["t"])):
                if t and not names.get(t):
                    names[t] = n
        common = [t for t in names if all(_status.can_reach(s, t) for s in group)]
        if common:
            t = max(common)
            return names[t], t
    return released


def recover(t, board, target, retry_s=20.0, pause_s=0.05):
    """C_FAILOVER(n, T) to one secondary, retried while busy or silent. -> status or None."""
    return _command.send(t, board, wire.C_FAILOVER, target[0], target[1], retry_s=retry_s,
                         pause_s=pause_s).status


def failover(t, boards, settle_timeout=10.0, settle_polls=3, poll_s=0.25, cmd_timeout=20.0,
             status_timeout=None, pause_s=0.05, log=None):
    """Fail the secondaries `boards` (names) over to the newest released cut. -> dict:
    target_n, target_t; codes {name: status or None}; results {name: status name};
    applied {name: applied n}; recovered, no_image, no_image_yet, silent, unreachable
    (lists of names); no_common_cut (bool); ok (every board recovered or never had an
    image)."""
    say = log or (lambda m: None)
    boards = list(boards)
    st, gone = settle(t, boards, settle_timeout, settle_polls, poll_s, status_timeout)
    if st:
        say("secondaries settled: " + ", ".join(
            "%s applied %d%s" % (n, s["applied_n"], " uip %d" % s["uip_n"] if s["uip_n"] else "")
            for n, s in sorted(st.items())))
    if len({s["mode"] for s in st.values()}) > 1:
        # a mode switch was cut short: the secondaries would not agree on rolling forward
        # (SYNC) or stopping at the released cut (CLOCK): all of them stop at the cut
        say("secondaries in different modes: every one set to async before the failover")
        for n in st:
            if st[n]["mode"] != wire.MODE_CLOCK:
                _command.send(t, n, wire.C_SET_MODE, wire.MODE_CLOCK, retry_s=cmd_timeout,
                              pause_s=pause_s)
        st = {n: s for n, s in _status.collect(t, list(st), status_timeout).items()
              if s is not None} or st
    before = dict(st)
    codes = {}
    target = choose_target(st)
    end = t.now() + cmd_timeout
    for _round in range(10):
        target = choose_target(st)
        order = sorted(st, key=lambda n: (not st[n]["is_master"], n))
        redo = False
        for n in order:
            if codes.get(n) == wire.S_OK:
                continue
            rc = recover(t, n, target, max(0.0, end - t.now()), pause_s)
            codes[n] = rc
            if rc == wire.S_BAD_STATE:
                s = _status.get(t, n, status_timeout)
                if s is not None:
                    before[n] = s
                    # a newer release than the target: choose again (not for a first
                    # copy that joined ahead of the group: it has no image and refuses,
                    # and choose_target does not count it, so the target would not move)
                    if _status.had_image(s) and _status.released_point(s)[1] > target[1]:
                        redo = True
                        break
        if not redo:
            break
        fresh = _status.collect(t, list(st), status_timeout)
        st = {n: s for n, s in fresh.items() if s is not None} or st
    final = {n: _status.get(t, n, status_timeout) for n in boards if n not in gone}
    out = {"target_n": target[0], "target_t": target[1], "codes": {}, "results": {},
           "applied": {}, "recovered": [], "no_image": [], "no_image_yet": [], "silent": [],
           "unreachable": [], "no_common_cut": False}
    for n in boards:
        rc = codes.get(n)
        s = final.get(n) or before.get(n)
        if n in codes:
            out["codes"][n] = rc
            out["results"][n] = status_name(rc)
        if final.get(n) is not None:
            out["applied"][n] = final[n]["applied_n"]
        if n not in codes:
            out["unreachable"].append(n)
        elif rc is None:
            out["silent"].append(n)
        elif rc == wire.S_OK and (final.get(n) is None or (
                final[n]["copy_state"] == wire.CS_FAILED_OVER
                and (not target[0] or final[n]["applied_n"] == target[0]))):
            out["recovered"].append(n)
        elif s is not None and not _status.had_image(s):
            out["no_image_yet"].append(n)
        elif s is not None and s["copy_state"] == wire.CS_PENDING:
            out["no_image"].append(n)
        elif rc == wire.S_BAD_STATE and s is not None and _status.held_t(s) < target[1]:
            out["no_common_cut"] = True
            out["no_image"].append(n)
        else:
            out["no_image"].append(n)
    out["ok"] = bool(boards) and not (out["no_image"] or out["silent"] or out["unreachable"]
                                      or out["no_common_cut"])
    return out
