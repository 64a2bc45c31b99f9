# Pinned simulator fingerprints: a few seeds whose complete outcome is recorded in sim_pinned.json.
"""Pinned simulator fingerprints (used by tests/test_sim_pinned.py).

A fingerprint pins what the system did, not how the engine got there (no count of engine
events, no scheduling artefacts). Of one drill:

- "boards": every board's durable state at the end (its whole disk: superblock, journal,
  volumes), by board name;
- "frames": every frame every board sent, in order per board and port, with the board's local
  time of sending (one stream per board and port: the order between ports is not pinned);
- "log": every workload log the drill wrote (every write's issue, completion time and result);
- "result": the drill's result (checker verdict, recovered cut, recovered images' digest,
  counters of the boards) less its wall-clock and engine-event fields;
- "outcome": one digest of the four.

A structural change to the engine (fewer events, bulk delivery, skipped idle wake-ups) that is
meant to change nothing the boards do must leave every fingerprint as it is.

CASES are the pinned drills; DIFF_CASES a differential set of 30 seeds across the fault classes
(tests/test_sim_pinned.py runs one of them by default, all under `-m slow`).

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
# result fields that are not outcome: wall clock, engine events, the old state digest (which
# counted events before) -- the images it covers are in "boards" and "result" anyway
SKIP_KEYS = ("wall_seconds", "events", "digest")

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

# the differential set: 30 seeds, one fault class each (cycling), short scenario runs
_DIFF_FAULTS = ("none", "loss", "corrupt", "jitter", "outage", "drift", "powercut", "crash",
                "collision", "all")
_DIFF_MODES = ("clock", "clockless", "sync")
DIFF_CASES = {
    "diff-%02d-%s-%s" % (seed, _DIFF_FAULTS[seed % 10], _DIFF_MODES[seed % 3]):
        ("scenario", dict(seed=seed, faults=_DIFF_FAULTS[seed % 10], mode=_DIFF_MODES[seed % 3],
                          duration_s=6.0, rate=120.0, kind="random",
                          concurrency=16, pairs=2 + seed % 3))
    for seed in range(30)}
DIFF_QUICK = "diff-19-all-clockless"
ALL_CASES = dict(CASES, **DIFF_CASES)


class _Record:
    """While active: collects every Workload and World made (the drills make their own) and
    folds every frame every board sends into a digest per board and port."""

    def __enter__(self):
        from host_tools.check import workload as wl_mod
        from host_tools.sim import world as world_mod
        from host_tools.sim.board import SimBoard
        self.workloads = []
        self.worlds = []
        self.frames = {}                 # (board name, port) -> blake2b
        self._undo = []
        for cls, made in ((wl_mod.Workload, self.workloads), (world_mod.World, self.worlds)):
            self._wrap_init(cls, made)
        frames = self.frames

        def sink(board, port, local_us, frame):
            key = (board.name, port)
            h = frames.get(key)
            if h is None:
                h = frames[key] = hashlib.blake2b(digest_size=16)
            h.update(b"%d %d:" % (local_us, len(frame)))
            h.update(frame)
        self._undo.append((SimBoard, "frame_sink", SimBoard.frame_sink))
        SimBoard.frame_sink = staticmethod(sink)
        return self

    def _wrap_init(self, cls, made):
        orig = cls.__init__

        def init(obj, *a, **kw):
            orig(obj, *a, **kw)
            made.append(obj)
        self._undo.append((cls, "__init__", orig))
        cls.__init__ = init

    def __exit__(self, *exc):
        for cls, name, orig in reversed(self._undo):
            setattr(cls, name, orig)
        return False


def _log_digest(workloads):
    h = hashlib.blake2b(digest_size=16)
    for wl in workloads:
        log = wl.log
        h.update(repr((log.start_us, log.end_us, len(log.entries))).encode())
        for e in log.entries:
            h.update(repr(tuple(getattr(e, f) for f in e.FIELDS)).encode())
    return h.hexdigest()


def _boards_digest(worlds):
    h = hashlib.blake2b(digest_size=16)
    for w in worlds:
        for name in sorted(w.boards):
            disk = w.boards[name].disk
            data = getattr(getattr(disk, "inner", disk), "data")
            h.update(b"%s %d:" % (name.encode(), len(data)))
            h.update(hashlib.blake2b(bytes(data), digest_size=16).digest())
    return h.hexdigest()


def _frames_digest(frames):
    h = hashlib.blake2b(digest_size=16)
    for name, port in sorted(frames):
        h.update(b"%s %d:" % (name.encode(), port))
        h.update(frames[name, port].digest())
    return h.hexdigest()


def _result_digest(res):
    res = {k: v for k, v in res.items() if k not in SKIP_KEYS}
    text = json.dumps(res, sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fingerprint(runner, kw):
    """-> {outcome, boards, frames, log, result, sim_seconds} of one drill."""
    from host_tools.sim.scenario import run_scenario
    from host_tools.sim.drills import run_ops
    with _Record() as rec:
        res = run_scenario(**kw) if runner == "scenario" else run_ops(**kw)
    got = {"boards": _boards_digest(rec.worlds), "frames": _frames_digest(rec.frames),
           "log": _log_digest(rec.workloads), "result": _result_digest(res)}
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(got):
        h.update(("%s=%s;" % (k, got[k])).encode())
    got["outcome"] = h.hexdigest()
    got["sim_seconds"] = res["sim_seconds"]
    return got


def compute(names=None):
    return {name: fingerprint(*ALL_CASES[name]) for name in (names or sorted(ALL_CASES))}


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
    bad = [n for n in sorted(ALL_CASES) if old.get(n) != got[n]]
    for n in bad:
        print("%s: pinned %s, now %s" % (n, old.get(n), got[n]))
    print("%d of %d fingerprints differ" % (len(bad), len(ALL_CASES)))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
