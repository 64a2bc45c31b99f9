"""Records one observed simulator run into a RUN_DIR and renders it as PNG plots and a Markdown
summary (the command is `arcopy report`, host_tools/cmds/report.py).

    arcopy report --record RUN_DIR [--seed N --pairs N --duration S --rate R --ckpt-ms MS ...]
    arcopy report RUN_DIR                       # (re)render an existing RUN_DIR

A RUN_DIR holds:

  run.json         what was run (parameters) and what came out of it (consistency, RPO, writes,
                   checkpoints, latency percentiles per variant); lists the other files
  timeseries.csv   one row per sample and pair: t_ms, pair, p_journal, s_journal (journal depths),
                   send_lag_ms (primary: sequence time - time of its oldest unacknowledged journal
                   entry), exposure_ms (primary sequence time - the secondary's applied checkpoint
                   T: what a disaster at that instant would lose), records_sent, records_received,
                   records_applied
  checkpoints.csv  one row per checkpoint T: n, t, issued_ms (primary master), first_held_ms,
                   all_held_ms (markers journaled by the secondaries), released_ms, reset_ms
                   (secondary master's RELEASE and RESET_UIP decisions); empty when it never happened
  latency.csv      one row per acknowledged host write of each variant: variant, write_id, pair,
                   issue_ms, latency_ms; variants "no-copy" (copy never started), "copy" (the
                   recorded asynchronous run) and "sync" (synchronous mode), same seed and workload
  perf.json        optional: `arcopy perf ... --json RUN_DIR/perf.json`; its tables go into
                   report.md too

Rendering adds lag.png, checkpoints.png, latency_cdf.png and report.md. The recorded run has
no faults: a burst of writes that overruns the peer links part-way through, then the
primary-site disaster at the end, a failover through the host ports and the consistency
checker. Everything is observed (see host_tools.perf.figures.Observer), never steered.
"""
import csv
import json
import os
import time

FILES = {"run": "run.json", "timeseries": "timeseries.csv", "checkpoints": "checkpoints.csv",
         "latency": "latency.csv", "perf": "perf.json", "lag_png": "lag.png",
         "checkpoints_png": "checkpoints.png", "latency_png": "latency_cdf.png", "report": "report.md"}
TS_COLUMNS = ("t_ms", "pair", "p_journal", "s_journal", "send_lag_ms", "exposure_ms",
              "records_sent", "records_received", "records_applied")
CK_COLUMNS = ("n", "t", "issued_ms", "first_held_ms", "all_held_ms", "released_ms", "reset_ms")
LAT_COLUMNS = ("variant", "write_id", "pair", "issue_ms", "latency_ms")
VARIANTS = (("no-copy", "no copy (copy never started)"), ("copy", "copy active, asynchronous"),
            ("sync", "copy active, synchronous"))


# ---- recording ---------------------------------------------------------------------------------
def record(run_dir, seed=1, pairs=4, duration_s=12.0, rate=40.0, ckpt_ms=200.0, sample_ms=50.0,
           burst=24, kind="ims", start_s=1.5, settle_s=3.0):
    """Run the observed drill and its two latency companions; write the RUN_DIR files.
    Returns run.json's summary."""
    from host_tools.check import checker
    from host_tools.perf.figures import Observer, build_world, pct
    from host_tools.sim.scenario import failover

    os.makedirs(run_dir, exist_ok=True)
    t_wall = time.perf_counter()
    burst_at_s = max(start_s, 0.4 * duration_s)
    params = dict(seed=seed, pairs=pairs, duration_s=duration_s, rate=rate, ckpt_ms=ckpt_ms,
                  sample_ms=sample_ms, burst=burst, burst_at_s=round(burst_at_s, 3), kind=kind,
                  workload_start_s=start_s, settle_s=settle_s, peer_baud=115200, bus_baud=115200,
                  peer_latency_us=1000, faults="none, then the primary-site disaster at the end")
    common = dict(seed=seed, pairs=pairs, duration_s=duration_s, start_s=start_s, rate=rate,
                  kind=kind, ckpt_ms=ckpt_ms, burst=burst, burst_at_s=burst_at_s - start_s)

    # the recorded run: copy active, asynchronous, observed
    world, wl = build_world(**common)
    obs = Observer(world, frames=False)
    rows = []
    until = int(duration_s * 1e6)

    def sample(now):
        for i in range(pairs):
            p, s = world.primaries[i], world.secondaries[i]
            if not (p.alive and s.alive):
                continue
            pr, sr = p.node.role, s.node.role
            local = p.local_now()
            applied_t = s.node.store.sb.applied_t
            exposure = (pr.seq_time(local) - applied_t) / 1000.0 if applied_t else None
            rows.append((round(now / 1000.0, 3), i, p.node.store.j_depth(), s.node.store.j_depth(),
                         round(pr.lag_us(local) / 1000.0, 3), None if exposure is None else round(exposure, 3),
                         pr.records_moved, sr.records_moved, sr.records_applied))
    obs.every(int(sample_ms * 1000), sample, until_us=until)
    try:
        world.run(until)
        world.disaster()
        world.run(world.now + int(settle_s * 1e6))
        target_n, target_t, results = failover(world)
        images = {i: {0: bytes(world.read_volume(b.name, 0))} for i, b in enumerate(world.secondaries)}
    finally:
        obs.close()
    wl.log.close(world.disaster_time)
    rep = checker.check(wl.log, images, disaster_us=world.disaster_time)
    lat = {"copy": _latencies(wl.log)}

    # the companions: same seed and workload, copy never started / synchronous mode
    for variant, kw in (("no-copy", dict(autostart=False)), ("sync", dict(mode="sync"))):
        w2, wl2 = build_world(**dict(common, **kw))
        w2.run(until)
        lat[variant] = _latencies(wl2.log)

    with open(os.path.join(run_dir, FILES["timeseries"]), "w", newline="") as f:
        _write_csv(f, TS_COLUMNS, rows)
    ck = []
    for t in sorted(set(obs.issued) | set(obs.released) | set(obs.reset)):
        held = obs.held.get(t, {})
        ck.append((obs.labels.get(t), t, _ms(obs.issued.get(t)),
                   _ms(min(held.values())) if held else None,
                   _ms(max(held.values())) if len(held) == pairs else None,
                   _ms(obs.released.get(t)), _ms(obs.reset.get(t))))
    with open(os.path.join(run_dir, FILES["checkpoints"]), "w", newline="") as f:
        _write_csv(f, CK_COLUMNS, ck)
    with open(os.path.join(run_dir, FILES["latency"]), "w", newline="") as f:
        _write_csv(f, LAT_COLUMNS, [(v, wid, pair, round(iss / 1000.0, 3), round(l / 1000.0, 3))
                                    for v, _ in VARIANTS for wid, pair, iss, l in lat[v]])
    rounds = obs.rounds()
    round_ms = [(r[4] - r[1]) / 1000.0 for r in rounds]
    summary = {
        "consistent": rep.consistent, "violations": rep.violations_total,
        "writes_completed": rep.writes_completed, "writes_recovered": rep.writes_recovered,
        "lost_acked": rep.lost_acked, "rpo_ms": rep.rpo_ms,
        "disaster_ms": world.disaster_time / 1000.0,
        "recovered_checkpoint": {"n": target_n, "t": target_t},
        "failover": {k: v for k, v in sorted(results.items())},
        "checkpoints_issued": len(obs.issued), "rounds": len(rounds),
        "round_ms_median": pct(round_ms, 50), "round_ms_max": max(round_ms) if round_ms else None,
        "exposure_ms_max": max((r[5] for r in rows if r[5] is not None), default=None),
        "send_lag_ms_max": max((r[4] for r in rows), default=None),
        "p_journal_max": max((r[2] for r in rows), default=None),
        "latency_ms": {v: {"writes": len(lat[v]),
                           "p50": _ms(pct([x[3] for x in lat[v]], 50)),
                           "p99": _ms(pct([x[3] for x in lat[v]], 99)),
                           "max": _ms(max((x[3] for x in lat[v]), default=None))}
                       for v, _ in VARIANTS},
        "sim_seconds": world.now / 1e6,
        "wall_seconds": round(time.perf_counter() - t_wall, 2),
    }
    doc = {"format": "arcopy-run", "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "params": params, "summary": summary,
           "files": {k: FILES[k] for k in ("timeseries", "checkpoints", "latency")}}
    with open(os.path.join(run_dir, FILES["run"]), "w") as f:
        json.dump(doc, f, indent=1, default=str)
    return summary


def _latencies(log):
    return [(e.id, e.pair, e.issue_us, e.complete_us - e.issue_us) for e in log
            if e.ok and e.complete_us is not None]


def _ms(us):
    return None if us is None else round(us / 1000.0, 3)


def _write_csv(f, columns, rows):
    w = csv.writer(f)
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])


def _read_csv(path):
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        out = []
        for r in rd:
            out.append({k: _num(v) for k, v in r.items()})
        return out


def _num(v):
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


# ---- rendering --------------------------------------------------------------------------------
def render(run_dir):
    """Write the PNG plots and report.md of a RUN_DIR; returns the file names written."""
    doc, ts, ck, lat = load(run_dir)
    figs = figures(doc, ts, ck, lat)          # selects the Agg backend before pyplot is imported
    import matplotlib.pyplot as plt
    written = []
    for name, fig in figs.items():
        fig.savefig(os.path.join(run_dir, name), dpi=90)
        plt.close(fig)
        written.append(name)
    with open(os.path.join(run_dir, FILES["report"]), "w") as f:
        f.write(_markdown(run_dir, doc, ck, ts))
    written.append(FILES["report"])
    return written


def load(run_dir):
    """-> (run.json as a dict, timeseries rows, checkpoint rows, latency rows) of a RUN_DIR."""
    with open(os.path.join(run_dir, FILES["run"])) as f:
        doc = json.load(f)
    return (doc, _read_csv(os.path.join(run_dir, FILES["timeseries"])),
            _read_csv(os.path.join(run_dir, FILES["checkpoints"])),
            _read_csv(os.path.join(run_dir, FILES["latency"])))


# plain-words axis labels and marker names, shared by the plots and report.md
X_TIME = "simulated time, s"
Y_EXPOSURE = "exposure, ms\n(now − applied cut)"
Y_SEND_LAG = "send lag, ms\n(age of the oldest record\nnot yet acknowledged)"
Y_JOURNAL = "primary journal,\nentries in use"
DISASTER_LABEL = "primary-site disaster"


def _burst_label(params):
    return "burst: %d extra transactions" % params.get("burst", 0)


def exposure_at_disaster(doc, ts):
    """Largest exposure (ms) over the pairs in the last sample at or before the disaster, or None."""
    d_ms = doc["summary"].get("disaster_ms", 0)
    last = {}
    for r in ts:
        if r["exposure_ms"] is not None and r["t_ms"] <= d_ms:
            last[r["pair"]] = r["exposure_ms"]
    return max(last.values()) if last else None


def rpo_note(doc, ts):
    """Why the lag plot's exposure at the disaster and the RPO figure differ (one paragraph)."""
    s, p = doc["summary"], doc["params"]
    ex = exposure_at_disaster(doc, ts)
    rc = s.get("recovered_checkpoint") or {}
    return ("The RPO (%.1f ms, from the consistency checker: the disaster instant minus the completion "
            "of the earliest acknowledged write that was lost) is not the exposure curve's value at the "
            "disaster (%s ms): the curve takes the cut each secondary had applied, sampled every %g ms, "
            "while the failover recovers to the newest released cut (checkpoint %s), which can be newer "
            "than the applied one, and the RPO counts only acknowledged writes that were really lost "
            "(when none is lost, the RPO is 0)."
            % (s["rpo_ms"], _f(ex), p.get("sample_ms", 50.0), rc.get("n", "?")))


def figures(doc, ts, ck, lat):
    """The report's plots as matplotlib figures, by file name (the caller saves and closes them).
    Every marker line is in its figure's legend; the lag figure carries the RPO and a note on why
    it differs from the plotted exposure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params, summary = doc["params"], doc["summary"]
    disaster_s = summary.get("disaster_ms", 0) / 1000.0
    burst_s = params.get("burst_at_s") if params.get("burst") else None
    out = {}

    # lag per pair over time
    pairs = sorted({r["pair"] for r in ts})
    fig, axes = plt.subplots(3, 1, figsize=(9, 8.6), sharex=True)
    for i, (key, ax, label) in enumerate((("exposure_ms", axes[0], Y_EXPOSURE),
                                          ("send_lag_ms", axes[1], Y_SEND_LAG),
                                          ("p_journal", axes[2], Y_JOURNAL))):
        for p in pairs:
            pts = [(r["t_ms"] / 1000.0, r[key]) for r in ts if r["pair"] == p and r[key] is not None]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], lw=1,
                        label="pair %d" % p if i == 0 else "_nolegend_")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
        _marks(ax, burst_s, disaster_s, _burst_label(params), legend=i == 0)
    if disaster_s:
        axes[0].plot([disaster_s], [summary["rpo_ms"]], marker="*", ms=11, ls="none", color="red",
                     label="RPO at the disaster (checker): %.1f ms" % summary["rpo_ms"])
    axes[0].legend(loc="upper left", fontsize=7, ncol=min(3, len(pairs) + 1) or 1)
    axes[0].set_title("Lag per pair (checkpoint every %g ms, %g writes/s, burst of %d transactions "
                      "at %.1f s)"
                      % (params["ckpt_ms"], params["rate"], params.get("burst", 0), burst_s or 0))
    axes[2].set_xlabel(X_TIME)
    fig.text(0.01, 0.005, "\n".join(_wrap(rpo_note(doc, ts), 150)), fontsize=6.5, va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out[FILES["lag_png"]] = fig

    # checkpoint timeline: CHECKPOINT issued -> markers held by all -> RELEASE -> RESET_UIP
    fig, ax = plt.subplots(figsize=(9, 2.0 + 0.12 * max(1, len(ck))))
    phases = (("issued_ms", "all_held_ms", "tab:blue", "marker transfer (issued → held by every secondary)"),
              ("all_held_ms", "released_ms", "tab:orange", "rendezvous (held → RELEASE)"),
              ("released_ms", "reset_ms", "tab:green", "apply (RELEASE → RESET_UIP)"))
    seen = set()
    for i, r in enumerate(ck):
        for a, b, color, label in phases:
            if r[a] is not None and r[b] is not None:
                ax.plot([r[a] / 1000.0, r[b] / 1000.0], [i, i], color=color, lw=4, solid_capstyle="butt",
                        label=label if label not in seen else "_nolegend_")
                seen.add(label)
        if r["issued_ms"] is not None and r["reset_ms"] is None:
            lbl = "issued, never reset (skipped or cut by the disaster)"
            ax.plot([r["issued_ms"] / 1000.0], [i], "o", mfc="none", color="gray",
                    label=lbl if lbl not in seen else "_nolegend_")
            seen.add(lbl)
    ax.set_yticks(range(len(ck)))
    ax.set_yticklabels(["%s" % (r["n"] if r["n"] is not None else "?") for r in ck], fontsize=6)
    ax.set_ylabel("checkpoint number")
    ax.set_xlabel(X_TIME)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    _marks(ax, burst_s, disaster_s, _burst_label(params))
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title("Checkpoint rounds: CHECKPOINT at the primary master to RESET_UIP at the secondary master")
    fig.tight_layout()
    out[FILES["checkpoints_png"]] = fig

    # write latency CDF: copy on vs off (and synchronous for reference)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = {"no-copy": ("black", "-", 3.0), "copy": ("tab:blue", "--", 1.5), "sync": ("tab:red", "-", 1.5)}
    for v, label in VARIANTS:
        xs = sorted(r["latency_ms"] for r in lat if r["variant"] == v)
        if not xs:
            continue
        color, ls, lw = styles[v]
        n = len(xs)
        ax.step(xs, [(i + 1) / n for i in range(n)], where="post", color=color, ls=ls, lw=lw,
                label="%s (n=%d, median %.2f ms)" % (label, n, xs[(n - 1) // 2]))
    ax.set_xscale("log")
    ax.set_xlabel("host write latency, ms (log scale)")
    ax.set_ylabel("share of writes completed\nwithin that latency")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Host write latency: copy off vs on (cumulative)")
    fig.tight_layout()
    out[FILES["latency_png"]] = fig
    return out


def _wrap(text, width):
    import textwrap
    return textwrap.wrap(text, width)


def _marks(ax, burst_s, disaster_s, burst_label, legend=True):
    """The burst and disaster marker lines, labelled for the legend (legend=False: the same lines
    on a figure's other axes, whose legend lists them already)."""
    if burst_s:
        ax.axvline(burst_s, color="gray", ls=":", lw=1, label=burst_label if legend else "_nolegend_")
    if disaster_s:
        ax.axvline(disaster_s, color="red", ls=":", lw=1, label=DISASTER_LABEL if legend else "_nolegend_")


def _markdown(run_dir, doc, ck, ts=()):
    p, s = doc["params"], doc["summary"]
    L = []
    L.append("# Recorded run: %d pairs, seed %d" % (p["pairs"], p["seed"]))
    L.append("")
    L.append("Simulator drill recorded %s: %s workload at %g writes/s (4 dependent transactions in "
             "parallel) from %.1f s, a burst of %d extra transactions (3 writes each) at %.1f s, "
             "checkpoints every %g ms, peer "
             "links and buses at %d baud, no faults; the primary site is lost at %.1f s, then the "
             "secondaries are failed over through their host ports and checked."
             % (doc.get("created", "?"), p["kind"], p["rate"], p["workload_start_s"], p.get("burst", 0),
                p.get("burst_at_s", 0), p["ckpt_ms"], p["peer_baud"], s["disaster_ms"] / 1000.0))
    L.append("")
    L.append("| figure | value |")
    L.append("|---|---|")
    rc = s["recovered_checkpoint"]
    for k, v in (("consistent after failover", s["consistent"]),
                 ("writes acknowledged / recovered / lost acknowledged",
                  "%d / %d / %d" % (s["writes_completed"], s["writes_recovered"], s["lost_acked"])),
                 ("RPO at the disaster", "%.1f ms" % s["rpo_ms"]),
                 ("recovered to", "checkpoint %s (T=%s)" % (rc["n"], rc["t"])),
                 ("checkpoints issued / rounds completed", "%d / %d" % (s["checkpoints_issued"], s["rounds"])),
                 ("round CHECKPOINT -> RESET_UIP, median / max", "%s / %s ms" % (_f(s["round_ms_median"]),
                                                                              _f(s["round_ms_max"]))),
                 ("exposure (now − applied cut), max", "%s ms" % _f(s["exposure_ms_max"])),
                 ("primary send lag, max", "%s ms" % _f(s["send_lag_ms_max"])),
                 ("primary journal depth, max", s["p_journal_max"]),
                 ("simulated / wall", "%.1f s / %.2f s" % (s["sim_seconds"], s["wall_seconds"]))):
        L.append("| %s | %s |" % (k, v))
    L.append("")
    L.append("## Lag per pair")
    L.append("")
    L.append("![lag per pair](%s)" % FILES["lag_png"])
    L.append("")
    L.append("Exposure is the time a write made now would carry (the primary's sequence time) minus "
             "the cut its secondary has applied: at most what a disaster at that instant would lose. It "
             "saws between the round time and the round time plus the interval while the links keep up, "
             "and climbs during the burst, when the send lag (age of the oldest record the secondary "
             "has not acknowledged) and the journal grow. Dotted lines, named in the legend: the burst "
             "(gray) and the primary-site disaster (red); the red star is the RPO.")
    L.append("")
    L.append("**Why the plot and the RPO differ.** " + rpo_note(doc, ts))
    L.append("")
    L.append("## Checkpoint timeline")
    L.append("")
    L.append("![checkpoint timeline](%s)" % FILES["checkpoints_png"])
    L.append("")
    L.append("Each row is one checkpoint: blue from the primary master issuing CHECKPOINT until every "
             "secondary has journaled its marker, orange until the secondary master broadcasts RELEASE, "
             "green until it decides RESET_UIP. Hollow circles are checkpoints that no round released "
             "(a newer one was taken instead, or the disaster came first).")
    L.append("")
    L.append("## Host write latency, copy off vs on")
    L.append("")
    L.append("![latency CDF](%s)" % FILES["latency_png"])
    L.append("")
    L.append("| variant | writes | p50 ms | p99 ms | max ms | p50 vs no copy |")
    L.append("|---|---|---|---|---|---|")
    base = s["latency_ms"]["no-copy"]["p50"]
    for v, label in VARIANTS:
        x = s["latency_ms"][v]
        L.append("| %s | %d | %s | %s | %s | %s |" % (label, x["writes"], _f(x["p50"]), _f(x["p99"]),
                                                       _f(x["max"]),
                                                       _f(x["p50"] / base if base and x["p50"] else None)))
    L.append("")
    L.append("The simulator charges no time for disk writes or CPU, so copy on and copy off coincide "
             "(the host port's round trip); synchronous mode adds the peer round trip and the record's "
             "wire time. The same runs on boards add the journal's SD writes (see `arcopy perf "
             "copy-latency`).")
    L.append("")
    perf = os.path.join(run_dir, FILES["perf"])
    if os.path.exists(perf):
        with open(perf) as f:
            b = json.load(f)
        L.append("## Perf figures (%s)" % FILES["perf"])
        L.append("")
        meta = b.get("meta", {})
        L.append("Measured %s%s." % (meta.get("time", "?"), " with --quick" if meta.get("quick") else ""))
        L.append("")
        for name, sec in b.get("sections", {}).items():
            for t in sec.get("tables", ()):
                L.append("**%s: %s**" % (name, t["title"]))
                L.append("")
                L.append("| " + " | ".join(str(c) for c in t["columns"]) + " |")
                L.append("|" + "---|" * len(t["columns"]))
                for r in t["rows"]:
                    L.append("| " + " | ".join(_f(v) for v in r) + " |")
                L.append("")
            for n in sec.get("notes", ()):
                L.append("- " + n)
            L.append("")
    L.append("## Files")
    L.append("")
    for k in ("run", "timeseries", "checkpoints", "latency"):
        L.append("- `%s`" % FILES[k])
    L.append("")
    return "\n".join(L)


def _f(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.1f" % v if abs(v) >= 10 else "%.3f" % v
    return str(v)
