"""A fault campaign: every mode x operation x fault class, a few seeds each, through the sweep runner.

    run_campaign(base, seeds=20, modes=MODES, ops=OPS, faults=FAULTS) -> dict

Each cell is a sweep (host_tools/sim/sweep.py: the same parameters, records and summary);
every seed of every cell goes through one engine (sweep.run_tasks: the local process pool,
or a Ray cluster, host_tools/sim/engines.py), so a cell's "wall s" is the time its seeds
took in the workers (their sum), not elapsed time.

Clockless mode is safe on any bus (its checkpoint barrier: a write stamped after checkpoint
T is acknowledged once every primary has taken T), but the barrier holds each write stamped
after a checkpoint for up to a bus cycle, so on a slow bus (427 ms cycles at 9600 baud) or at
a high rate the host writes far below its rate. The suspend, autosuspend and pacing drills
expect writes at the host's rate (a journal that fills during an outage, releases while a
pair is out, paced completions): the campaign runs those clockless cells only on a bus of at
least CLOCKLESS_MIN_BAUD at a rate of at most CLOCKLESS_MAX_RATE, and lists them as skipped
otherwise; every other clockless cell runs on any bus (at 9600 baud and 120 writes/s, 5 seeds
per cell: 0 violations in all 70 cells, and only those three drills' expectations unmet).
"""
import time

from .drills import OPS as DRILL_OPS
from .rng import FAULT_CLASSES
from . import sweep as _sweep

MODES = ("clock", "clockless", "sync")
OPS = ("replication",) + tuple(DRILL_OPS)
FAULTS = ("none",) + tuple(c for c in FAULT_CLASSES if c != "disaster") + ("all",)
CLOCKLESS_MIN_BAUD = 115200
CLOCKLESS_MAX_RATE = 60.0
FORMAT = "arcopy-sim-campaign/1"

# What a cell's drill expects besides safety, where the mode changes it. The drills judge by
# the mode they run in (host_tools/sim/drills.py), so a failure's replay command judges the
# same way; the campaign says which expectation each cell was held to (JSON "expect", and a
# note under the table). Safety (violations, acknowledged writes lost) is never mode-specific.
EXPECT_DEFAULT = "the drill's expectations (host_tools/sim/drills.py)"
MODE_EXPECTATIONS = {
    ("sync", "pacing"): "no pacing in sync mode: completions wait for the peer's ACK, delayed by "
                        "the slow or held link itself (no pace_max_us bound); none paced, some "
                        "over 1 ms, none refused, no pair leaves DUPLEX",
    ("sync", "autosuspend"): "the cut-off pair's writes wait for their ACK, so its journal grows "
                             "only by checkpoint markers and the writes that stall their "
                             "transactions, not at the host's rate: it suspends during the outage "
                             "only if the outage outlasts it (then for R_JOURNAL_FULL); none "
                             "refused, the resync exact",
}


def expectation(mode, op):
    """The expectation a (mode, operation) cell is held to, in words."""
    return MODE_EXPECTATIONS.get((mode, op), EXPECT_DEFAULT)


# clockless drills whose expectations assume writes at the host's rate (see the module doc)
CLOCKLESS_RATE_OPS = ("suspend", "autosuspend", "pacing")


def clockless_ok(base):
    """Whether the host writes at its rate in clockless mode with these parameters (the
    barrier's hold is short against the host's round trip; see the module doc)."""
    return base["bus_baud"] >= CLOCKLESS_MIN_BAUD and base["rate"] <= CLOCKLESS_MAX_RATE


def cells(base, modes=MODES, ops=OPS, faults=FAULTS):
    """-> (the cells' sweep parameters, the cells skipped as (mode, op, faults, reason))."""
    run, skipped = [], []
    for mode in modes:
        for op in ops:
            for f in faults:
                if mode == "clockless" and op in CLOCKLESS_RATE_OPS and not clockless_ok(base):
                    skipped.append((mode, op, f, "this clockless drill needs bus >= %d baud and "
                                    "rate <= %g/s (its expectations assume writes at the host's "
                                    "rate)" % (CLOCKLESS_MIN_BAUD, CLOCKLESS_MAX_RATE)))
                    continue
                p = dict(base, mode=mode, ops=None if op == "replication" else op, faults=f)
                run.append(p)
    return run, skipped


def run_campaign(base, seeds=20, modes=MODES, ops=OPS, faults=FAULTS, jobs=0, note=None,
                 engine=None):
    """Run every cell's seeds (base["first"].. + seeds) on one engine (default: the local
    pool of `jobs` workers) -> the campaign dict."""
    from . import engines
    base = dict(base, seeds=seeds)
    engine = engine or engines.Local(jobs)
    todo, skipped = cells(base, modes, ops, faults)
    tasks = [_sweep.drill_kwargs(p, s) for p in todo
             for s in _sweep.shard_seeds(base["first"], seeds)]
    t0 = time.perf_counter()
    results = _sweep.run_tasks(tasks, note=note, engine=engine)
    wall = time.perf_counter() - t0
    execution = engine.execution()
    jobs = execution["jobs"]
    out_cells, failures = [], []
    for k, p in enumerate(todo):
        records = [_sweep.compact(r, p) for r in results[k * seeds:(k + 1) * seeds]]
        worker = sum(r.get("wall_seconds", 0) for r in records)
        summary = _sweep.build_summary(p, records, worker, execution)
        op = p["ops"] or "replication"
        cell = {"mode": p["mode"], "op": op, "faults": p["faults"], "params": p,
                "expect": expectation(p["mode"], op), "summary": summary, "records": records}
        out_cells.append(cell)
        for f in summary["failures"]:
            failures.append(dict(f, mode=cell["mode"], op=cell["op"], faults=cell["faults"]))
    totals = {k: sum(c["summary"][k] for c in out_cells)
              for k in ("seeds", "failing", "violations", "lost_before_released_checkpoint")}
    totals["unrecoverable_pairs"] = sum(c["summary"]["liveness"]["no_image"] for c in out_cells)
    totals["exceptions"] = sum(len(c["summary"]["exceptions"]) for c in out_cells)
    totals["cells"] = len(out_cells)
    totals["failing_cells"] = sum(1 for c in out_cells if c["summary"]["failing"])
    return {"format": FORMAT,
            "params": {"seeds": seeds, "first": base["first"], "modes": list(modes),
                       "ops": list(ops), "faults": list(faults),
                       "base": {k: base[k] for k in _sweep.PARAM_KEYS
                                if k not in ("mode", "ops", "faults")}},
            "cells": out_cells, "skipped": [{"mode": m, "op": o, "faults": f, "why": w}
                                            for m, o, f, w in skipped],
            "totals": totals, "failures": failures, "wall_seconds": round(wall, 1),
            "jobs": jobs, "execution": execution}


COLUMNS = (("mode", "%-9s"), ("operation", "%-12s"), ("faults", "%-9s"), ("seeds", "%5s"),
           ("failing", "%7s"), ("violations", "%10s"), ("lost acked", "%10s"),
           ("unrecoverable", "%13s"), ("wall s", "%8s"))


def table_lines(c):
    """The campaign as one table: a row per cell (unrecoverable: pairs without an image;
    wall s: the cell's seeds' time in the workers), then the totals."""
    fmt = "  ".join(f for _, f in COLUMNS)
    lines = [fmt % tuple(h for h, _ in COLUMNS)]
    lines.append("-" * len(lines[0]))
    for cell in c["cells"]:
        s = cell["summary"]
        lines.append(fmt % (cell["mode"], cell["op"], cell["faults"], s["seeds"], s["failing"],
                            s["violations"], s["lost_before_released_checkpoint"],
                            s["liveness"]["no_image"], "%.1f" % s["wall_seconds"]))
    t = c["totals"]
    lines.append("-" * len(lines[0]))
    lines.append(fmt % ("total", "%d cells" % t["cells"], "", t["seeds"], t["failing"],
                        t["violations"], t["lost_before_released_checkpoint"],
                        t["unrecoverable_pairs"], "%.1f" % sum(x["summary"]["wall_seconds"]
                                                               for x in c["cells"])))
    seen = []
    for cell in c["cells"]:
        key = (cell["mode"], cell["op"])
        if key in MODE_EXPECTATIONS and key not in seen:
            seen.append(key)
            lines.append("expect %s x %s: %s" % (key[0], key[1], MODE_EXPECTATIONS[key]))
    return lines
