"""What the operator does to a running installation, over the boards' host ports only:
start copy, watch status, drive a workload, fail over after a disaster, verify.

These functions take a bench dict (host_tools/rigmgr.py) for the list of boards and
their host port paths; everything else goes through host_tools/transport/serial_client.py, so they work
the same against real boards whose host ports are listed in a bench file.
"""
import json
import os
import select
import signal
import sys
import time

from firmware import wire

from host_tools.rig import manager as rigmgr
from host_tools.check import checker
from host_tools.transport.serial_client import HostClient, PortGone, ClientError, status_name, REASON_NAMES
from host_tools.check.workload import Workload, WorkloadLog

WORKLOAD_FILE = "workload.json"
DISASTER_FILE = "disaster.json"

RETRY_WRITE = (wire.S_NOT_READY, wire.S_JOURNAL_FULL, wire.S_BUSY_UIP)


def mono_us():
    """System-wide monotonic microseconds (the same clock in every process)."""
    return time.monotonic_ns() // 1000


def _path(bench, name):
    return os.path.join(bench["dir"], name)


def open_client(b, timeout=1.0, retries=2):
    return HostClient(b["host"], timeout=timeout, retries=retries)


def open_clients(boards, timeout=1.0, retries=2, skip_dead=True):
    """name -> HostClient for the boards whose port opens (dead ones are left out)."""
    out = {}
    for b in boards:
        try:
            out[b["name"]] = open_client(b, timeout, retries)
        except Exception:
            if not skip_dead:
                raise
    return out


def close_all(clients):
    for c in clients.values():
        c.close()


# -- status ------------------------------------------------------------------------------------
def collect_status(bench, timeout=0.5):
    """name -> status dict, or None for a board that does not answer."""
    out = {}
    for b in bench["boards"]:
        try:
            with open_client(b, timeout, 1) as c:
                out[b["name"]] = c.status()
        except Exception:
            out[b["name"]] = None
    return out


def pair_rows(bench, st):
    """One row per pair from collect_status() output; boards are picked by their current
    role (after a failback p<i> is the secondary of pair i)."""
    rows = []
    for i in range(bench["pairs"]):
        try:
            pb, sb = rigmgr.pair_boards(bench, i)
        except rigmgr.BenchError:
            pb, sb = {"name": "p%d" % i}, {"name": "s%d" % i}
        p = st.get(pb["name"])
        s = st.get(sb["name"])
        pending = p is not None and p["copy_state"] == wire.CS_PENDING
        reason = (p or {}).get("suspend_reason") or (s or {}).get("suspend_reason") or 0
        rows.append({
            "pair": i,
            "p_name": pb["name"],
            "s_name": sb["name"],
            "boards": "%s>%s" % (pb["name"], sb["name"]),
            "primary": p and p["copy_state_name"],
            "secondary": s and s["copy_state_name"],
            "p_master": p["is_master"] if p else None,
            "s_master": s["is_master"] if s else None,
            "ckpt_seen": p and p["ckpt_n"],
            "held": s and s["ckpt_n"],
            "released": s and s["released_n"],
            "applied": s and s["applied_n"],
            "uip": s and (s["uip_n"] if s["uip"] else 0),
            "p_journal": p and p["journal_depth"],
            "s_journal": s and s["journal_depth"],
            "lag_ms": None if p is None else round(p["lag_us"] / 1000.0, 1),
            "apply_lag_ms": None if s is None else round(s["lag_us"] / 1000.0, 1),
            "skew_us": p and p["skew_us"],
            "skew_max_us": p and p["skew_max_us"],
            "writes": p and p["writes_completed"],
            "frames_bad": (p["frames_bad"] if p else 0) + (s["frames_bad"] if s else 0),
            "copy_done": p.get("copy_done") if p else None,
            "copy_total": p.get("copy_total") if p else None,
            "copy": ("%d/%d" % (p.get("copy_done", 0), p.get("copy_total", 0))) if pending else None,
            "p_dirty": p.get("dirty_blocks") if p else None,
            "s_dirty": s.get("dirty_blocks") if s else None,
            "pace_us": p.get("pace_us") if p else None,
            "pace_threshold": p.get("pace_threshold") if p else None,
            "pace_max_us": p.get("pace_max_us") if p else None,
            "suspend_reason": reason,
            "reason": REASON_NAMES.get(reason, str(reason)) or None,
        })
    return rows


_COLS = (("pair", "pair", 4), ("boards", "P > S", 9), ("primary", "P state", 9), ("secondary", "S state", 11),
         ("copy", "copy", 9), ("ckpt_seen", "ckpt", 6), ("held", "held", 6),
         ("released", "rel", 6), ("applied", "applied", 7), ("uip", "uip", 5),
         ("p_journal", "P jrnl", 6), ("s_journal", "S jrnl", 6), ("p_dirty", "Pdirty", 6),
         ("s_dirty", "Sdirty", 6), ("lag_ms", "lag ms", 7), ("apply_lag_ms", "S lag ms", 8),
         ("pace_us", "pace us", 7), ("pace_threshold", "pace>", 5), ("skew_max_us", "skew us", 7),
         ("writes", "writes", 7), ("frames_bad", "bad", 4), ("reason", "why", 8))


def format_table(rows):
    def cell(v):
        if v is None:
            return "-"
        if v is True:
            return "yes"
        if v is False:
            return "no"
        return str(v)
    head = " ".join(h.rjust(w) for _, h, w in _COLS)
    lines = [head]
    for r in rows:
        lines.append(" ".join(cell(r.get(k)).rjust(w) for k, _, w in _COLS))
    return "\n".join(lines)


# -- start copy --------------------------------------------------------------------------------
def start_copy(bench, wait=True, timeout=20.0, log=None, full=False, progress=None):
    """C_START_COPY to every primary (arg 1 with full: copy every block, else the blocks
    marked since format); with wait, until every pair is duplex and a checkpoint has been
    applied everywhere. -> dict name -> status code (see pairops.start_copy for more)."""
    from host_tools.ops import pairs as pairops
    res, _ = pairops.start_copy(bench, full=full, wait=wait, timeout=timeout, progress=progress)
    bad = {n: status_name(rc) for n, rc in res.items() if rc != wire.S_OK}
    if wait and bad:
        raise ClientError("START_COPY refused: %s" % ", ".join("%s %s" % kv for kv in sorted(bad.items())))
    return res


# -- workload over the host ports ------------------------------------------------------------------
def _port_ident(path):
    """Identity of a host port path: the symlink's inode and target (an emulated board
    replaces its symlink at every boot), else None."""
    try:
        if os.path.islink(path):
            return (os.lstat(path).st_ino, os.readlink(path))
    except OSError:
        pass
    return None


class SerialDriver:
    """Runs a host_tools.check.workload.Workload in real time against the primaries' host
    ports (or the given `boards`, one per pair, e.g. failed-over secondaries):
    several writes in flight, pipelined on each port, one select() loop.

    A write completes (ok) on S_OK; S_NOT_READY / S_JOURNAL_FULL / S_BUSY_UIP (the
    board did not take it) are sent again after a short pause, keeping the issue time;
    any other status, or no answer within `write_timeout`, fails it (ok=False). A port
    that dies (the board was killed) leaves its outstanding writes in flight: their
    outcome is unknown, which is exactly what the checker expects of them; the
    workload gives up on them (Workload.abandon) and goes on with the other pairs.
    Writes for a pair whose port is gone fail at once (the host's I/O error). Every
    `reconnect_s` the driver looks whether a dead board came back (an emulated board
    publishes a new host port symlink at boot; a real one reappears at its path) and
    then writes to it again."""

    def __init__(self, bench, workload, write_timeout=3.0, retry_pause=0.02, max_retries=200,
                 boards=None, reconnect_s=0.25):
        self.bench = bench
        self.wl = workload
        self.write_timeout = write_timeout
        self.retry_pause = retry_pause
        self.max_retries = max_retries
        self.reconnect_us = int(reconnect_s * 1e6) if reconnect_s else 0
        self.boards = {}
        self.clients = {}
        self.ident = {}
        for b in (rigmgr.primaries(bench) if boards is None else boards):
            self.boards[b["pair"]] = b
            self.ident[b["pair"]] = _port_ident(b["host"])
            self.clients[b["pair"]] = open_client(b, write_timeout)
        self.dead = set()
        self.pending = {}           # (pair, tag) -> [request, deadline_us, attempts]
        self.retry = []             # [due_us, request, attempts]
        self.unsent = 0             # writes handed out for a dead board (failed at once)
        self.abandoned = 0          # writes outstanding when their board died (in flight)
        self.reconnects = 0
        self.retries = 0
        self.timeouts = 0
        self.errors = {}
        self.latencies = []
        self._next_reconnect = 0

    def _fail(self, req, now, why):
        self.errors[why] = self.errors.get(why, 0) + 1
        self.wl.complete(req.id, now, False)

    def _send(self, req, attempts, now):
        if req.pair in self.dead:
            self.unsent += 1
            self._fail(req, now, "port gone")
            return
        c = self.clients[req.pair]
        try:
            tag = c.send(wire.T_H_WRITE, HostClient.write_payload(req.vol, req.block, req.data))
        except PortGone:
            self._dead(req.pair)
            self.unsent += 1
            self._fail(req, now, "port gone")     # maybe half sent: outcome unknown
            return
        self.pending[(req.pair, tag)] = [req, now + int(self.write_timeout * 1e6), attempts, now]

    def _dead(self, pair):
        if pair in self.dead:
            return
        self.dead.add(pair)
        self.clients[pair].close()
        for key in [k for k in self.pending if k[0] == pair]:
            req = self.pending.pop(key)[0]
            self.abandoned += 1
            self.wl.abandon(req.id)

    def _reconnect(self, now):
        if not self.dead or not self.reconnect_us or now < self._next_reconnect:
            return
        self._next_reconnect = now + self.reconnect_us
        for pair in sorted(self.dead):
            b = self.boards[pair]
            ident = _port_ident(b["host"])
            if ident is not None and ident == self.ident[pair]:
                continue                    # the same (dead) pty: not back yet
            try:
                c = open_client(b, self.write_timeout)
            except Exception:
                continue
            self.clients[pair] = c
            self.ident[pair] = ident
            self.dead.discard(pair)
            self.reconnects += 1

    def _on_reply(self, pair, r, now):
        ent = self.pending.pop((pair, r.tag), None)
        if ent is None:
            return
        req, _, attempts, sent = ent
        if r.status == wire.S_OK and not r.error:
            self.latencies.append(now - sent)
            self.wl.complete(req.id, now, True)
        elif r.status in RETRY_WRITE and not r.error and attempts < self.max_retries:
            self.retries += 1
            self.retry.append([now + int(self.retry_pause * 1e6), req, attempts + 1])
        else:
            name = status_name(r.status)
            self.errors[name] = self.errors.get(name, 0) + 1
            self.wl.complete(req.id, now, False)

    def run(self, stop=None, progress=None, on_tick=None):
        """Drive until the workload is done, every primary is dead, or stop.is_set().
        -> the WorkloadLog (closed at the stop's disaster time if `stop` carries one)."""
        wl = self.wl
        now = mono_us()
        wl.start(now)
        t0 = now
        last_prog = now
        while True:
            now = mono_us()
            if stop is not None and stop.is_set():
                break
            due = [x for x in self.retry if x[0] <= now]
            if due:
                self.retry = [x for x in self.retry if x[0] > now]
                for _, req, att in due:
                    self._send(req, att, now)
            for req in wl.poll(now):
                self._send(req, 1, now)
            if wl.done:
                break
            if len(self.dead) == len(self.clients):
                break
            if wl.stopped and not self.pending and not self.retry:
                break                       # nothing more can complete
            self._reconnect(now)
            wake = wl.next_wakeup()
            cands = [now + 50000]
            if wake is not None:
                cands.append(wake)
            if self.retry:
                cands.append(min(x[0] for x in self.retry))
            if self.pending:
                cands.append(min(e[1] for e in self.pending.values()))
            tmo = max(0, min(cands) - now) / 1e6
            fds = {c.fileno(): p for p, c in self.clients.items() if p not in self.dead}
            if fds:
                r, _, _ = select.select(list(fds), (), (), tmo)
            else:
                time.sleep(tmo)
                r = []
            now = mono_us()
            for fd in r:
                pair = fds[fd]
                try:
                    replies = self.clients[pair].pump(keep=False)
                except PortGone:
                    self._dead(pair)
                    continue
                for rep in replies:
                    self._on_reply(pair, rep, now)
            for key in [k for k, e in self.pending.items() if e[1] <= now]:
                req = self.pending.pop(key)[0]
                if key[0] in self.dead:
                    continue            # board gone: outcome unknown, stays in flight
                self.timeouts += 1
                wl.complete(req.id, now, False)
            if progress is not None and now - last_prog >= 100000:
                progress(now - t0, self)
                last_prog = now
            if on_tick is not None:
                on_tick(now, self)
        end = getattr(stop, "at_us", None) if stop is not None else None
        wl.log.close(end if end else mono_us())
        if progress is not None:
            progress(mono_us() - t0, self)
        for c in self.clients.values():
            c.close()
        return wl.log

    def summary(self):
        lat = sorted(self.latencies)
        p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0) if lat else (lambda q: None)
        return {"issued": self.wl.issued, "completed_ok": self.wl.completed - self.wl.failed,
                "failed": self.wl.failed, "in_flight": self.wl.issued - self.wl.completed,
                "retries": self.retries, "timeouts": self.timeouts, "errors": self.errors,
                "dead_pairs": sorted(self.dead), "reconnects": self.reconnects,
                "latency_ms_p50": p(0.5), "latency_ms_p99": p(0.99),
                "latency_ms_max": lat[-1] / 1000.0 if lat else None}


def make_workload(bench, kind="ims", rate=50.0, duration_s=5.0, seed=1, concurrency=4, burst=0):
    return Workload(kind, pairs=bench["pairs"], vols=bench["nvol"], blocks=bench["vol_blocks"],
                    rate=rate, duration_us=int(duration_s * 1e6), concurrency=concurrency,
                    seed=seed, burst=burst)


def tqdm_progress(duration_s, enabled=True):
    """A progress callback drawing a tqdm bar over the run time (on a terminal only), or
    None; -> (callback, close)."""
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    import shutil
    from tqdm import tqdm
    cols = min(120, shutil.get_terminal_size((100, 24)).columns)
    bar = tqdm(total=round(duration_s, 1), unit="s", file=sys.stderr, leave=True, ncols=cols,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s{postfix}")

    def cb(elapsed_us, drv):
        x = min(duration_s, elapsed_us / 1e6)
        bar.n = round(x, 1)
        wl = drv.wl
        bar.set_postfix_str("issued %d ok %d failed %d in flight %d"
                            % (wl.issued, wl.completed - wl.failed, wl.failed, wl.outstanding))
        bar.refresh()
    return cb, bar.close


def save_log(bench, log, extra=None):
    """Save `log` as the bench's workload log. The log it replaces is folded into the
    bench's history first (see fold_history), so that `verify` can tell the blocks of
    earlier runs (still on the volumes) from stray data."""
    d = log.to_dict()
    if extra:
        d["meta"] = dict(d.get("meta") or {}, **extra)
    path = _path(bench, WORKLOAD_FILE)
    if os.path.exists(path):
        try:
            old = WorkloadLog.load(path)
        except (OSError, ValueError, KeyError):
            old = None
        if old is not None:
            fold_history(bench, old)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(d, f, separators=(",", ":"))
    os.replace(tmp, path)
    return path


def load_log(bench):
    path = _path(bench, WORKLOAD_FILE)
    if not os.path.exists(path):
        raise ClientError("no workload log in %s (run `arcopy workload` first)" % bench["dir"])
    return WorkloadLog.load(path)


# -- history: blocks written by earlier workload runs ----------------------------------------------
# A volume keeps what earlier runs wrote (data written before the copy started, the writes
# of a workload before the last one, host writes at failed-over secondaries that failback
# copied back). The checker knows only the current log and would call those blocks stray
# payloads; the history lists them as (pair, vol, block, payload CRC) so that verify can
# count them as "not written by this run" instead.
HISTORY_FILE = "history.json"


def load_history(bench):
    """-> {(pair, vol, block): set of payload CRCs} of every earlier run's writes."""
    path = _path(bench, HISTORY_FILE)
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for p, v, k, crc in json.load(f).get("blocks", ()):
                out.setdefault((p, v, k), set()).add(crc)
    return out


def fold_history(bench, log):
    """Add every write of `log` (whatever its outcome: a failed or in-flight write may be
    on the volume too) to the bench's history."""
    path = _path(bench, HISTORY_FILE)
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = json.load(f).get("blocks", [])
    have = set(map(tuple, rows))
    for e in log.entries:
        data = log.payload(e.id)
        row = (e.pair, e.vol, e.block, _crc_of(data))
        if row not in have:
            have.add(row)
            rows.append(list(row))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"format": "arcopy-history", "version": 1, "blocks": rows}, f,
                  separators=(",", ":"))
    os.replace(tmp, path)
    return len(rows)


def _crc_of(data):
    return int.from_bytes(bytes(data[-4:]), "little")


def set_aside_history(images, log, history):
    """In read-back `images` ({pair: {vol: {block: data}}}), blank every block that holds
    a payload of an earlier run (in `history`, and not a write of the current `log`):
    for this run's check that block was never written. -> number of blocks blanked."""
    from host_tools.check import payload as _payload
    if not history:
        return 0
    by_id = {e.id: e for e in log.entries}
    n = 0
    for pair, vols in images.items():
        for vol, image in vols.items():
            for blk in list(dict.keys(image)):
                data = dict.get(image, blk)
                if data is None:
                    continue
                crcs = history.get((pair, vol, blk))
                if not crcs or _crc_of(data) not in crcs:
                    continue
                st = _payload.inspect(data)
                if st.status != _payload.VALID:
                    continue
                e = by_id.get(st.payload.serial)
                if e is not None and e.address == (pair, vol, blk) and \
                        log.payload(e.id) == bytes(data):
                    continue                        # this run's write
                dict.__setitem__(image, blk, None)
                n += 1
    return n


# -- disaster ------------------------------------------------------------------------------------
def disaster(bench):
    """kill -9 every primary board; -> {"disaster_us", "killed"} (also saved)."""
    t = mono_us()
    killed = rigmgr.kill(bench, [b["name"] for b in rigmgr.primaries(bench)], signal.SIGKILL)
    rec = {"disaster_us": t, "wall": time.time(), "killed": killed}
    with open(_path(bench, DISASTER_FILE), "w") as f:
        json.dump(rec, f)
    return rec


def load_disaster(bench):
    path = _path(bench, DISASTER_FILE)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


# -- failover --------------------------------------------------------------------------------------
def _sec_key(s):
    return (s["applied_n"], s["uip_n"], s["released_n"], s["ckpt_n"], s["flags"] & wire.ST_UIP,
            s["copy_state"])


def released_point(s):
    """The newest checkpoint a secondary knows to be released: (n, T). Checkpoints are
    ordered by their time T (numbers are labels that a change of master may repeat)."""
    if s["uip_n"] and s["uip_t"] > s["applied_t"]:
        return s["uip_n"], s["uip_t"]
    return s["applied_n"], s["applied_t"]


def failover(bench, settle_timeout=10.0, settle_polls=3, poll_s=0.25, cmd_timeout=20.0, log=None):
    """Recover every reachable secondary to the newest released checkpoint and open it
    to the host. -> dict with target, per-board results, ok.

    1. Wait (bounded) until the secondary group is quiet: no update in progress and the
       same statuses over `settle_polls` polls (rounds already released finish).
    2. Target = the newest released checkpoint seen by any secondary
       (the uip checkpoint if it is newer than the applied one, else the applied one;
       newest by time T).
    3. C_FAILOVER(n, T) to the secondary master first (after it, nobody releases more),
       then to the others; S_BUSY_UIP / S_NOT_READY are retried. A board that answers
       S_BAD_STATE because it moved past the target makes us recompute the target."""
    say = log or (lambda m: None)
    secs = rigmgr.secondaries(bench)
    clients = open_clients(secs, timeout=1.0)
    try:
        def statuses():
            out = {}
            for n, c in clients.items():
                try:
                    out[n] = c.status()
                except (ClientError, PortGone):
                    pass
            return out
        # 1. settle
        end = time.monotonic() + settle_timeout
        prev, same = None, 0
        st = statuses()
        while time.monotonic() < end:
            key = {n: _sec_key(s) for n, s in st.items()}
            busy = any(s["uip"] for s in st.values() if s["copy_state"] != wire.CS_FAILED_OVER)
            same = same + 1 if key == prev else 0
            prev = key
            if same >= settle_polls - 1 and not busy:
                break
            time.sleep(poll_s)
            st = statuses()
        if not st:
            raise ClientError("no secondary answers")
        say("secondaries settled: " + ", ".join(
            "%s applied %d%s" % (n, s["applied_n"], " uip %d" % s["uip_n"] if s["uip_n"] else "")
            for n, s in sorted(st.items())))
        results = {}
        end = time.monotonic() + cmd_timeout
        for _round in range(10):
            target = max((released_point(s) for s in st.values()), key=lambda p: p[1], default=(0, 0))
            order = sorted(st, key=lambda n: (not st[n]["is_master"], n))
            redo = False
            for n in order:
                if results.get(n) == wire.S_OK:
                    continue
                while True:
                    try:
                        rc = clients[n].command(wire.C_FAILOVER, target[0], target[1])
                    except ClientError as e:
                        rc = None
                        results[n] = str(e)
                        break
                    if rc in (wire.S_BUSY_UIP, wire.S_NOT_READY) and time.monotonic() < end:
                        time.sleep(0.05)
                        continue
                    break
                if rc is None:
                    continue
                results[n] = rc
                if rc == wire.S_BAD_STATE:
                    try:
                        s = clients[n].status()
                    except ClientError:
                        continue
                    if released_point(s)[0] > target[0]:
                        redo = True
                        break
            if not redo:
                break
            st = statuses()
        final = statuses()
        ok = all(results.get(n) == wire.S_OK for n in st) and all(
            s["copy_state"] == wire.CS_FAILED_OVER and s["applied_n"] == target[0]
            for s in final.values())
        return {"target_n": target[0], "target_t": target[1], "ok": ok,
                "results": {n: (status_name(v) if isinstance(v, int) else v)
                            for n, v in sorted(results.items())},
                "applied": {n: s["applied_n"] for n, s in sorted(final.items())},
                "unreachable": sorted(set(b["name"] for b in secs) - set(final))}
    finally:
        close_all(clients)


# -- read back and verify ------------------------------------------------------------------------------
class _Volume(dict):
    """Blocks read back from a board; a block that could not be read raises Unreadable."""

    def __init__(self, nblocks):
        dict.__init__(self)
        self.failed = {}
        self.nblocks = nblocks

    def keys(self):
        return range(self.nblocks)

    def __contains__(self, k):
        return True

    def __getitem__(self, k):
        if k in self.failed:
            raise checker.Unreadable(self.failed[k])
        return dict.get(self, k)

    def get(self, k, default=None):
        return self[k]


def read_volumes(bench, boards=None, window=8, timeout=2.0, busy_timeout=20.0):
    """Read every block of every volume of the secondaries (default) through their host
    ports, pipelined. -> {pair: {vol: _Volume}}, stats dict."""
    boards = boards or rigmgr.secondaries(bench)
    nvol, nblk = bench["nvol"], bench["vol_blocks"]
    images = {}
    todo = {}
    clients = {}
    stats = {"reads": 0, "busy_retries": 0, "failed": 0}
    for b in boards:
        vols = {v: _Volume(nblk) for v in range(nvol)}
        images[b["pair"]] = vols
        try:
            clients[b["name"]] = open_client(b, timeout)
        except Exception as e:
            for v in range(nvol):
                for k in range(nblk):
                    vols[v].failed[k] = "port does not open: %s" % e
            continue
        todo[b["name"]] = [(v, k) for v in range(nvol) for k in range(nblk)][::-1]
    pair_of = {b["name"]: b["pair"] for b in boards}
    inflight = {n: {} for n in clients}          # tag -> (vol, blk, deadline)
    busy_until = time.monotonic() + busy_timeout
    retry_at = {n: 0.0 for n in clients}
    try:
        while any(todo.get(n) or inflight[n] for n in clients):
            now = time.monotonic()
            for n, c in clients.items():
                if c.gone:
                    continue
                while todo[n] and len(inflight[n]) < window and now >= retry_at[n]:
                    v, k = todo[n].pop()
                    try:
                        tag = c.send(wire.T_H_READ, HostClient.read_payload(v, k))
                    except PortGone:
                        todo[n].append((v, k))
                        break
                    inflight[n][tag] = (v, k, now + timeout)
            fds = {c.fileno(): n for n, c in clients.items() if not c.gone}
            r, _, _ = select.select(list(fds), (), (), 0.05) if fds else ([], None, None)
            now = time.monotonic()
            for fd in r:
                n = fds[fd]
                try:
                    reps = clients[n].pump(keep=False)
                except PortGone:
                    reps = []
                for rep in reps:
                    ent = inflight[n].pop(rep.tag, None)
                    if ent is None:
                        continue
                    v, k, _ = ent
                    vol = images[pair_of[n]][v]
                    if rep.status == wire.S_OK and not rep.error:
                        dict.__setitem__(vol, k, rep.body)
                        stats["reads"] += 1
                    elif rep.status == wire.S_BUSY_UIP and now < busy_until:
                        stats["busy_retries"] += 1
                        todo[n].append((v, k))
                        retry_at[n] = now + 0.02
                    else:
                        vol.failed[k] = "read refused: %s" % status_name(rep.status)
                        stats["failed"] += 1
            for n, c in clients.items():
                for tag, (v, k, dl) in list(inflight[n].items()):
                    if dl <= now or c.gone:
                        del inflight[n][tag]
                        c.pending.discard(tag)
                        if c.gone:
                            images[pair_of[n]][v].failed[k] = "port closed"
                            stats["failed"] += 1
                        else:
                            todo[n].append((v, k))     # reads are idempotent: ask again
                if c.gone:
                    for v, k in todo[n]:
                        images[pair_of[n]][v].failed[k] = "port closed"
                        stats["failed"] += 1
                    todo[n] = []
    finally:
        close_all(clients)
    return images, stats


def verify(bench, log=None, disaster_us=None):
    """Read the secondaries back and check them against the workload log. -> Report, stats.
    Blocks that hold a write of an earlier run (the bench's history) count as not
    written by this run (stats["earlier_blocks"])."""
    if log is None:
        log = load_log(bench)
    if disaster_us is None:
        d = load_disaster(bench)
        if d and log.start_us is not None and d["disaster_us"] >= log.start_us:
            disaster_us = d["disaster_us"]
    images, stats = read_volumes(bench)
    stats["earlier_blocks"] = set_aside_history(images, log, load_history(bench))
    rep = checker.check(log, images, disaster_us=disaster_us)
    return rep, stats
