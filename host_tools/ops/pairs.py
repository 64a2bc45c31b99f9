"""Pair operations over the boards' host ports: start copy (initial copy), suspend,
resume (resync from the change bitmap), failback, and waiting for pairs to become duplex
with a progress display.

Like host_tools/rigops.py these take a bench dict (host_tools/rigmgr.py) only for the
list of boards, their roles and host port paths; everything else goes through
host_tools/transport/serial_client.py.

Waiting for a copy: a pair is done when both boards show DUPLEX and the secondary has
applied a checkpoint since the command (its applied checkpoint changed): only then does
its volume equal a cut of the primary's. Progress is copy_done / copy_total of the
primaries (copy records acknowledged by the peer / records of the current resync),
summed over the pairs waited for; the rate is computed from successive status polls.
"""
import os
import sys
import time

from firmware import wire

from host_tools.rig import manager as rigmgr
from host_tools.transport.serial_client import ClientError, HostClient, status_name

RETRY_CMD = (wire.S_NOT_READY, wire.S_BUSY_UIP)


def _client(b, timeout=2.0):
    return HostClient(b["host"], timeout=timeout, retries=2)


def _status(b, timeout=0.5):
    try:
        with _client(b, timeout) as c:
            return c.status()
    except Exception:
        return None


def _command(b, cmd, arg=0, arg2=0, retry_s=5.0):
    """Send one host command; S_NOT_READY / S_BUSY_UIP are retried for `retry_s`.
    -> status code."""
    end = time.monotonic() + retry_s
    with _client(b) as c:
        while True:
            rc = c.command(cmd, arg, arg2)
            if rc in RETRY_CMD and time.monotonic() < end:
                time.sleep(0.05)
                continue
            return rc


def select_pairs(bench, pair=None, all_pairs=False):
    """--pair P / --all -> list of pair indexes (exactly one of them must be given)."""
    if (pair is None) == (not all_pairs):
        raise ClientError("give exactly one of --pair P and --all")
    if all_pairs:
        return list(range(bench["pairs"]))
    if not 0 <= pair < bench["pairs"]:
        raise ClientError("no pair %d on this bench (pairs 0..%d)" % (pair, bench["pairs"] - 1))
    return [pair]


# -- progress --------------------------------------------------------------------------------------
def progress_enabled(stream=None):
    """A progress bar only on an interactive terminal, never under CI."""
    stream = stream or sys.stdout
    if os.environ.get("CI"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class CopyProgress:
    """Blocks copied over blocks to copy, summed over pairs, with a rate (blocks/s)
    computed from successive polls. Draws a tqdm bar when enabled; `final_line()` is
    the one-line summary printed whether or not the bar was shown."""

    def __init__(self, label="copy", enabled=None, stream=None, clock=time.monotonic):
        self.label = label
        self.stream = stream or sys.stdout
        self.enabled = progress_enabled(self.stream) if enabled is None else enabled
        self.clock = clock
        self.t0 = clock()
        self.done = 0
        self.total = 0
        self.rate = None            # blocks/s, smoothed over polls
        self._prev = None           # (t, done) of the previous poll
        self._bar = None

    def update(self, done, total):
        now = self.clock()
        if self._prev is not None:
            dt = now - self._prev[0]
            if dt > 0 and done >= self._prev[1]:
                r = (done - self._prev[1]) / dt
                self.rate = r if self.rate is None else 0.5 * self.rate + 0.5 * r
        self._prev = (now, done)
        self.done, self.total = done, max(total, done)
        if self.enabled:
            self._draw()

    def _draw(self):
        if self._bar is None:
            import shutil
            from tqdm import tqdm
            cols = min(120, shutil.get_terminal_size((100, 24)).columns)
            self._bar = tqdm(total=max(1, self.total), desc=self.label, unit="blk",
                             file=self.stream, leave=False, ncols=cols,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} blocks"
                                        "{postfix}")
        self._bar.total = max(1, self.total)
        self._bar.n = self.done
        self._bar.set_postfix_str(self.rate_text(), refresh=False)
        self._bar.refresh()

    def rate_text(self):
        return "%.1f blocks/s" % self.rate if self.rate is not None else "- blocks/s"

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def final_line(self):
        el = self.clock() - self.t0
        avg = self.done / el if el > 0 else 0.0
        return "%s: %d of %d blocks copied in %.1f s (%.1f blocks/s)" % (
            self.label, self.done, self.total, el, avg)


# -- waiting for duplex ----------------------------------------------------------------------------
def _applied(s):
    return (s["applied_n"], s["applied_t"]) if s else None


def snapshot(bench, pairs):
    """pair -> the secondary's applied checkpoint now (the wait's reference point)."""
    out = {}
    for i in pairs:
        _, sec = rigmgr.pair_boards(bench, i)
        out[i] = _applied(_status(sec))
    return out


def wait_copy(bench, pairs=None, timeout=60.0, progress=None, since=None, poll_s=0.1):
    """Wait until every pair of `pairs` (default all) is DUPLEX on both boards and its
    secondary has applied a checkpoint after joining. `since`: pair -> the secondary's
    applied checkpoint before the command (snapshot()); for a pair whose secondary had
    applied one (a resumed pair, a failback), the wait is for a checkpoint applied after
    the first poll that shows both boards DUPLEX; for the others (a first copy), for any
    applied checkpoint. Feeds `progress` (a CopyProgress) at every poll.
    -> {pair: {"copied", "total", "primary", "secondary"}}; raises ClientError on timeout."""
    pairs = list(range(bench["pairs"])) if pairs is None else list(pairs)
    since = since or {}
    end = time.monotonic() + timeout
    seen_total = {i: 0 for i in pairs}
    joined = {}                 # pair -> applied checkpoint when first seen duplex
    while True:
        rows = {}
        done_all = True
        for i in pairs:
            prim, sec = rigmgr.pair_boards(bench, i)
            p, s = _status(prim), _status(sec)
            rows[i] = (prim, sec, p, s)
            if p is not None and p["copy_state"] == wire.CS_PENDING:
                seen_total[i] = max(seen_total[i], p.get("copy_total", 0))
            ok = p is not None and s is not None and p["copy_state"] == wire.CS_DUPLEX \
                and s["copy_state"] == wire.CS_DUPLEX
            if ok:
                ref = since.get(i)
                if ref is None or ref[0] < 1:
                    ok = s["applied_n"] >= 1
                else:
                    if i not in joined:
                        joined[i] = _applied(s)
                    ok = _applied(s) != joined[i]
            done_all = done_all and ok
        if progress is not None:
            dsum = tsum = 0
            for i, (_, _, p, _) in rows.items():
                if p is None:
                    continue
                tot = p.get("copy_total", 0) or seen_total[i]
                dsum += tot if p["copy_state"] == wire.CS_DUPLEX else p.get("copy_done", 0)
                tsum += tot
            progress.update(dsum, tsum)
        if done_all:
            out = {}
            for i, (prim, sec, p, s) in rows.items():
                # copy_done at the end of the resync; should a board clear it on joining,
                # the total it showed while the copy ran is what was copied
                copied = p.get("copy_done", 0) if p.get("copy_total", 0) else seen_total[i]
                out[i] = {"copied": copied, "total": p.get("copy_total", 0) or seen_total[i],
                          "primary": prim["name"], "secondary": sec["name"]}
            return out
        if time.monotonic() > end:
            from host_tools.ops import procedures as rigops
            st = rigops.collect_status(bench)
            raise ClientError("pairs %s not duplex with a checkpoint applied after %.0f s:\n%s"
                              % (", ".join(map(str, pairs)), timeout,
                                 rigops.format_table(rigops.pair_rows(bench, st))))
        time.sleep(poll_s)


# -- commands ----------------------------------------------------------------------------------------
def start_copy(bench, full=False, wait=True, timeout=60.0, progress=None):
    """C_START_COPY (arg 1 = full copy) to every primary; with wait, until every pair
    is duplex with a checkpoint applied. -> (results {name: status}, copied {pair: ...})."""
    pairs = list(range(bench["pairs"]))
    since = snapshot(bench, pairs) if wait else None
    res = {}
    for i in pairs:
        prim, _ = rigmgr.pair_boards(bench, i)
        res[prim["name"]] = _command(prim, wire.C_START_COPY, 1 if full else 0)
    if not wait or any(rc != wire.S_OK for rc in res.values()):
        return res, {}
    return res, wait_copy(bench, pairs, timeout, progress, since)


def suspend(bench, pairs):
    """C_SUSPEND to the primaries of `pairs`. -> {name: status}."""
    res = {}
    for i in pairs:
        prim, _ = rigmgr.pair_boards(bench, i)
        res[prim["name"]] = _command(prim, wire.C_SUSPEND)
    return res


def resume(bench, pairs, wait=True, timeout=60.0, progress=None):
    """C_RESUME to the primaries of `pairs` (copy of the marked blocks, then join); with
    wait, until they are duplex again. -> (results {name: status}, copied {pair: ...})."""
    since = snapshot(bench, pairs) if wait else None
    res = {}
    for i in pairs:
        prim, _ = rigmgr.pair_boards(bench, i)
        res[prim["name"]] = _command(prim, wire.C_RESUME)
    if not wait or any(rc != wire.S_OK for rc in res.values()):
        return res, {}
    return res, wait_copy(bench, pairs, timeout, progress, since)


def dirty_blocks(bench, b):
    """-> {vol: [blocks]} marked in board b's change bitmap."""
    with _client(b) as c:
        return {v: c.dirty_list(v, bench["vol_blocks"]) for v in range(bench["nvol"])}


def failback(bench, wait=True, timeout=120.0, progress=None, log=None):
    """Reverse the copy direction after a failover, copying back only what changed.

    1. C_FAILBACK(2) to every old primary (it becomes a secondary; its journal records
       become change-bitmap marks);
    2. merge: every block marked at an old primary is marked at its peer (C_MARK_DIRTY),
       so that blocks the old primary holds beyond the recovered image are overwritten;
    3. C_FAILBACK(1) to every old secondary (FAILED_OVER -> primary, copy pending of
       its marked blocks);
    4. the bench file records the swapped roles (so workload, disaster, failover and
       verify target the new primaries / secondaries);
    5. with wait, until every pair is duplex with a checkpoint applied.

    -> {"results": {name: status name}, "pairs": {pair: {"merged", "to_copy",
    "dirty": {vol: [blocks]}, "copied", ...}}, "ok": bool}."""
    say = log or (lambda m: None)
    pairs = list(range(bench["pairs"]))
    info = {}
    results = {}
    # 0. preconditions: every board answers; old secondaries are failed over
    for i in pairs:
        prim, sec = rigmgr.pair_boards(bench, i)
        p, s = _status(prim, 1.0), _status(sec, 1.0)
        if p is None:
            raise ClientError("%s (old primary of pair %d) does not answer: start it first "
                              "(emulated bench: arcopy rig restart %s)" % (prim["name"], i, prim["name"]))
        if s is None:
            raise ClientError("%s (secondary of pair %d) does not answer" % (sec["name"], i))
        if s["copy_state"] != wire.CS_FAILED_OVER:
            raise ClientError("%s is %s, not FAILED_OVER: failback follows a failover"
                              % (sec["name"], s["copy_state_name"]))
        info[i] = {"old_primary": prim["name"], "old_secondary": sec["name"],
                   "p_role": p["role"]}
    # 1. old primaries become secondaries
    for i in pairs:
        prim, _ = rigmgr.pair_boards(bench, i)
        if info[i]["p_role"] == wire.ROLE_SECONDARY:
            rc = wire.S_OK                      # done by an earlier, interrupted failback
        else:
            rc = _command(prim, wire.C_FAILBACK, wire.ROLE_SECONDARY)
        results[prim["name"]] = rc
        say("%s: FAILBACK(secondary) -> %s" % (prim["name"], status_name(rc)))
        if rc != wire.S_OK:
            raise ClientError("%s refused FAILBACK(secondary): %s" % (prim["name"], status_name(rc)))
    # 2. merge the old primaries' marks into their peers
    for i in pairs:
        prim, sec = rigmgr.pair_boards(bench, i)
        marks = dirty_blocks(bench, prim)
        merged = 0
        with _client(sec) as c:
            for v, blocks in marks.items():
                for blk in blocks:
                    rc = c.command(wire.C_MARK_DIRTY, v, blk)
                    if rc != wire.S_OK:
                        raise ClientError("%s: MARK_DIRTY vol %d block %d -> %s"
                                          % (sec["name"], v, blk, status_name(rc)))
                    merged += 1
        dirty = dirty_blocks(bench, sec)
        info[i].update(merged=merged, old_primary_dirty=marks, dirty=dirty,
                       to_copy=sum(len(x) for x in dirty.values()))
        say("pair %d: %d blocks marked at %s merged into %s: %d blocks to copy"
            % (i, merged, prim["name"], sec["name"], info[i]["to_copy"]))
    # 3. old secondaries become primaries and copy back
    since = {}
    swapped = []
    for i in pairs:
        prim, sec = rigmgr.pair_boards(bench, i)
        since[i] = _applied(_status(prim))
        rc = _command(sec, wire.C_FAILBACK, wire.ROLE_PRIMARY)
        results[sec["name"]] = rc
        say("%s: FAILBACK(primary) -> %s" % (sec["name"], status_name(rc)))
        if rc == wire.S_OK:
            swapped.append(i)
    # 4. the bench follows
    if swapped:
        rigmgr.swap_roles(bench, swapped)
    ok = len(swapped) == len(pairs)
    out = {"results": {n: status_name(rc) for n, rc in sorted(results.items())},
           "pairs": info, "ok": ok}
    if not ok:
        return out
    if wait:
        copied = wait_copy(bench, pairs, timeout, progress, since)
        for i, c in copied.items():
            info[i]["copied"] = c["copied"]
            info[i]["primary"] = c["primary"]
            info[i]["secondary"] = c["secondary"]
    return out
