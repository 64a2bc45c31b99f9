# Pinned simulator fingerprints: a few seeds whose complete outcome is recorded in sim_pinned.json.
"""Pinned simulator fingerprints (used by tests/test_sim_pinned.py).

A fingerprint of one drill is: the drill's own state digest (recovered images, events executed,
final virtual time), a digest of every workload log it wrote (every write's issue and
completion), and a digest of its whole result (wall-clock fields left out). A change to the
simulator engine that is meant to be performance-only must leave every fingerprint as it is.

A change of behaviour (firmware, workload, faults) changes them on purpose: then regenerate
the file, check the diff is the one intended, and commit it:

    .venv/bin/python tests/sim_pinned.py --write
"""
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PINNED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sim_pinned.json")
WALL_KEYS = ("wall_seconds",)

# name -> (runner, keyword arguments); short runs (a few seconds of CPU in all)
CASES = {
    "saturating-none-1": ("scenario", dict(seed=1, pairs=4, duration_s=4.0, faults="none", rate=200.0,
                                           kind="random", concurrency=16, settle_s=0.5,
                                           world_opts={"disaster": False})),
    "all-3": ("scenario", dict(seed=3, faults="all", duration_s=4.0)),
    "all-8": ("scenario", dict(seed=8, faults="all", duration_s=4.0)),
    "clockless-loss-jitter-5": ("scenario", dict(seed=5, faults="loss,jitter", mode="clockless",
                                                 duration_s=4.0)),
    "sync-crash-powercut-2": ("scenario", dict(seed=2, faults="crash,powercut", mode="sync",
                                               duration_s=4.0)),
    "failback-corrupt-1": ("ops", dict(op="failback", seed=1, faults="corrupt,outage")),
    "initial-copy-loss-4": ("ops", dict(op="initial-copy", seed=4, faults="loss,collision")),
    "pacing-drift-6": ("ops", dict(op="pacing", seed=6, faults="drift,crash")),
    "autosuspend-all-2": ("ops", dict(op="autosuspend", seed=2, faults="all")),
}


class _Logs:
    """Collects every Workload made while active (the drills make their own)."""

    def __enter__(self):
        from host_tools.check import workload as wl_mod
        self.cls = wl_mod.Workload
        self.orig = self.cls.__init__
        self.made = made = []
        orig = self.orig

        def init(wl, *a, **kw):
            orig(wl, *a, **kw)
            made.append(wl)
        self.cls.__init__ = init
        return self

    def __exit__(self, *exc):
        self.cls.__init__ = self.orig
        return False


def _log_digest(workloads):
    h = hashlib.blake2b(digest_size=16)
    for wl in workloads:
        log = wl.log
        h.update(repr((log.start_us, log.end_us, len(log.entries))).encode())
        for e in log.entries:
            h.update(repr(tuple(getattr(e, f) for f in e.FIELDS)).encode())
    return h.hexdigest()


def _result_digest(res):
    res = {k: v for k, v in res.items() if k not in WALL_KEYS}
    text = json.dumps(res, sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fingerprint(runner, kw):
    """-> {digest, events, sim_seconds, log, result} of one drill."""
    from host_tools.sim.scenario import run_scenario
    from host_tools.sim.drills import run_ops
    with _Logs() as logs:
        res = run_scenario(**kw) if runner == "scenario" else run_ops(**kw)
    return {"digest": res["digest"], "events": res["events"], "sim_seconds": res["sim_seconds"],
            "log": _log_digest(logs.made), "result": _result_digest(res)}


def compute(names=None):
    return {name: fingerprint(*CASES[name]) for name in (names or sorted(CASES))}


def load():
    with open(PINNED) as f:
        return json.load(f)


def main(argv):
    if argv[1:] not in ([], ["--write"]):
        print("usage: tests/sim_pinned.py [--write]", file=sys.stderr)
        return 2
    got = compute()
    if argv[1:] == ["--write"]:
        with open(PINNED, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
            f.write("\n")
        print("wrote " + PINNED)
        return 0
    old = load()
    bad = [n for n in sorted(CASES) if old.get(n) != got[n]]
    for n in bad:
        print("%s: pinned %s, now %s" % (n, old.get(n), got[n]))
    print("%d of %d fingerprints differ" % (len(bad), len(CASES)))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
