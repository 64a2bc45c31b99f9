"""One simulated disaster-recovery drill, end to end, from one seed.

    run_scenario(seed=7, pairs=4, duration_s=6, faults="all", mode="clock") -> dict

1. Build the World (boards, buses, links, faults, all from the seed) with a
   dependent-write workload on the primaries.
2. Run until the disaster (drawn from the seed, or at the end of the run): the
   whole primary site stops; the secondaries resign once their peer links fall silent.
3. Fail over, read back and judge as the operator does: the procedures of
   host_tools/ops/ (ops.drill.recover: ops.failover.failover, ops.verify) over the
   world's host ports (SimTransport), the same functions `arcopy failover` and
   `arcopy verify` run on a rig.
4. The verdict comes from the checker (host_tools/check/verdict.py), which knows
   nothing of the replication code: safety (violations among the pairs that did fail
   over; acknowledged writes lost although they completed before the recovered cut was
   issued, less a margin for clock skew) apart from liveness (pairs left without an
   image, silent boards, no common cut).
"""
import time

from firmware import wire
from host_tools import ops
from host_tools.check import verdict as _verdict
from host_tools.check.workload import Workload
from .transport import SimTransport
from .world import World

MODES = {"clock": wire.MODE_CLOCK, "clockless": wire.MODE_CLOCKLESS, "sync": wire.MODE_SYNC}
SKEW_MARGIN_US = _verdict.SKEW_MARGIN_US

# how the simulated operator waits (virtual seconds): boards may be rebooting after a crash
FAILOVER_KW = {"settle_timeout": 10.0, "settle_polls": 3, "poll_s": 0.25, "cmd_timeout": 20.0,
               "pause_s": 0.25}


class CheckpointLog:
    """Observes (never steers) checkpoints, through the world's trace hook: the virtual time
    each one was first accepted by a primary, which is when the master issued it."""

    def __init__(self, world):
        self.first = {}              # T -> virtual us when first accepted
        self._remove = world.add_tracer(self._on_trace)

    def _on_trace(self, board, now, event, n, t):
        if event == "ckpt_accepted" and t not in self.first:
            self.first[t] = now

    def close(self):
        self._remove()


def failover(world, boards=None, transport=None):
    """Group failover through the host ports of `boards` (default: the secondaries), by
    ops.failover.failover. Returns (target_n, target_t, {board: status or None})."""
    boards = world.secondaries if boards is None else boards
    t = transport or SimTransport(world)
    fo = ops.failover.failover(t, [b.name for b in boards], **FAILOVER_KW)
    return fo["target_n"], fo["target_t"], fo["codes"]


def recover(world, log, boards, ckpts, mode, disaster_us, transport=None):
    """The end of every drill: ops.drill.recover over `boards` (the secondaries to fail over,
    pair i = boards[i]) against `log`. -> its result (see host_tools/ops/drill.py)."""
    t = transport or SimTransport(world)
    secs = {i: b.name for i, b in enumerate(boards)}
    cut_at = None if mode == "clockless" else ckpts.first.get
    nvol = boards[0].cfg.nvol
    vol_blocks = boards[0].cfg.vol_blocks
    return ops.drill.recover(t, secs, log, nvol, vol_blocks, disaster_us=disaster_us, cut_at=cut_at,
                             failover_kw=FAILOVER_KW)


def verdict_keys(res, extra_failures=()):
    """The result keys of a drill's verdict: safety, liveness, ok, verdict, plus the older
    keys (consistent: no safety failure among the recovered pairs). extra_failures: what
    else the drill saw go wrong (a failed expectation, a harness error): liveness."""
    v = dict(res["verdict"])
    rep = res["report"]
    out = {"safety": v["safety"], "liveness": v["liveness"]}
    bad_s = v["verdict"] in ("safety", "safety+liveness")
    bad_l = v["verdict"] in ("liveness", "safety+liveness") or bool(extra_failures)
    out["ok"] = not (bad_s or bad_l)
    out["verdict"] = "+".join(x for x, b in (("safety", bad_s), ("liveness", bad_l)) if b) or "ok"
    out["consistent"] = not bad_s
    out["checker_consistent"] = rep.consistent
    out["lost_before_released_checkpoint"] = v["lost_before_cut_ids"]
    return out


def run_scenario(seed=0, pairs=4, duration_s=6.0, faults="all", mode="clock", kind="ims",
                 rate=60.0, ckpt_interval_ms=200, policy="freeze", concurrency=4,
                 settle_s=4.0, bus_baud=115200, peer_baud=115200, workload_start_s=None,
                 master_kills=0, config=None, world_opts=None):
    t0 = time.perf_counter()
    duration_us = int(duration_s * 1e6)
    cfg = {"mode": MODES[mode], "ckpt_interval_us": int(ckpt_interval_ms * 1000),
           "policy": wire.POLICY_CONTINUE if policy == "continue" else wire.POLICY_FREEZE,
           "peer_timeout_us": 1000000}
    cfg.update(config or {})
    opts = {"vol_blocks": 128, "journal_slots": 256, "bus_baud": bus_baud, "peer_baud": peer_baud}
    if workload_start_s is None:
        # start writing once the primary bus has elected a master and cut a checkpoint
        workload_start_s = max(1.0, 0.75 * 115200 / bus_baud * 2)
    opts["workload_start_us"] = int(workload_start_s * 1e6)
    opts.update(world_opts or {})
    wl = Workload(kind=kind, pairs=pairs, vols=1, blocks=opts["vol_blocks"], rate=rate,
                  duration_us=duration_us, concurrency=concurrency, seed=seed)
    world = World(seed=seed, faults=faults, workload=wl, pairs=pairs, duration_us=duration_us,
                  config=cfg, **opts)
    ckpts = CheckpointLog(world)
    kills = schedule_master_kills(world, master_kills, duration_us) if master_kills else []
    try:
        world.run()
        if world.disaster_time is None:
            world.disaster()
        # let in-flight rounds finish and every secondary notice its silent peer
        world.run(world.now + int(settle_s * 1e6))
        wl.log.close(world.disaster_time)
        res = recover(world, wl.log, world.secondaries, ckpts, mode, world.disaster_time)
    finally:
        ckpts.close()
    rep = res["report"]
    fo = res["failover"]
    target_n, target_t = fo["target_n"], fo["target_t"]
    cut_at = res["cut_at_us"]
    images = {i: {v: vol.raw() for v, vol in vols.items()} for i, vols in res["images"].items()}
    stats = world.stats()
    wall = time.perf_counter() - t0
    sec_stats = [b.stats() for b in world.secondaries]
    errs = [b.stats().get("clock_err_us") for b in world.primaries]
    errs = [e for e in errs if e is not None and e != 0xFFFFFFFF]
    out = {
        "seed": seed,
        "pairs": pairs,
        "mode": mode,
        "faults": sorted(world.faults.classes),
        "violations": rep.to_dict()["violations"],
        "violations_total": rep.violations_total,
        "corrupt": rep.to_dict()["corrupt"],
        "writes_issued": stats["workload"]["issued"],
        "writes_completed": rep.writes_completed,
        "writes_recovered": rep.writes_recovered,
        "lost_acked": len(rep.lost_acked_ids),
        "rpo_ms": rep.rpo_ms,
        "checkpoints_issued": len(ckpts.first),
        "checkpoints_released": target_n,
        "failover": {k: v for k, v in sorted(fo["codes"].items())},
        "recovered_pairs": res["recovery"]["recovered"],
        "disaster_ms": None if world.disaster_time is None else world.disaster_time / 1000.0,
        "digest": world.digest() if world.opts.get("trace") else _state_digest(world, images),
        "sim_seconds": world.now / 1e6,
        "wall_seconds": round(wall, 3),
        "events": stats["events"],
        "errors": stats["errors"],
        "recovered_checkpoint": {"n": target_n, "t": target_t},
        "master_kills": kills,
        "checkpoints_after_last_kill": sum(1 for v in ckpts.first.values()
                                           if kills and v > kills[-1]["at_us"]),
        "recovered_cut_after_last_kill": bool(kills and cut_at is not None
                                              and cut_at > kills[-1]["at_us"]),
        "clock_err_us": max(errs) if errs else None,
        "bus_collisions": stats["buses"]["bus-p"]["collisions"] + stats["buses"]["bus-s"]["collisions"],
        "fault_options": world.faults.to_dict(),
        "secondaries": sec_stats,
    }
    out.update(verdict_keys(res, ["harness: %s" % (e,) for e in stats["errors"]]))
    if world.sched.counts is not None:
        out["event_counts"] = dict(sorted(world.sched.counts.items()))
    return out


lost_before = _verdict.lost_before       # moved to host_tools/check/verdict.py


def _state_digest(world, images):
    """Digest of the final state: every board's disk, every recovered image and the final
    virtual time (not the number of engine events: how the engine schedules is not part of
    the outcome)."""
    import hashlib
    h = hashlib.blake2b(digest_size=16)
    h.update(str(world.now).encode())
    for name in sorted(world.boards):
        disk = world.boards[name].disk
        h.update(bytes(getattr(getattr(disk, "inner", disk), "data", b"")))
    for i in sorted(images):
        for v in sorted(images[i]):
            h.update(images[i][v])
    return h.hexdigest()


def schedule_master_kills(world, count, duration_us):
    """Crash whichever boards are the primary master and the secondary master at `count`
    instants drawn from the seed (each down for a drawn time, then rebooted). Returns the
    list of kills, filled in as they happen."""
    r = world.tree.stream("master-kills")
    kills = []

    def kill(site):
        boards = world.primaries if site == "primary" else world.secondaries
        for b in boards:
            node = getattr(b, "node", None)
            if b.alive and node is not None and node.mac.is_master():
                down = r.randrange(100000, 2000000)
                kills.append({"at_us": world.sched.now, "site": site, "board": b.name, "down_us": down})
                b.crash(down)
                return

    lo, hi = duration_us // 5, (duration_us * 4) // 5
    for _ in range(count):
        world.sched.schedule(r.randrange(lo, hi), kill, r.choice(("primary", "secondary")))
    return kills
