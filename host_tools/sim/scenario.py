"""One simulated disaster-recovery drill, end to end, from one seed.

    run_scenario(seed=7, pairs=4, duration_s=6, faults="all", mode="clock") -> dict

1. Build the World (boards, buses, links, faults, all from the seed) with a
   dependent-write workload on the primaries.
2. Run until the disaster (drawn from the seed, or at the end of the run): the
   whole primary site stops; the secondaries resign once their peer links fall silent.
3. Fail over as an operator would, through each secondary's host port: ask every
   secondary for its status, take the newest released checkpoint any of them
   knows (n, T), and recover each one to it (C_FAILOVER n T).
4. Read every secondary volume and hand the images and the workload log to the
   consistency checker, which knows nothing of the replication code.

The report also says whether any acknowledged write that completed before the
recovered checkpoint was cut (with a margin for clock skew) was lost: that is a
protocol failure even where the image is consistent.
"""
import struct
import time

from firmware import wire
from host_tools.check import checker
from host_tools.check.workload import Workload
from .world import World

MODES = {"clock": wire.MODE_CLOCK, "clockless": wire.MODE_CLOCKLESS, "sync": wire.MODE_SYNC}
_STATUS = struct.Struct(wire.P_STATUS_BODY)
SKEW_MARGIN_US = 20000


class CheckpointLog:
    """Observes (never steers) checkpoints: the virtual time each one was first
    accepted by a primary, which is when the master issued it."""

    def __init__(self, world):
        self.world = world
        self.first = {}              # T -> virtual us when first accepted
        from firmware import primary
        self._cls = primary.Primary
        self._orig = primary.Primary.accept_checkpoint
        log = self

        def accept(role, now, n, t):
            ok = log._orig(role, now, n, t)
            if ok and t not in log.first:
                log.first[t] = log.world.sched.now
            return ok
        self._cls.accept_checkpoint = accept

    def close(self):
        self._cls.accept_checkpoint = self._orig


def _status(world, name):
    st, mt, pl = world.call(name, wire.T_H_STATUS)
    if st != wire.S_OK or mt != wire.T_H_REPLY:
        return None
    return _STATUS.unpack(bytes(pl[1:1 + _STATUS.size]))


def failover(world, attempts=20, boards=None):
    """Group failover through the host ports of `boards` (default: the secondaries).
    Returns (target_n, target_t, results)."""
    boards = world.secondaries if boards is None else boards
    best = (0, 0)
    statuses = {}
    for b in boards:
        s = None
        for _ in range(attempts):
            s = _status(world, b.name)
            if s is not None:
                break
            world.run(world.now + 250000)          # board rebooting: wait for it
        statuses[b.name] = s
        if s is None:
            continue
        applied_n, applied_t, uip_n, uip_t = s[11], s[12], s[13], s[14]
        cand = (uip_n, uip_t) if uip_n and uip_t > applied_t else (applied_n, applied_t)
        if cand[1] > best[1]:
            best = cand
    results = {}
    for b in boards:
        st = None
        for _ in range(attempts):
            st = world.command(b.name, wire.C_FAILOVER, best[0], best[1])[0]
            if st == wire.S_OK or st == wire.S_BAD_STATE:
                break
            world.run(world.now + 250000)
        results[b.name] = st
    return best[0], best[1], results


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
        target_n, target_t, results = failover(world)
        images = {i: {0: bytes(world.read_volume(b.name, 0))}
                  for i, b in enumerate(world.secondaries)}
    finally:
        ckpts.close()
    wl.log.close(world.disaster_time)
    rep = checker.check(wl.log, images, disaster_us=world.disaster_time)
    cut_at = ckpts.first.get(target_t)
    lost_before_cut = [] if mode == "clockless" else lost_before(wl.log, rep, cut_at)
    stats = world.stats()
    wall = time.perf_counter() - t0
    sec_stats = [b.stats() for b in world.secondaries]
    skews = [b.stats().get("skew_max_us", 0) for b in world.primaries]
    out = {
        "seed": seed,
        "pairs": pairs,
        "mode": mode,
        "faults": sorted(world.faults.classes),
        "consistent": rep.consistent and not lost_before_cut,
        "checker_consistent": rep.consistent,
        "violations": rep.to_dict()["violations"],
        "violations_total": rep.violations_total,
        "corrupt": rep.to_dict()["corrupt"],
        "writes_issued": stats["workload"]["issued"],
        "writes_completed": rep.writes_completed,
        "writes_recovered": rep.writes_recovered,
        "lost_acked": len(rep.lost_acked_ids),
        "lost_before_released_checkpoint": sorted(lost_before_cut),
        "rpo_ms": rep.rpo_ms,
        "checkpoints_issued": len(ckpts.first),
        "checkpoints_released": target_n,
        "failover": {k: v for k, v in sorted(results.items())},
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
        "skew_max_us": max(skews) if skews else 0,
        "bus_collisions": stats["buses"]["bus-p"]["collisions"] + stats["buses"]["bus-s"]["collisions"],
        "fault_options": world.faults.to_dict(),
        "secondaries": sec_stats,
    }
    return out


def lost_before(log, rep, cut_at):
    """Ids of the acknowledged writes the checker found lost although they completed
    before the recovered checkpoint was cut (less a margin for clock skew): a protocol
    failure even where the image is consistent. `log`: anything with get(id) -> entry."""
    out = []
    if cut_at is None:
        return out
    for wid in set(rep.lost_acked_ids):
        e = log.get(wid)
        if e.complete_us is not None and e.complete_us < cut_at - SKEW_MARGIN_US:
            out.append(wid)
    return out


def _state_digest(world, images):
    """Digest of the final state: every secondary image, the events executed and
    the final virtual time."""
    import hashlib
    h = hashlib.blake2b(digest_size=16)
    h.update(str((world.now, world.sched.events)).encode())
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
