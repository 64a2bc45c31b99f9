"""`arcopy perf sweep`: sweep throughput (seeds per minute) on each engine, local pool and Ray, on this machine.

One sweep (the default drill: 4 pairs, 6 simulated seconds, every fault class) run four
times with the same seeds: the local process pool with 1 and 2 jobs, then a local Ray
cluster with 1 and 2 workers. Per run: elapsed seconds, the engine's start-up (the Ray
cluster's; the pool's is inside the first seeds), seeds per minute over the whole run and
after start-up, the seconds one seed took inside its worker, and the machine's 1-minute load
average before and after (a shared machine: the figures are only comparable at a similar
load; the per-seed seconds show how much CPU the load left each drill). The four summaries must be identical
(the engines only run drills; the totals are made by one code path): a difference is
printed as a failure of the section.
"""
import hashlib
import json
import os
import time

from host_tools.perf.registry import section
from host_tools.sim import engines
from host_tools.sim import sweep as _sweep

RUNS = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


def _params(seeds):
    p = _sweep.params_of(type("Defaults", (), {})(), first=0, seeds=seeds)
    return p


def _digest(summary):
    """The summary without what depends on the machine and the run."""
    s = {k: v for k, v in summary.items() if k not in _sweep.WALL_CLOCK_KEYS}
    return hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:12]


def measure(seeds, runs=RUNS):
    """-> rows [engine, workers, seeds, elapsed s, start-up s, seeds/min, seeds/min after
    start-up, seconds per seed inside a worker (how much CPU the machine's load left a drill),
    load before, load after, summary digest] and notes."""
    p = _params(seeds)
    rows, notes = [], []
    for name, n in runs:
        if name == "ray":
            eng = engines.Ray(workers=n)
        else:
            eng = engines.Local(jobs=n)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        try:
            _, summary, _ = _sweep.run_sweep(p, engine=eng)
        except (engines.EngineUnavailable, engines.EngineError) as e:
            rows.append([name, n, seeds, None, None, None, None, None, round(load0, 2), None, None])
            notes.append("%s engine with %d worker(s) not measured: %s" % (name, n, e))
            continue
        wall = time.perf_counter() - t0
        start = eng.start_seconds if name == "ray" else 0.0
        rows.append([name, n, seeds, round(wall, 2), round(start, 2),
                     round(seeds * 60.0 / wall, 1), round(seeds * 60.0 / max(wall - start, 1e-9), 1),
                     round(summary["execution"]["worker_seconds"] / seeds, 3),
                     round(load0, 2), round(os.getloadavg()[0], 2), _digest(summary)])
    digests = {r[-1] for r in rows if r[-1]}
    if len(digests) > 1:
        notes.append("FAILED: the engines' summaries differ (digests %s)" % ", ".join(sorted(digests)))
    elif digests:
        notes.append("every engine gave the same summary (digest %s)" % digests.pop())
    return rows, notes


@section("sweep", "sweep throughput: seeds per minute, local pool (jobs 1, 2) and Ray (workers 1, 2)")
def perf_sweep(quick):
    seeds = 12 if quick else 40
    rows, notes = measure(seeds)
    notes.append("%d CPU(s); the drill: %s; load = 1-minute load average (a shared machine: "
                 "compare runs at a similar load)"
                 % (os.cpu_count() or 1, _sweep.replay_command(_params(seeds), 0)
                    .replace("--seed 0 ", "--seed N ")))
    return {
        "tables": [{
            "title": "sweep throughput, %d seeds per run" % seeds,
            "columns": ["engine", "workers", "seeds", "elapsed s", "start-up s", "seeds / min",
                        "seeds / min after start-up", "s per seed in a worker", "load before",
                        "load after",
                        "summary digest"],
            "rows": rows,
        }],
        "notes": notes,
    }
