"""`arcopy perf sim`: how fast the deterministic simulator runs the real firmware core.

Simulated seconds per second for 4 + 4 boards, with the peer links at about their line rate
(115200 baud carries ~21.6 blocks/s per link) and above it. Each workload runs several times
(the same seed: every repeat must give the same digest); the table gives the best and the
median over the repeats, both per wall second and per CPU second of this process
(time.process_time: fairer on a shared machine, where wall time includes waiting for a core).
A run is the whole drill: building the world, the workload, the disaster, the failover and
the check of the recovered images.

    python -m host_tools.perf.sim --profile [--seconds S] [--rate R] [--top N]

runs the saturating workload once under cProfile (timed in CPU seconds) and prints the own
time by file and the top entries by own time.
"""
import argparse
import os
import statistics
import time

from host_tools.perf.registry import section
from host_tools.sim.scenario import run_scenario

WORKLOADS = (("light (20 writes/s)", 20.0), ("line rate (86 writes/s)", 86.0),
             ("saturating (200 writes/s)", 200.0))
GOAL = 200.0


def _kwargs(seconds, rate, seed=1, count_events=False):
    return dict(seed=seed, pairs=4, duration_s=seconds, faults="none", rate=rate, kind="random",
                concurrency=16, settle_s=0.5,       # the disaster comes at the end:
                world_opts={"disaster": False, "count_events": count_events})


def _speed(seconds, rate, seed=1):
    """One run: -> (result, wall s, CPU s)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    r = run_scenario(**_kwargs(seconds, rate, seed))
    wall = time.perf_counter() - t0
    return r, wall, time.process_time() - c0


def measure(seconds, rate, repeats):
    """`repeats` runs of one workload -> dict of figures (ratios: best and median)."""
    walls, cpus, digests = [], [], set()
    r = None
    for _ in range(repeats):
        r, wall, cpu = _speed(seconds, rate)
        walls.append(wall)
        cpus.append(cpu)
        digests.add(r["digest"])
    sim = r["sim_seconds"]
    return {
        "sim_seconds": sim, "events": r["events"], "writes_completed": r["writes_completed"],
        "repeats": repeats, "wall_seconds": [round(w, 4) for w in walls],
        "cpu_seconds": [round(c, 4) for c in cpus],
        "ratio_wall_best": sim / min(walls), "ratio_wall_median": sim / statistics.median(walls),
        "ratio_cpu_best": sim / min(cpus), "ratio_cpu_median": sim / statistics.median(cpus),
        "events_per_cpu_s_best": r["events"] / min(cpus),
        "events_per_wall_s_best": r["events"] / min(walls),
        "digest": r["digest"], "deterministic": len(digests) == 1,
    }


@section("sim", "simulator speed: simulated seconds per wall / CPU second, 4 + 4 boards")
def perf_sim(quick):
    seconds = 8.0 if quick else 30.0
    repeats = 3 if quick else 5
    rows = []
    figures = {}
    for label, rate in WORKLOADS:
        m = measure(seconds, rate, repeats)
        figures[label] = m
        rows.append([label, m["sim_seconds"], m["events"], m["writes_completed"],
                     round(m["ratio_wall_best"], 1), round(m["ratio_wall_median"], 1),
                     round(m["ratio_cpu_best"], 1), round(m["ratio_cpu_median"], 1),
                     round(m["events_per_cpu_s_best"]), m["digest"][:12]])
    sat = figures[WORKLOADS[-1][0]]
    notes = ["%d runs of each workload (same seed); ratio = simulated s / wall s or / CPU s of "
             "this process, best and median" % repeats,
             "goal: >= %.0f simulated seconds per second at the saturating workload: %.1f (CPU, best), "
             "%.1f (wall, best)" % (GOAL, sat["ratio_cpu_best"], sat["ratio_wall_best"])]
    bad = [label for label, m in figures.items() if not m["deterministic"]]
    if bad:
        notes.append("NOT DETERMINISTIC (different digests for one seed): " + ", ".join(bad))
    return {
        "tables": [{
            "title": "simulator speed (one process, no faults, random chains; whole drill incl. "
                     "failover and check)",
            "columns": ["workload", "sim s", "events", "writes done", "wall best", "wall median",
                        "CPU best", "CPU median", "events / CPU s", "digest"],
            "rows": rows,
        }],
        "figures": figures,
        "notes": notes,
    }


def profile(seconds, rate, top):
    """The workload once under cProfile: prints the top entries by own time."""
    import cProfile
    import pstats
    pr = cProfile.Profile(time.process_time)     # CPU time: fairer on a shared machine
    pr.enable()
    r, wall, cpu = _speed(seconds, rate)
    pr.disable()
    print("%.1f simulated s, %d events, %.3f s CPU under the profiler, digest %s"
          % (r["sim_seconds"], r["events"], cpu, r["digest"]))
    st = pstats.Stats(pr)
    own, calls = {}, {}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep
    for (path, _, _), (_, nc, tt, _, _) in st.stats.items():
        key = path[len(root):] if path.startswith(root) else ("(built-in)" if path == "~" else "(stdlib)")
        own[key] = own.get(key, 0.0) + tt
        calls[key] = calls.get(key, 0) + nc
    total = sum(own.values())
    print("own time by file (%.3f s in all, %d calls):" % (total, sum(calls.values())))
    for key in sorted(own, key=own.get, reverse=True)[:top]:
        print("  %5.1f %%  %9d calls  %s" % (100.0 * own[key] / total, calls[key], key))
    st.sort_stats("tottime").print_stats(top)


def events(seconds, rate):
    """The workload once with the engine counting its events by handler: prints them, per
    write completed too (what a run is made of; the firmware and harness work per event is
    in --profile)."""
    r = run_scenario(**_kwargs(seconds, rate, count_events=True))
    counts = r["event_counts"]
    n = r["writes_completed"] or 1
    print("%.1f simulated s, %d events, %d writes completed, digest %s"
          % (r["sim_seconds"], r["events"], r["writes_completed"], r["digest"]))
    print("  %9s  %9s  %s" % ("events", "per write", "handler"))
    for name in sorted(counts, key=counts.get, reverse=True):
        print("  %9d  %9.2f  %s" % (counts[name], counts[name] / n, name))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", action="store_true", help="run once under cProfile")
    ap.add_argument("--events", action="store_true",
                    help="run once counting the engine's events by handler")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    if a.profile:
        profile(a.seconds, a.rate, a.top)
        return 0
    if a.events:
        events(a.seconds, a.rate)
        return 0
    m = measure(a.seconds, a.rate, a.repeats)
    print("%.1f simulated s, %d events: %.1f / %.1f sim s per CPU s (best / median), "
          "%.1f / %.1f per wall s, digest %s" % (m["sim_seconds"], m["events"], m["ratio_cpu_best"],
                                                 m["ratio_cpu_median"], m["ratio_wall_best"],
                                                 m["ratio_wall_median"], m["digest"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
