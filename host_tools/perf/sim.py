"""`arcopy perf sim`: how fast the deterministic simulator runs the real firmware core.

Simulated seconds per wall second for 4 + 4 boards, with the peer links at about
their line rate (115200 baud carries ~21.6 blocks/s per link) and above it.
"""
import time

from host_tools.perf.registry import section
from host_tools.sim.scenario import run_scenario


def _speed(seconds, rate, seed=1):
    t0 = time.perf_counter()
    r = run_scenario(seed=seed, pairs=4, duration_s=seconds, faults="none", rate=rate,
                     kind="random", concurrency=16, settle_s=0.5,
                     world_opts={"disaster": False})    # the disaster comes at the end
    wall = time.perf_counter() - t0
    return r, wall


@section("sim", "simulator speed: simulated seconds per wall second, 4 + 4 boards")
def perf_sim(quick):
    seconds = 8.0 if quick else 30.0
    rows = []
    for label, rate in (("light (20 writes/s)", 20.0), ("line rate (86 writes/s)", 86.0),
                        ("saturating (200 writes/s)", 200.0)):
        r, wall = _speed(seconds, rate)
        rows.append([label, r["sim_seconds"], round(wall, 2), round(r["sim_seconds"] / wall, 1),
                     r["events"], round(r["events"] / wall), r["writes_completed"]])
    return {
        "tables": [{
            "title": "simulator speed (one process, no faults, ims-free random chains)",
            "columns": ["workload", "sim s", "wall s", "sim s / wall s", "events", "events / s",
                        "writes done"],
            "rows": rows,
        }],
        "notes": ["goal: >= 200 simulated seconds per wall second at a saturating workload"],
    }
