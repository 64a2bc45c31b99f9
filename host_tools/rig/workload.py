"""The real-time workload runner of a rig: a Workload driven into boards' host ports, pipelined, in wall-clock time."""
import select
import sys
import time

from firmware import wire

from host_tools.rig import manager as rigmgr
from host_tools.transport.messages import status_name
from host_tools.transport.serial_client import HostClient, PortGone, port_ident
from host_tools.check.workload import Workload

RETRY_WRITE = (wire.S_NOT_READY, wire.S_JOURNAL_FULL, wire.S_BUSY_UIP)


def mono_us():
    """System-wide monotonic microseconds (the same clock in every process)."""
    return time.monotonic_ns() // 1000


def open_client(b, timeout=1.0, retries=2):
    return HostClient(b["host"], timeout=timeout, retries=retries)


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

    def __init__(self, rig, workload, write_timeout=3.0, retry_pause=0.02, max_retries=200,
                 boards=None, reconnect_s=0.25):
        self.rig = rig
        self.wl = workload
        self.write_timeout = write_timeout
        self.retry_pause = retry_pause
        self.max_retries = max_retries
        self.reconnect_us = int(reconnect_s * 1e6) if reconnect_s else 0
        self.boards = {}
        self.clients = {}
        self.ident = {}
        self.dead = set()
        self.unopened = {}          # pair -> why its host port did not open at the start
        for b in (rigmgr.primaries(rig) if boards is None else boards):
            self.boards[b["pair"]] = b
            self.ident[b["pair"]] = port_ident(b["host"])
            try:
                self.clients[b["pair"]] = open_client(b, write_timeout)
            except (OSError, ValueError) as e:      # serial.SerialException is an OSError
                self.clients[b["pair"]] = None
                self.unopened[b["pair"]] = "%s: host port %s does not open (%s)" % (
                    b["name"], b["host"], str(e).split(":")[0] or type(e).__name__)
                self.dead.add(b["pair"])
        self.pending = {}           # (pair, tag) -> [request, deadline_us, attempts]
        self.retry = []             # [due_us, request, attempts]
        self.unsent = 0             # writes handed out for a dead board (failed at once)
        self.abandoned = 0          # writes outstanding when their board died (in flight)
        self.reconnects = 0
        self.retries = 0
        self.timeouts = 0
        self.errors = {}
        self.latencies = []
        self.exposed = {}           # pair -> writes answered OK with F_EXPOSED (not protected)
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
        if self.clients[pair] is not None:
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
            ident = port_ident(b["host"])
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
            if r.flags & wire.F_EXPOSED:
                self.exposed[pair] = self.exposed.get(pair, 0) + 1
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
        self.close()
        return wl.log

    def close(self):
        """Close every host port the driver holds (also after an interrupted run)."""
        for c in self.clients.values():
            if c is not None:
                c.close()

    def failed_by_status(self):
        """Why writes failed: {status name (or "no reply", "port gone"): count}."""
        out = dict(self.errors)
        if self.timeouts:
            out["no reply"] = out.get("no reply", 0) + self.timeouts
        return out

    def summary(self):
        lat = sorted(self.latencies)
        p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0) if lat else (lambda q: None)
        return {"issued": self.wl.issued, "completed_ok": self.wl.completed - self.wl.failed,
                "failed": self.wl.failed, "in_flight": self.wl.issued - self.wl.completed,
                "failed_by_status": self.failed_by_status(),
                "retries": self.retries, "timeouts": self.timeouts, "errors": self.errors,
                "dead_pairs": sorted(self.dead), "reconnects": self.reconnects,
                "exposed": dict(sorted(self.exposed.items())),
                "exposed_total": sum(self.exposed.values()),
                "latency_ms_p50": p(0.5), "latency_ms_p99": p(0.99),
                "latency_ms_max": lat[-1] / 1000.0 if lat else None}


def make_workload(rig, kind="ims", rate=50.0, duration_s=5.0, seed=1, concurrency=4, burst=0):
    return Workload(kind, pairs=rig["pairs"], vols=rig["nvol"], blocks=rig["vol_blocks"],
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
