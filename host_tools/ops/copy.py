"""Start copy (the initial copy) and the wait until pairs are duplex, with a progress display.

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

from host_tools.ops import command as _command
from host_tools.ops import status as _status
from host_tools.ops.errors import OpError
from host_tools.transport.messages import status_name


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
def snapshot(t, pairs, timeout=None):
    """pair -> the secondary's applied checkpoint now (the wait's reference point).
    pairs: {i: (primary, secondary)}."""
    return {i: _status.applied(_status.get(t, sec, timeout)) for i, (_, sec) in pairs.items()}


def wait_copy(t, pairs, timeout=60.0, progress=None, since=None, poll_s=0.1, status_timeout=0.5):
    """Wait until every pair of `pairs` ({i: (primary, secondary)}) is DUPLEX on both boards
    and its secondary has applied a checkpoint after joining. `since`: pair -> the
    secondary's applied checkpoint before the command (snapshot()); for a pair whose
    secondary had applied one (a resumed pair, a failback), the wait is for a checkpoint
    applied after the first poll that shows both boards DUPLEX; for the others (a first
    copy), for any applied checkpoint. Feeds `progress` (a CopyProgress) at every poll.
    -> {pair: {"copied", "total", "primary", "secondary"}}; raises OpError on timeout."""
    since = since or {}
    end = t.now() + timeout
    seen_total = {i: 0 for i in pairs}
    joined = {}                 # pair -> applied checkpoint when first seen duplex
    while True:
        rows = {}
        done_all = True
        for i, (prim, sec) in pairs.items():
            p, s = _status.get(t, prim, status_timeout), _status.get(t, sec, status_timeout)
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
                        joined[i] = _status.applied(s)
                    ok = _status.applied(s) != joined[i]
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
                          "primary": prim, "secondary": sec}
            return out
        if t.now() > end:
            raise OpError("pairs %s not duplex with a checkpoint applied after %.0f s:\n%s"
                          % (", ".join(map(str, sorted(pairs))), timeout, _status.table(t, pairs)))
        t.sleep(poll_s)


# -- start copy ------------------------------------------------------------------------------------
def start_pair(t, primary, full=False, **send_kw):
    """C_START_COPY to one primary (arg 1: copy every block, else the blocks marked since
    format). -> ops.command.Sent."""
    return _command.send(t, primary, wire.C_START_COPY, 1 if full else 0, **send_kw)


def start_copy(t, pairs, full=False, wait=True, timeout=60.0, progress=None):
    """C_START_COPY to the primary of every pair of `pairs` ({i: (primary, secondary)}); with
    wait, until every pair is duplex with a checkpoint applied.
    -> (results {primary: status}, copied {pair: ...})."""
    since = snapshot(t, pairs) if wait else None
    res = {}
    for i in sorted(pairs):
        prim = pairs[i][0]
        res[prim] = start_pair(t, prim, full).status
    if not wait or any(rc != wire.S_OK for rc in res.values()):
        return res, {}
    return res, wait_copy(t, pairs, timeout, progress, since)


def refused(res):
    """The refusals of a {board: status} result, as {board: status name}."""
    return {n: status_name(rc) for n, rc in res.items() if rc != wire.S_OK}
