"""`arcopy perf ops`: what the day-two operations cost, measured in the simulator.

- initial copy: a full copy of every block (START_COPY full) on 4 pairs at once: time until
  every pair is duplex, copy rate per pair against the peer link's line rate;
- resync after suspend: blocks moved by RESUME against blocks changed while suspended, and the
  time until the pair rejoins;
- pacing: a peer link slower than the host workload, with pacing on and off: completion latency,
  journal depth, refused writes and auto-suspends;
- overload recovery: pacing off, the pair suspends itself on a full journal; once the overload
  ends the operator resumes it: how old the recoverable cut had grown, and how long after the
  RESUME the secondary applies a cut taken after it (the cut advancing again).
"""
import struct

from firmware import codec
from firmware import wire

from host_tools.perf.registry import section
from host_tools.perf.figures import BAUD, build_world, pct, r3, write_latencies_us

_STATUS = struct.Struct(wire.P_STATUS_BODY)
POLL_US = 50000


def status(world, name):
    st, mt, pl = world.call(name, wire.T_H_STATUS)
    if st != wire.S_OK or mt != wire.T_H_REPLY:
        return None
    return dict(zip(codec.STATUS_FIELDS, _STATUS.unpack(bytes(pl[1:1 + _STATUS.size]))))


def run_until(world, pred, limit_us):
    end = world.now + limit_us
    while world.now < end:
        if pred():
            return True
        world.run(world.now + POLL_US)
    return pred()


def all_state(world, boards, state):
    return all((status(world, b.name) or {}).get("copy_state") == state for b in boards)


def write_block(world, name, blk, tag):
    data = (tag.encode() * 512)[:wire.BLOCK_SIZE]
    payload = struct.pack(wire.P_H_WRITE, 0, blk) + data
    return world.call(name, wire.T_H_WRITE, payload)[0]


def initial_copy(quick, seed=1, pairs=4):
    blocks = 64 if quick else 256
    world, _ = build_world(seed=seed, pairs=pairs, duration_s=600, rate=None, autostart=False,
                           vol_blocks=blocks)
    world.run(1500000)
    t0 = world.now
    for b in world.primaries:
        assert world.command(b.name, wire.C_START_COPY, 1)[0] == wire.S_OK
    done = {}

    def check():
        for b in world.secondaries:
            if b.name not in done and (status(world, b.name) or {}).get("copy_state") == wire.CS_DUPLEX:
                done[b.name] = world.now - t0
        return len(done) == len(world.secondaries)

    ok = run_until(world, check, 600 * 1000000)
    copied = [status(world, b.name)["copy_done"] for b in world.primaries]
    secs = [v / 1e6 for v in done.values()]
    rate = [blocks / s for s in secs] if secs else []
    line = BAUD / 10 / (codec.SZ_BATCH_HEAD / 7 + wire.RECORD_SIZE + wire.OVERHEAD / 7)
    return {"pairs": pairs, "blocks": blocks, "ok": ok, "copied": copied,
            "seconds_max": max(secs) if secs else None, "rate_min": min(rate) if rate else None,
            "line_blocks_s": line}


def resync(changed, quick, seed=2, pairs=4):
    world, _ = build_world(seed=seed, pairs=pairs, duration_s=600, rate=None, vol_blocks=128)
    world.run(1500000)
    p, s = world.primaries[0], world.secondaries[0]
    assert world.command(p.name, wire.C_SUSPEND)[0] == wire.S_OK
    world.run(world.now + 300000)
    writes = 0
    for i in range(changed * 2):                 # each changed block written twice
        blk = (i * 7) % changed
        assert write_block(world, p.name, blk, "s%d" % i) == wire.S_OK
        writes += 1
    marked = status(world, p.name)["dirty_blocks"]
    t0 = world.now
    assert world.command(p.name, wire.C_RESUME)[0] == wire.S_OK
    ok = run_until(world, lambda: all_state(world, [s], wire.CS_DUPLEX), 120 * 1000000)
    took = (world.now - t0) / 1e6
    st = status(world, p.name)
    return {"changed": changed, "writes": writes, "marked": marked, "moved": st["copy_done"],
            "seconds": took, "ok": ok}


def image_cost(keep, quick, seed=4, pairs=4):
    """Suspend pair 0 under a random workload, resume it, and measure the resync with the
    preserved image (keep_image on: before-images on every secondary, the group's anchor) or
    without (off: the resync overwrites the image, as before): suspend->DUPLEX time on both
    sides, block writes on the secondaries from the resume to the join, and the SD blocks the
    preserved image held at most (2 per saved block: data + header)."""
    world, _ = build_world(seed=seed, pairs=pairs, duration_s=600, rate=20.0, vol_blocks=128,
                           config={"keep_image": keep})
    world.run(1500000)
    p, s = world.primaries[0], world.secondaries[0]
    assert world.command(p.name, wire.C_SUSPEND)[0] == wire.S_OK
    world.run(world.now + (1000000 if quick else 3000000))
    marked = status(world, p.name)["dirty_blocks"]
    w0 = sum(getattr(b.disk, "writes", 0) for b in world.secondaries)
    t0 = world.now
    peak = {}

    def joined():
        for b in world.secondaries:
            st = status(world, b.name) or {}
            blocks = st.get("pace_us", 0) >> 8          # a secondary: preserved blocks << 8
            peak[b.name] = max(peak.get(b.name, 0), blocks)
        return all_state(world, [p, s], wire.CS_DUPLEX)
    assert world.command(p.name, wire.C_RESUME)[0] == wire.S_OK
    ok = run_until(world, joined, 120 * 1000000)
    took = (world.now - t0) / 1e6
    writes = sum(getattr(b.disk, "writes", 0) for b in world.secondaries) - w0
    return {"keep": keep, "marked": marked, "seconds": took, "ok": ok, "sec_writes": writes,
            "img_blocks_max": max(peak.values()) if peak else 0,
            "img_blocks_sum": sum(peak.values()),
            "sd_blocks": 2 * sum(peak.values())}


def pacing(on, quick, seed=3):
    duration = 8.0 if quick else 20.0
    cfg = {"pace_threshold": 32, "pace_max_us": 1000000 if on else 0}
    world, wl = build_world(seed=seed, pairs=1, duration_s=duration, rate=30.0, concurrency=2, kind="seq",
                            peer_baud=57600, journal_slots=128, config=cfg)
    depth = [0]
    pace = [0]
    p = world.primaries[0]

    def sample():
        st = p.node.store.j_depth() if p.alive and p.node else 0
        depth[0] = max(depth[0], st)
        if p.alive and p.node:
            pace[0] = max(pace[0], p.node.role.pace_us)
        if world.now < world.duration_us:
            world.sched.schedule(world.now + 20000, sample)

    world.sched.schedule(1000000, sample)
    world.run(world.duration_us)
    lat = write_latencies_us(wl.log)
    refused = sum(1 for e in wl.log if e.complete_us is not None and not e.ok)
    suspends = p.node.role.suspends if p.node else None
    return {"on": on, "completed": len(lat), "refused": refused,
            "p50": pct(lat, 50) / 1000.0 if lat else None, "p99": pct(lat, 99) / 1000.0 if lat else None,
            "depth_max": depth[0], "pace_max_ms": pace[0] / 1000.0, "suspends": suspends}


def overload_recovery(quick, seed=3):
    """Pacing off, 30 sequential writes/s into a 57600-baud link (journal 128): the pair
    suspends itself. The workload ends; half a second later the operator resumes the pair.
    -> seconds from the suspension to the resume, the cut's age at the resume (the primary's
    sequence time minus the secondary's applied cut), and the seconds from the RESUME until
    the secondary has applied a cut taken after it."""
    duration = 10.0 if quick else 12.0
    cfg = {"pace_threshold": 32, "pace_max_us": 0}
    world, _ = build_world(seed=seed, pairs=1, duration_s=duration, rate=30.0, concurrency=2,
                           kind="seq", peer_baud=57600, journal_slots=128, config=cfg)
    p, s = world.primaries[0], world.secondaries[0]
    suspended = run_until(world, lambda: (status(world, p.name) or {}).get("copy_state")
                          == wire.CS_SUSPENDED, world.duration_us)
    t_susp = world.now
    world.run(max(world.now, world.duration_us) + 500000)
    ps, ss = status(world, p.name), status(world, s.name)
    age_ms = (ps["seq_time_us"] - ss["applied_t"]) / 1000.0
    t_res = world.now
    resume_seq = ps["seq_time_us"]
    assert world.command(p.name, wire.C_RESUME)[0] == wire.S_OK
    ok = run_until(world, lambda: (status(world, s.name) or {}).get("applied_t", 0) > resume_seq,
                   120 * 1000000)
    return {"suspended": suspended, "suspended_for_s": (t_res - t_susp) / 1e6,
            "cut_age_at_resume_ms": age_ms, "marked": ps["dirty_blocks"],
            "advancing_after_s": (world.now - t_res) / 1e6 if ok else None, "ok": ok}


@section("ops", "day-two operations in the simulator: initial full copy rate, resync after "
         "suspend (blocks moved vs changed), pacing on a slow peer link")
def perf_ops(quick):
    ic = initial_copy(quick)
    rs = [resync(n, quick) for n in ((8, 32) if quick else (8, 32, 96))]
    pc = [pacing(False, quick), pacing(True, quick)]
    im = [image_cost(False, quick), image_cost(True, quick)]
    ov = overload_recovery(quick)
    return {
        "tables": [
            {"title": "initial full copy, %d pairs at once, peer links %d baud" % (ic["pairs"], BAUD),
             "columns": ["blocks per volume", "all duplex", "slowest pair s", "slowest pair blocks/s",
                         "line rate blocks/s", "copy records per pair"],
             "rows": [[ic["blocks"], ic["ok"], r3(ic["seconds_max"]), r3(ic["rate_min"]),
                       r3(ic["line_blocks_s"]), "/".join(str(c) for c in ic["copied"])]]},
            {"title": "resync after suspend (one pair of 4; each changed block written twice)",
             "columns": ["blocks changed", "host writes", "marked", "copy records moved",
                         "suspend->duplex s", "rejoined"],
             "rows": [[r["changed"], r["writes"], r["marked"], r["moved"], r3(r["seconds"]), r["ok"]]
                      for r in rs]},
            {"title": "pacing: 30 writes/s offered (sequential writes, at most 2 in flight) into a 57600-baud peer link "
                      "(~10.8 blocks/s), journal 128, threshold 32",
             "columns": ["pacing", "writes completed", "refused", "p50 ms", "p99 ms",
                         "journal depth max", "largest delay ms", "auto-suspends"],
             "rows": [["on (max 1 s)" if r["on"] else "off", r["completed"], r["refused"],
                       r3(r["p50"]), r3(r["p99"]), r["depth_max"], r3(r["pace_max_ms"]), r["suspends"]]
                      for r in pc]},
            {"title": "resync with and without the preserved image (pair 0 of 4 suspended under 20 "
                      "random writes/s over 128 blocks, then resumed)",
             "columns": ["preserved image", "marked", "resume->duplex s", "secondary block writes",
                         "saved blocks (all secondaries)", "largest on one board",
                         "SD blocks used", "duplex"],
             "rows": [["on" if r["keep"] else "off", r["marked"], r3(r["seconds"]), r["sec_writes"],
                       r["img_blocks_sum"], r["img_blocks_max"], r["sd_blocks"], r["ok"]]
                      for r in im]},
            {"title": "overload recovery: pacing off, 30 writes/s into a 57600-baud link, journal 128; "
                      "the pair suspends itself, the workload ends, the operator resumes",
             "columns": ["suspended itself", "suspended for s", "cut age at resume ms",
                         "blocks marked", "resume -> cut advancing s"],
             "rows": [[ov["suspended"], r3(ov["suspended_for_s"]), r3(ov["cut_age_at_resume_ms"]),
                       ov["marked"], r3(ov["advancing_after_s"])]]},
        ],
        "image": [dict(r) for r in im],
        "overload": dict(ov),
        "notes": [
            "the simulator charges no time for disk or CPU: copy rates are peer-link bound",
            "preserved image: each first overwrite of a block after the anchor costs a read and two "
            "block writes (before-image, header); the area reserves 2 blocks per volume block",
            "line rate: full WRITE_BATCH frames of 7 copy records at 10 bits per byte",
            "resync moves each changed block once however often it was written (the bitmap), "
            "plus blocks first written while the resync runs",
            "pacing off: the journal fills and the pair suspends itself (writes still complete, the "
            "pair then needs a resume); on: completions slow down instead, and the pair stays duplex "
            "as long as the delay brings the offered rate under the link rate",
        ],
    }
