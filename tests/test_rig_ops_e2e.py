"""Pair operations end to end on the emulated rig (real firmware processes on
pseudo-terminals, driven through the arcopy CLI): initial copy of volumes that hold
data, suspend/resume with a bitmap resync, failback and a drill in the reverse
direction, master failover on both sites, pacing and auto-suspend on a full journal.

Rigs, helpers and the finalizer that takes every rig down come from
tests/test_rig_e2e.py.
"""
import json
import time

import pytest

from test_rig_e2e import arcopy, cli, cli_proc, disaster_failover_verify, drain, rig, status, \
    wait_until  # noqa: F401  (rig is a fixture)

from host_tools.rig import session as rigops
from host_tools.rig import records
from host_tools.rig.workload import mono_us
from host_tools.rig import manager as rigmgr
from host_tools.transport.messages import status_name
from host_tools.transport.serial_client import HostClient
from host_tools.check.workload import WorkloadLog
from firmware import wire


def run_cli(capsys, *argv):
    """Run the CLI in-process (assert success) and return what it printed."""
    capsys.readouterr()
    cli(*argv)
    return capsys.readouterr().out


def workload(d, *argv):
    """`arcopy workload` (a separate process, no progress bar); -> its JSON summary."""
    p = cli_proc("workload", "--dir", d, "--no-progress", "--json", *argv)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()[-2000:]
    return json.loads(out)


def changed_blocks(log, pair):
    """Distinct (vol, block) a workload log wrote on `pair` (whatever the outcome)."""
    return {(e.vol, e.block) for e in log.entries if e.pair == pair}


def last_payloads(log):
    """(pair, vol, block) -> the payload of the last write of that block in `log`."""
    out = {}
    for e in sorted(log.entries, key=lambda e: e.issue_seq):
        out[(e.pair, e.vol, e.block)] = log.payload(e.id)
    return out


def volumes(bench, boards):
    images, stats = rigops.read_volumes(bench, boards=boards)
    assert stats["failed"] == 0, stats
    return {(p, v, k): bytes(dict.get(img, k) or bytes(wire.BLOCK_SIZE))
            for p, vols in images.items() for v, img in vols.items() for k in range(img.nblocks)}


def assert_releasing(bench, timeout=8.0):
    """Every secondary applies a checkpoint at least as new as the newest one cut now;
    else fail with the status table (a stalled rendezvous shows there)."""
    t = max(status(bench, b["name"])["ckpt_t"] for b in rigmgr.primaries(bench))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(status(bench, b["name"])["applied_t"] >= t for b in rigmgr.secondaries(bench)):
            return
        time.sleep(0.05)
    table = rigops.format_table(rigops.pair_rows(bench, rigops.collect_status(bench)))
    raise AssertionError("checkpoints are no longer released and applied everywhere:\n" + table)


def finish(proc, timeout=60, codes=(0,)):
    """The JSON summary of a `workload` process; its exit status must be in `codes` (1: some
    writes failed, e.g. to a board killed during the run)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode in codes, err.decode()[-2000:]
    return json.loads(out)


# -- a. initial copy of volumes that already hold data ----------------------------------------------
def test_initial_copy_of_volumes_with_data_then_drill(rig, capsys):
    bench = rig("b", "--pairs", 2)
    d = bench["dir"]
    w0 = workload(d, "--kind", "random", "--rate", 60, "--duration", 0.8, "--seed", 5)
    assert w0["failed"] == 0 and w0["completed_ok"] > 30
    log0 = records.load_log(bench)
    before = {i: changed_blocks(log0, i) for i in range(2)}
    for i in range(2):
        st = status(bench, "p%d" % i)
        assert st["copy_state"] == wire.CS_SIMPLEX
        assert st["dirty_blocks"] == len(before[i]), (i, st["dirty_blocks"], len(before[i]))
    out = run_cli(capsys, "start-copy", "--dir", d)
    total = len(before[0]) + len(before[1])
    assert "initial copy: %d of %d blocks copied" % (total, total) in out, out
    for i in range(2):
        assert "pair %d (p%d -> s%d): %d blocks copied" % (i, i, i, len(before[i])) in out, out
        st = status(bench, "p%d" % i)
        assert st["copy_state"] == wire.CS_DUPLEX and st["dirty_blocks"] == 0
        assert st["copy_done"] == st["copy_total"] == len(before[i]), (st["copy_done"], st["copy_total"])
    # a drill on top of it
    w1 = workload(d, "--kind", "ims", "--rate", 40, "--duration", 1.5)
    assert w1["failed"] == 0
    log1 = records.load_log(bench)
    drain(bench)
    rep = disaster_failover_verify(bench)
    assert rep.consistent, rep.summary()
    assert rep.lost_acked == 0, rep.summary()
    # what was written before the copy started is at the secondaries (unless rewritten)
    img = volumes(bench, rigmgr.secondaries(bench))
    later = {(e.pair, e.vol, e.block) for e in log1.entries}
    kept = {a: data for a, data in last_payloads(log0).items() if a not in later}
    assert len(kept) > 20
    for a, data in kept.items():
        assert img[a] == data, "block %r written before start-copy is not at the secondary" % (a,)


def test_full_initial_copy_copies_every_block(rig, capsys):
    bench = rig("b", "--pairs", 1, "--vol-blocks", 32)
    d = bench["dir"]
    with HostClient(rigmgr.board(bench, "p0")["host"]) as c:
        for k in (0, 7, 31):
            assert c.write(0, k, bytes([k + 1]) * wire.BLOCK_SIZE) == wire.S_OK
    out = run_cli(capsys, "start-copy", "--dir", d, "--full")
    assert "p0: START_COPY(full) -> OK" in out
    assert "initial copy: 32 of 32 blocks copied" in out, out
    assert "pair 0 (p0 -> s0): 32 blocks copied" in out, out
    p, s = volumes(bench, rigmgr.primaries(bench)), volumes(bench, rigmgr.secondaries(bench))
    assert p == s and p[(0, 0, 7)] == bytes([8]) * wire.BLOCK_SIZE


# -- b. suspend, write, resume: the resync moves exactly the changed blocks ---------------------------
@pytest.mark.parametrize("which", ["other", "master"])
def test_suspend_resume_copies_exactly_the_changed_blocks(rig, capsys, which):
    """`which`: suspend the pair whose secondary is not / is the rendezvous master (the
    master keeps running the rendezvous for the others while its own pair resyncs)."""
    bench = rig("b", "--pairs", 2)
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    sm = [i for i in range(2) if status(bench, "s%d" % i)["is_master"]]
    assert len(sm) == 1, sm
    x = sm[0] if which == "master" else 1 - sm[0]
    y = 1 - x
    px, sx, sy = "p%d" % x, "s%d" % x, "s%d" % y
    assert status(bench, px)["journal_depth"] == 0
    out = run_cli(capsys, "suspend", "--dir", d, "--pair", x)
    assert "%s: SUSPEND -> OK" % px in out
    cut = max(status(bench, n)["ckpt_t"] for n in ("p0", "p1"))
    st = status(bench, px)
    assert st["copy_state"] == wire.CS_SUSPENDED and st["suspend_reason"] == wire.R_OPERATOR
    wait_until(lambda: status(bench, sx)["copy_state"] == wire.CS_SUSPENDED, 5.0,
               "%s to learn of the suspension" % sx)
    sy_applied = status(bench, sy)["applied_t"]
    summ = workload(d, "--kind", "random", "--rate", 40, "--duration", 2, "--seed", 3)
    assert summ["failed"] == 0 and summ["in_flight"] == 0
    changed = changed_blocks(records.load_log(bench), x)
    assert len(changed) > 10
    st = status(bench, px)
    assert st["copy_state"] == wire.CS_SUSPENDED and st["journal_depth"] == 0
    assert st["dirty_blocks"] == len(changed), (st["dirty_blocks"], len(changed))
    if which == "other":
        # the two sites of the suspended pair differ, and `arcopy verify --sites` says where
        capsys.readouterr()
        assert arcopy(["verify", "--dir", d, "--sites"]) == 1
        out, err = capsys.readouterr()
        assert "pair %d: " % x in out and "pair %d: " % y not in out, out
        assert "the sites differ in 1 pair(s)" in err, err
    # the group went on without the suspended pair, whose secondary stayed at its last checkpoint
    assert status(bench, sy)["applied_t"] > sy_applied
    assert status(bench, sx)["applied_t"] <= cut
    out = run_cli(capsys, "resume", "--dir", d, "--pair", x, "--timeout", 20)
    assert "%s: RESUME -> OK" % px in out
    assert "pair %d (%s -> %s): %d blocks copied" % (x, px, sx, len(changed)) in out, out
    st = status(bench, px)
    assert st["copy_state"] == wire.CS_DUPLEX and st["dirty_blocks"] == 0
    assert st["copy_done"] == len(changed), (st["copy_done"], len(changed))
    assert_releasing(bench)
    drain(bench)
    if which == "other":
        assert "sites identical" in run_cli(capsys, "verify", "--dir", d, "--sites")
    rep = disaster_failover_verify(bench)
    assert rep.consistent, rep.summary()
    assert rep.lost_acked == 0, rep.summary()


# -- c. failback, then a drill in the reverse direction ----------------------------------------------
def test_failback_copies_back_the_changes_and_a_reverse_drill_is_consistent(rig, capsys):
    bench = rig("b", "--pairs", 2)
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    # drill 1: the primary site dies in the middle of a workload
    wl = cli_proc("workload", "--dir", d, "--kind", "ims", "--rate", 40, "--duration", 6,
                  "--no-progress", "--json")
    try:
        time.sleep(2.5)
        cli("disaster", "--dir", d)
        finish(wl, codes=(1,))                  # every primary died during the run
    finally:
        if wl.poll() is None:
            wl.kill()
    cli("failover", "--dir", d)
    rep, _ = rigops.verify(bench)
    assert rep.consistent, rep.summary()
    log1 = records.load_log(bench)
    # the host works on at the secondary site
    summ = workload(d, "--to", "secondaries", "--kind", "random", "--rate", 40, "--duration", 1.2,
                    "--seed", 9)
    assert summ["failed"] == 0 and summ["completed_ok"] > 20
    log2 = records.load_log(bench)
    cli("rig", "restart", "--dir", d, "p0", "p1")
    out = run_cli(capsys, "failback", "--dir", d, "--json")
    res = json.loads(out)
    assert res["ok"], res
    for i in range(2):
        p = res["pairs"][str(i)]
        dirty = {(int(v), b) for v, bl in p["dirty"].items() for b in bl}
        merged = {(int(v), b) for v, bl in p["old_primary_dirty"].items() for b in bl}
        since = changed_blocks(log2, i)
        assert since <= dirty, "host writes after the failover not copied back"
        assert merged <= dirty and p["merged"] == len(merged)
        assert dirty <= since | changed_blocks(log1, i), "copied blocks nobody wrote"
        assert p["copied"] == p["to_copy"] == len(dirty), p
    bench = rigmgr.load(d)
    assert [b["name"] for b in rigmgr.primaries(bench)] == ["s0", "s1"]
    assert [b["name"] for b in rigmgr.secondaries(bench)] == ["p0", "p1"]
    assert_releasing(bench)
    # the old primaries now hold exactly what the new primaries hold: through the CLI, and
    # read back here
    out = run_cli(capsys, "verify", "--dir", d, "--sites", "--json")
    res = json.loads(out)
    assert res["ok"] and res["differ"] == {} and res["blocks"] == 2 * bench["vol_blocks"] * bench["nvol"]
    assert volumes(bench, rigmgr.secondaries(bench)) == volumes(bench, rigmgr.primaries(bench))
    # drill 2, in the other direction
    summ = workload(d, "--kind", "ims", "--rate", 40, "--duration", 1.5, "--seed", 4)
    assert summ["failed"] == 0
    rep = disaster_failover_verify(bench)
    assert sorted(records.load_disaster(bench)["killed"]) == ["s0", "s1"]
    assert rep.consistent, rep.summary()
    assert rep.writes_recovered > 0


# -- c2. fencing: restarted old primaries refuse writes; failback refuses to overwrite writes -----------
def test_restarted_old_primaries_are_fenced_and_failback_refuses_their_writes(rig, capsys):
    # p0 fences (the default), p1 takes writes after the failover as change-bitmap marks
    bench = rig("b", "--pairs", 2, "--set", "p1.fence_writes=0")
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    summ = workload(d, "--kind", "random", "--rate", 40, "--duration", 1.0, "--seed", 3)
    assert summ["failed"] == 0
    cli("disaster", "--dir", d)
    cli("failover", "--dir", d)
    cli("rig", "restart", "--dir", d, "p0", "p1")

    def fenced():
        st = [status(bench, b) for b in ("p0", "p1")]
        return all(s["copy_state_name"] == "SUSPENDED" and s["suspend_reason_name"] == "peer-failed-over"
                   for s in st)
    wait_until(fenced, 15.0, "the old primaries to learn that their secondaries failed over")
    # the new user's next step: a workload at the old primaries. p0 refuses every write
    # (FENCED), p1 takes them
    p = cli_proc("workload", "--dir", d, "--no-progress", "--json", "--kind", "random", "--rate", 40,
                 "--duration", 1.0, "--seed", 5)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err.decode()[-2000:]
    summ = json.loads(out)
    assert set(summ["failed_by_status"]) == {"FENCED"}, summ
    assert "write(s) failed: FENCED" in err.decode()
    assert summ["completed_ok"] > 0, summ                # p1's
    for s in ("s0", "s1"):
        assert status(bench, s)["copy_state_name"] == "FAILED_OVER"
    # failback: refused without --force, naming what p1 holds
    capsys.readouterr()
    rc = arcopy(["failback", "--dir", d])
    out, err = capsys.readouterr()
    assert rc == 1, (out, err)
    assert "p1:" in out and "written after the failover" in out, out
    assert "p0:" not in out, out
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--force" in lines[0] and "p1" in lines[0], err
    bench = rigmgr.load(d)
    assert [b["name"] for b in rigmgr.primaries(bench)] == ["p0", "p1"]      # nothing done
    assert status(bench, "p0")["role"] == wire.ROLE_PRIMARY
    # with --force it goes on as before: p1's late writes are overwritten
    res = json.loads(run_cli(capsys, "failback", "--dir", d, "--force", "--json"))
    assert res["ok"], res
    assert list(res["written_after_failover"]) == ["p1"]
    bench = rigmgr.load(d)
    assert [b["name"] for b in rigmgr.primaries(bench)] == ["s0", "s1"]
    assert_releasing(bench)
    assert volumes(bench, rigmgr.secondaries(bench)) == volumes(bench, rigmgr.primaries(bench))


# -- d. master failover on both sites mid-workload ------------------------------------------------------
# A host port has one reader: while `arcopy workload` drives the primaries, only the
# secondaries are asked for their status.
def _masters(bench, boards):
    return [b["name"] for b in boards if status(bench, b["name"])["is_master"]]


def _applied(bench):
    """Secondaries' applied checkpoint time T (None for a board that does not answer)."""
    out = {}
    for b in rigmgr.secondaries(bench):
        try:
            out[b["name"]] = status(bench, b["name"])["applied_t"]
        except Exception:           # a board still booting
            out[b["name"]] = None
    return out


def _applied_past(bench, t):
    return all(v is not None and v > t for v in _applied(bench).values())


def test_master_failover_on_both_sites_keeps_releasing(rig):
    # a killed board is back well before its peer would give it up
    bench = rig("b", "--pairs", 2, "--set", "peer_timeout_us=10000000")
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    pm = _masters(bench, rigmgr.primaries(bench))
    assert len(pm) == 1, pm
    wl = cli_proc("workload", "--dir", d, "--kind", "random", "--rate", 30, "--duration", 7,
                  "--no-progress", "--json")
    try:
        time.sleep(1.0)
        # the primary master dies: checkpoints go on being cut (by the other primary:
        # the checkpoints applied after the restart are newer than any cut before the
        # kill by more than the copy could lag) and released
        t = max(_applied(bench).values())
        cli("rig", "kill", "--dir", d, pm[0])
        time.sleep(0.5)
        cli("rig", "restart", "--dir", d, pm[0])
        wait_until(lambda: _applied_past(bench, t + 1500000), 15.0,
                   "checkpoints cut after %s died to be applied everywhere" % pm[0], step=0.05)
        # the secondary (rendezvous) master dies: another secondary takes over
        secs = rigmgr.secondaries(bench)
        sm = _masters(bench, secs)
        assert len(sm) == 1, sm
        t = max(_applied(bench).values())
        cli("rig", "kill", "--dir", d, sm[0])
        others = [b for b in secs if b["name"] != sm[0]]
        wait_until(lambda: _masters(bench, others), 8.0, "a new secondary master", step=0.05)
        cli("rig", "restart", "--dir", d, sm[0])
        wait_until(lambda: _applied_past(bench, t + 1500000), 15.0,
                   "releases after %s died" % sm[0], step=0.05)
        summ = finish(wl, codes=(0, 1))        # writes to the killed master may fail
    finally:
        if wl.poll() is None:
            wl.kill()
    assert summ["completed_ok"] > 120 and summ["reconnects"] >= 1, summ
    assert len(_masters(bench, rigmgr.primaries(bench))) == 1
    assert len(_masters(bench, rigmgr.secondaries(bench))) == 1
    drain(bench, timeout=30.0)
    rep = disaster_failover_verify(bench)
    assert rep.consistent, rep.summary()
    assert rep.lost_acked == 0, rep.summary()


# -- e. pacing, then auto-suspend on a full journal ---------------------------------------------------------
def test_pacing_then_auto_suspend_without_refusing_writes(rig, capsys):
    slots, thr, pmax = 48, 12, 40000
    bench = rig("b", "--pairs", 1, "--vol-blocks", 64, "--journal-slots", slots,
                "--set", "p.pace_threshold=%d" % thr, "--set", "p.pace_max_us=%d" % pmax,
                "--set", "s.peer_timeout_us=30000000")
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    st = status(bench, "p0")
    assert (st["pace_threshold"], st["pace_max_us"], st["pace_us"]) == (thr, pmax, 0)
    cli("rig", "hub", "--dir", d, "cut", "p0", "on")        # the peer link goes down
    # one write at a time, each followed by a status, on the one host port
    log = WorkloadLog(writer=7)
    seen = []
    with HostClient(rigmgr.board(bench, "p0")["host"], timeout=3.0) as c:
        for k in range(1, 121):
            t0 = mono_us()
            e = log.issue(k, 0, 0, (k * 5) % 64, t0)
            rc = c.write(0, e.block, log.payload(k))
            t1 = mono_us()
            assert rc == wire.S_OK, "write %d refused: %s" % (k, status_name(rc))
            log.complete(k, t1)
            st = c.status()
            seen.append((st["journal_depth"], st["pace_us"], t1 - t0, st["copy_state"]))
            if st["copy_state"] == wire.CS_SUSPENDED and k > 60:
                break
    log.close(mono_us())
    records.save_log(bench, log)
    paced = [x for x in seen if x[1]]
    assert paced, seen
    for depth, us, lat, _ in paced:
        assert 0 < us <= pmax and lat >= us, (depth, us, lat)
        # pace_max * (d - threshold) / (slots - threshold), d the depth the write found
        # (a checkpoint marker may have been journaled since)
        assert us in [pmax * (x - thr) // (slots - thr) for x in (depth, depth - 1, depth - 2)], \
            (depth, us)
    assert max(us for _, us, _, _ in paced) >= pmax // 2, paced
    # below the threshold no write waits; the delay grows with the depth
    assert all(us == 0 for depth, us, _, state in seen if depth < thr and state == wire.CS_DUPLEX)
    assert [us for _, us, _, _ in paced[:5]] == sorted(us for _, us, _, _ in paced[:5])
    st = status(bench, "p0")
    assert st["copy_state"] == wire.CS_SUSPENDED and st["suspend_reason"] == wire.R_JOURNAL_FULL, st
    assert st["journal_depth"] == 0 and st["pace_us"] == 0
    out = run_cli(capsys, "status", "--dir", d)
    assert "SUSPENDED" in out and "auto" in out, out
    dirty = st["dirty_blocks"]
    assert dirty == len({e.block for e in log.entries}), dirty
    cli("rig", "hub", "--dir", d, "cut", "p0", "off")
    out = run_cli(capsys, "resume", "--dir", d, "--pair", 0)
    assert "pair 0 (p0 -> s0): %d blocks copied" % dirty in out, out
    drain(bench)
    rep = disaster_failover_verify(bench)
    assert rep.consistent, rep.summary()
    assert rep.lost_acked == 0 and rep.writes_recovered == len(log.entries), rep.summary()


# -- a disaster in the middle of a resync (issue #13) ---------------------------------------------
def test_disaster_in_the_middle_of_a_resume_recovers_every_pair_to_one_cut(rig, capsys):
    """Pair x suspended while both pairs take writes, then resumed; the primary site is lost while
    the copies are on their way. The failover recovers both pairs to the group's image cut (the
    resyncing secondary rolls its copies back), and the checker finds the images consistent with
    nothing acknowledged before that cut lost."""
    bench = rig("r", "--pairs", 2)
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    x = 0
    px, sx = "p%d" % x, "s%d" % x
    run_cli(capsys, "suspend", "--dir", d, "--pair", x)
    wait_until(lambda: status(bench, sx)["copy_state"] == wire.CS_SUSPENDED, 5.0,
               "%s to learn of the suspension" % sx)
    summ = workload(d, "--kind", "random", "--rate", 60, "--duration", 3, "--seed", 5)
    assert summ["failed"] == 0
    marked = status(bench, px)["dirty_blocks"]
    assert marked > 40, marked                       # seconds of copying at 115200 baud
    wl = cli_proc("workload", "--dir", d, "--no-progress", "--json", "--kind", "ims", "--rate", 30,
                  "--duration", 20)
    res = cli_proc("resume", "--dir", d, "--pair", x, "--timeout", 30)
    try:
        # copies are being written on the secondary: its volume is a mix of old and new blocks
        wait_until(lambda: status(bench, sx)["copy_state"] == wire.CS_PENDING
                   and status(bench, sx)["copy_done"] >= 5, 15.0, "%s to take copies" % sx)
        st = status(bench, sx)
        assert st["seq_time_us"] and st["pace_us"] & 1, st   # it keeps the group's image cut
        cli("disaster", "--dir", d)
    finally:
        for p in (res, wl):
            try:
                p.communicate(timeout=30)
            except Exception:
                p.kill()
    out = run_cli(capsys, "failover", "--dir", d)
    rep, stats = rigops.verify(bench)
    assert stats["failed"] == 0
    v = stats["verdict"]
    assert rep.consistent, rep.summary()
    assert v["safety"]["violations"] == 0 and v["safety"]["lost_before_cut"] == 0, v
    assert v["liveness"]["no_image"] == 0 and v["liveness"]["no_image_yet"] == 0, (v, out)
    for i in range(2):
        assert status(bench, "s%d" % i)["copy_state"] == wire.CS_FAILED_OVER
