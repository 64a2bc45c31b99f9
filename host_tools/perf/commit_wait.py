"""Perf section commit-wait: what the commit wait costs a host write, on and off, same seeds.

    arcopy perf commit-wait [--quick]

Simulator: the same fault-free worlds (4 pairs, copy active, random chains at 40 writes/s; and the
skew scenario of tests/test_clock_bound.py: clocks drifting +-10,000 ppm, 100 us host round trip,
unpaced chains) with `commit_wait` off and on; host write latency p50 / p99 and the ratio on / off,
with the primaries' clock error bounds. Emulated rig: two rigs of real firmware processes up at
once, copy active on both, commit_wait off on A and on on B, the same workload in alternating
rounds (host_tools/perf/rig_latency.py).
"""
import statistics

from host_tools.perf.registry import section
from host_tools.perf.figures import (build_world, pct, progress, r3, ratio, rig_rounds_table,
                                     write_latencies_us)

ERR_UNKNOWN = 0xFFFFFFFF


def _errs(world):
    out = []
    for b in world.primaries:
        e = b.stats().get("clock_err_us")
        if e is not None and e != ERR_UNKNOWN:
            out.append(e)
    return out


def steady_run(commit_wait, seed, quick):
    dur = 8.0 if quick else 30.0
    world, wl = build_world(seed=seed, pairs=4, duration_s=dur, start_s=1.5, rate=40.0,
                            config={"commit_wait": commit_wait})
    world.run()
    return write_latencies_us(wl.log), _errs(world), sum(1 for e in wl.log if e.ok is False)


def skew_run(commit_wait, seed, quick):
    from host_tools.check.workload import Workload
    from host_tools.sim.world import World
    dur = 4.0 if quick else 8.0
    d_us = int(dur * 1e6)
    wl = Workload(kind="random", pairs=4, vols=1, blocks=128, rate=0, duration_us=d_us,
                  concurrency=2, seed=seed)
    world = World(seed=seed, faults="none", workload=wl, pairs=4, duration_us=d_us, disaster=False,
                  vol_blocks=128, journal_slots=256, peer_baud=921600, drift_ppm=10000,
                  host_latency_us=50, workload_start_us=1000000,
                  config={"commit_wait": commit_wait, "peer_timeout_us": 1000000})
    world.run()
    return write_latencies_us(wl.log), _errs(world), sum(1 for e in wl.log if e.ok is False)


def _row(setup, label, lat, errs, failed, base):
    p50, p99 = pct(lat, 50) / 1000.0, pct(lat, 99) / 1000.0
    b50, b99 = (pct(base, 50) / 1000.0, pct(base, 99) / 1000.0) if base else (p50, p99)
    return [setup, label, len(lat), r3(p50), r3(p99), r3(ratio(p50, b50)), r3(ratio(p99, b99)),
            r3(statistics.median(errs), 0) if errs else None, failed]


@section("commit-wait", "host write latency with the commit wait on vs off (same seeds), in the "
                        "simulator and on the emulated rig, as ratios")
def perf_commit_wait(quick):
    from host_tools.perf import rig_latency
    seeds = (1, 2) if quick else (1, 2, 3, 4)
    rows = []
    for name, fn in (("simulator, steady (40 writes/s)", steady_run),
                     ("simulator, +-10,000 ppm, unpaced", skew_run)):
        res = {}
        for cw, s in progress([(cw, s) for cw in (False, True) for s in seeds], "commit-wait"):
            lat, errs, failed = fn(cw, s, quick)
            r = res.setdefault(cw, [[], [], 0])
            r[0].extend(lat)
            r[1].extend(errs)
            r[2] += failed
        rows.append(_row(name, "commit wait off", res[False][0], res[False][1], res[False][2], None))
        rows.append(_row(name, "commit wait on", res[True][0], res[True][1], res[True][2], res[False][0]))
    notes = ["simulator: %d seeds per row, 4 pairs, copy active; latency = completion - issue time "
             "of every acknowledged write; the host round trip is 400 us (steady) or 100 us (skew); "
             "err us = median of the primaries' clock_err_us at the end (the master's is 0)"
             % len(seeds)]
    emu = rig_latency.measure(quick, variants=rig_latency.COMMIT_WAIT_AB)
    tables = []
    if emu["ok"]:
        a, b = emu["off"], emu["on"]
        ce = emu.get("clock_err_us", {})
        known = [e for e in ce.get("on", []) if e is not None]
        rows.append(["emulated rig", "commit wait off", a["writes"], r3(a["p50"]), r3(a["p99"]), 1.0, 1.0,
                     None, a["failed"]])
        rows.append(["emulated rig", "commit wait on", b["writes"], r3(b["p50"]), r3(b["p99"]),
                     r3(ratio(b["p50"], a["p50"])), r3(ratio(b["p99"], a["p99"])),
                     r3(statistics.median(known), 0) if known else None, b["failed"]])
        tables.append(rig_rounds_table(emu, "A: commit wait off, B: on; copy active on both"))
        notes.append("emulated rig: p50 / p99 = medians of the rounds' p50 / p99; pooled over all rounds: "
                     "off p50 %s p99 %s ms, on p50 %s p99 %s ms; clock_err_us of the primaries at the "
                     "end (on): %s; %.0f s in all"
                     % (r3(a["pooled_p50"]), r3(a["pooled_p99"]), r3(b["pooled_p50"]), r3(b["pooled_p99"]),
                        ce.get("on"), emu["wall_s"]))
    else:
        rows.append(["emulated rig", "commit wait on vs off", None, None, None, None, None, None, None])
        notes.append("emulated rig: not measured: %s" % emu["why"])
    tables.insert(0, {
        "title": "host write latency, commit wait on vs off (same seeds)",
        "columns": ["setup", "variant", "writes", "p50 ms", "p99 ms", "p50 / off", "p99 / off",
                    "err us", "failed"],
        "rows": rows})
    return {"tables": tables, "notes": notes}
