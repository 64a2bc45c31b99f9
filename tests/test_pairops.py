"""Host side of the pair operations (start copy, suspend/resume, failback), without a
bench: fake boards behind the pairops/client seams, the history that lets verify tell
earlier runs' blocks apart, the role swap in the bench files, the status table."""
import json
import os
import struct

import pytest

from host_tools.ops import procedures as rigops
from host_tools.rig import manager as rigmgr
from host_tools.check import checker
from host_tools.ops import pairs as pairops
from host_tools.check import payload as P
from host_tools.cli import main as arcopy
from host_tools.transport.serial_client import ClientError, HostClient, Reply, decode_status, unpack_dirty_list
from host_tools.check.workload import Workload, WorkloadLog
from firmware import codec
from firmware import wire


# -- a bench directory without processes ----------------------------------------------------------
def fake_bench(tmp_path, pairs=2, nvol=1, vol_blocks=16):
    d = str(tmp_path / "bench")
    os.makedirs(d)
    boards = []
    for i in range(pairs):
        for role, prefix, node, peer in (("primary", "p", i + 1, 129 + i),
                                          ("secondary", "s", 129 + i, i + 1)):
            name = "%s%d" % (prefix, i)
            cfg = os.path.join(d, name + ".json")
            with open(cfg, "w") as f:
                json.dump({"node": node, "peer": peer, "name": name,
                           "role": wire.ROLE_PRIMARY if role == "primary" else wire.ROLE_SECONDARY}, f)
            boards.append({"name": name, "role": role, "node": node, "peer": peer, "pair": i,
                           "config": cfg, "host": os.path.join(d, name + ".host"), "pid": None})
    bench = {"format": "arcopy-rig", "version": 1, "dir": d, "pairs": pairs, "nvol": nvol,
             "vol_blocks": vol_blocks, "boards": boards, "hub": None}
    rigmgr.save(bench)
    return rigmgr.load(d)


def status_dict(**kw):
    """A decoded STATUS with every field zero except those given."""
    vals = {f: 0 for f in codec.STATUS_FIELDS}
    vals.update(role=wire.ROLE_PRIMARY, node=1)
    vals.update(kw)
    body = bytearray(struct.calcsize(wire.P_STATUS_BODY))
    codec.pack_status_body(body, 0, *[vals[f] for f in codec.STATUS_FIELDS])
    return decode_status(bytes(body))


class FakeBoard:
    """Just enough of a board's host-command behaviour for the pair operations."""

    def __init__(self, name, role, vol_blocks):
        self.name = name
        self.role = role
        self.state = wire.CS_DUPLEX
        self.vol_blocks = vol_blocks
        self.dirty = set()
        self.journal = set()          # blocks of records still in the journal
        self.applied = (3, 3000)
        self.copy_done = self.copy_total = 0
        self.polls_to_duplex = None   # PENDING -> DUPLEX after this many status polls
        self.reason = 0

    def status(self):
        if self.polls_to_duplex is not None:
            if self.polls_to_duplex == 0:
                self.state = wire.CS_DUPLEX
                self.copy_done = self.copy_total
                self.polls_to_duplex = None
            else:
                self.polls_to_duplex -= 1
                self.copy_done = min(self.copy_total, self.copy_done + 2)
        return status_dict(role=self.role, copy_state=self.state, applied_n=self.applied[0],
                           applied_t=self.applied[1], dirty_blocks=len(self.dirty),
                           copy_done=self.copy_done, copy_total=self.copy_total,
                           suspend_reason=self.reason)


class FakeClient:
    def __init__(self, rig, board):
        self.rig = rig
        self.b = board
        self.path = board.name

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass

    def close(self):
        pass

    def status(self, timeout=None, retries=None):
        return self.b.status()

    def command(self, cmd, arg=0, arg2=0, timeout=None):
        self.rig.log.append((self.b.name, cmd, arg, arg2))
        return self.rig.handle(self.b, cmd, arg, arg2)

    def dirty_list(self, vol, vol_blocks, timeout=None):
        self.rig.log.append((self.b.name, wire.C_DIRTY_LIST, vol, 0))
        return sorted(self.b.dirty)


class FakeRig:
    def __init__(self, bench, monkeypatch):
        self.bench = bench
        self.log = []
        self.boards = {b["name"]: FakeBoard(b["name"], wire.ROLE_PRIMARY if b["role"] == "primary"
                                            else wire.ROLE_SECONDARY, bench["vol_blocks"])
                       for b in bench["boards"]}
        for b in self.boards.values():
            if b.role == wire.ROLE_SECONDARY:
                b.applied = (7, 7000)
        monkeypatch.setattr(pairops, "_client",
                            lambda b, timeout=2.0: FakeClient(self, self.boards[b["name"]]))
        monkeypatch.setattr(pairops, "_status", lambda b, timeout=0.5: self.boards[b["name"]].status())
        monkeypatch.setattr(pairops.time, "sleep", lambda s: None)

    def peer(self, fb):
        for n, other in self.boards.items():
            if other is not fb and n[1:] == fb.name[1:]:
                return other

    def join(self, fb):
        """fb (primary) goes PENDING, copies its marked blocks, joins; its peer applies."""
        fb.state = wire.CS_PENDING
        fb.copy_total = len(fb.dirty)
        fb.copy_done = 0
        fb.polls_to_duplex = 3
        fb.dirty = set()
        peer = self.peer(fb)
        peer.state = wire.CS_PENDING
        peer.polls_to_duplex = 4
        peer.applied = (peer.applied[0] + 1, peer.applied[1] + 100)

    def handle(self, fb, cmd, arg, arg2):
        if cmd == wire.C_START_COPY:
            if arg == 1:
                fb.dirty = set(range(fb.vol_blocks))
            self.join(fb)
            return wire.S_OK
        if cmd == wire.C_SUSPEND:
            if fb.role != wire.ROLE_PRIMARY:
                return wire.S_BAD_STATE
            fb.state = wire.CS_SUSPENDED
            fb.reason = wire.R_OPERATOR
            fb.dirty |= fb.journal
            fb.journal = set()
            return wire.S_OK
        if cmd == wire.C_RESUME:
            if fb.state != wire.CS_SUSPENDED:
                return wire.S_BAD_STATE
            self.join(fb)
            return wire.S_OK
        if cmd == wire.C_FAILBACK:
            if arg == wire.ROLE_SECONDARY and fb.role == wire.ROLE_PRIMARY:
                fb.role = wire.ROLE_SECONDARY
                fb.dirty |= fb.journal
                fb.journal = set()
                fb.state = wire.CS_SIMPLEX
                fb.applied = (0, 0)
                return wire.S_OK
            if arg == wire.ROLE_PRIMARY and fb.state == wire.CS_FAILED_OVER:
                fb.role = wire.ROLE_PRIMARY
                self.join(fb)
                return wire.S_OK
            return wire.S_BAD_STATE
        if cmd == wire.C_MARK_DIRTY:
            if arg2 >= fb.vol_blocks:
                return wire.S_OUT_OF_RANGE
            fb.dirty.add(arg2)
            return wire.S_OK
        return wire.S_BAD_COMMAND


# -- client: C_DIRTY_LIST ---------------------------------------------------------------------------
def _dirty_body(blocks, nxt):
    return struct.pack(wire.P_DIRTY_HEAD, len(blocks), nxt) + struct.pack("<%dI" % len(blocks), *blocks)


def test_unpack_dirty_list_checks_the_length():
    assert unpack_dirty_list(_dirty_body([3, 9], 16)) == (2, 16, [3, 9])
    assert unpack_dirty_list(_dirty_body([], 16)) == (0, 16, [])
    with pytest.raises(ClientError):
        unpack_dirty_list(_dirty_body([3, 9], 16)[:-1])
    with pytest.raises(ClientError):
        unpack_dirty_list(b"\x01")


def test_dirty_list_pages_until_the_end_of_the_volume(monkeypatch):
    marked = list(range(0, 250, 1))
    asked = []

    def command_reply(self, cmd, arg=0, arg2=0, timeout=None, idempotent=False):
        assert cmd == wire.C_DIRTY_LIST and idempotent
        asked.append((arg, arg2))
        page = [b for b in marked if b >= arg2][:wire.DIRTY_MAX]
        nxt = page[-1] + 1 if len(page) == wire.DIRTY_MAX else 300
        return Reply(wire.S_OK, _dirty_body(page, nxt), wire.T_H_REPLY, 1, False)
    monkeypatch.setattr(HostClient, "command_reply", command_reply)
    c = HostClient.__new__(HostClient)
    c.path = "fake"
    assert c.dirty_list(2, 300) == marked
    assert asked == [(2, 0), (2, 100), (2, 200)]


def test_dirty_list_refusal_and_no_progress_are_errors(monkeypatch):
    c = HostClient.__new__(HostClient)
    c.path = "fake"
    monkeypatch.setattr(HostClient, "command_reply", lambda self, *a, **k: Reply(
        wire.S_UNKNOWN_VOLUME, b"", wire.T_H_REPLY, 1, False))
    with pytest.raises(ClientError, match="UNKNOWN_VOLUME"):
        c.dirty_list(5, 16)
    monkeypatch.setattr(HostClient, "command_reply", lambda self, *a, **k: Reply(
        wire.S_OK, _dirty_body([], 0), wire.T_H_REPLY, 1, False))
    with pytest.raises(ClientError, match="next block"):
        c.dirty_list(0, 16)


# -- progress ------------------------------------------------------------------------------------------
def test_copy_progress_rate_from_successive_polls(monkeypatch):
    t = [100.0]
    p = pairops.CopyProgress("resync", enabled=False, clock=lambda: t[0])
    p.update(0, 40)
    assert p.rate is None and p.rate_text() == "- blocks/s"
    t[0] += 1.0
    p.update(20, 40)
    assert p.rate == pytest.approx(20.0)
    t[0] += 1.0
    p.update(30, 40)
    assert p.rate == pytest.approx(15.0)          # smoothed: (20 + 10) / 2
    t[0] += 2.0
    p.update(40, 40)
    assert (p.done, p.total) == (40, 40)
    assert p.final_line() == "resync: 40 of 40 blocks copied in 4.0 s (10.0 blocks/s)"


def test_copy_progress_bar_only_on_a_terminal_outside_ci(monkeypatch):
    class Tty:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty
    monkeypatch.delenv("CI", raising=False)
    assert pairops.progress_enabled(Tty(True))
    assert not pairops.progress_enabled(Tty(False))
    monkeypatch.setenv("CI", "1")
    assert not pairops.progress_enabled(Tty(True))


# -- wait, start copy, suspend/resume, failback on fake boards ---------------------------------------
def test_start_copy_waits_for_duplex_and_reports_blocks_copied(tmp_path, monkeypatch):
    bench = fake_bench(tmp_path)
    rig = FakeRig(bench, monkeypatch)
    for b in rig.boards.values():
        b.state = wire.CS_SIMPLEX
        b.applied = (0, 0)
    rig.boards["p0"].dirty = {1, 2, 3}
    rig.boards["p1"].dirty = {5}
    prog = pairops.CopyProgress(enabled=False)
    res, copied = pairops.start_copy(bench, progress=prog, timeout=5)
    assert res == {"p0": wire.S_OK, "p1": wire.S_OK}
    assert {i: c["copied"] for i, c in copied.items()} == {0: 3, 1: 1}
    assert (prog.done, prog.total) == (4, 4)
    rig2 = FakeRig(bench, monkeypatch)
    for b in rig2.boards.values():
        b.state = wire.CS_SIMPLEX
        b.applied = (0, 0)
    _, copied = pairops.start_copy(bench, full=True, timeout=5)
    assert [c["copied"] for c in copied.values()] == [16, 16]
    assert (("p0", wire.C_START_COPY, 1, 0) in rig2.log)


def test_wait_copy_times_out_with_the_table(tmp_path, monkeypatch):
    bench = fake_bench(tmp_path, pairs=1)
    rig = FakeRig(bench, monkeypatch)
    rig.boards["s0"].state = wire.CS_SUSPENDED
    monkeypatch.setattr(rigops, "collect_status", lambda bench: {
        n: b.status() for n, b in rig.boards.items()})
    with pytest.raises(ClientError, match="not duplex"):
        pairops.wait_copy(bench, [0], timeout=0.0)


def test_resume_waits_for_a_checkpoint_applied_after_joining(tmp_path, monkeypatch):
    bench = fake_bench(tmp_path)
    rig = FakeRig(bench, monkeypatch)
    assert pairops.suspend(bench, [1]) == {"p1": wire.S_OK}
    p1 = rig.boards["p1"]
    p1.dirty |= {4, 6, 8, 10}
    # the secondary shows duplex (joined) but applies nothing more: no return
    orig = rig.join

    def join_no_apply(fb):
        orig(fb)
        peer = rig.peer(fb)
        peer.applied = (peer.applied[0] - 1, peer.applied[1] - 100)
    rig.join = join_no_apply
    monkeypatch.setattr(rigops, "collect_status", lambda bench: {})
    with pytest.raises(ClientError):
        pairops.resume(bench, [1], timeout=0.05)
    rig.boards["p1"].state = wire.CS_SUSPENDED
    rig.boards["p1"].dirty = {4, 6, 8, 10}
    rig.join = orig
    polls = []
    st = rig.boards["s1"].status

    def s1_status():
        polls.append(1)
        if len(polls) == 12:          # a checkpoint applied well after joining
            rig.boards["s1"].applied = (99, 99000)
        return st()
    rig.boards["s1"].status = s1_status
    res, copied = pairops.resume(bench, [1], timeout=5)
    assert res == {"p1": wire.S_OK} and copied[1]["copied"] == 4
    assert rig.boards["s1"].applied == (99, 99000)


def test_select_pairs():
    bench = {"pairs": 3}
    assert pairops.select_pairs(bench, 1, False) == [1]
    assert pairops.select_pairs(bench, None, True) == [0, 1, 2]
    for bad in ((None, False), (1, True), (3, False), (-1, False)):
        with pytest.raises(ClientError):
            pairops.select_pairs(bench, *bad)


def test_suspend_and_resume_need_exactly_one_of_pair_and_all(tmp_path, capsys):
    for cmd in ("suspend", "resume"):
        with pytest.raises(SystemExit):
            arcopy([cmd, "--dir", str(tmp_path)])
        with pytest.raises(SystemExit):
            arcopy([cmd, "--dir", str(tmp_path), "--pair", "0", "--all"])


def test_failback_order_merge_and_persistent_role_swap(tmp_path, monkeypatch):
    bench = fake_bench(tmp_path)
    rig = FakeRig(bench, monkeypatch)
    for i in range(2):
        rig.boards["s%d" % i].state = wire.CS_FAILED_OVER
    rig.boards["s0"].dirty = {1, 2}          # host writes after failover
    rig.boards["p0"].journal = {2, 3}        # records the old primary never had acknowledged
    rig.boards["p0"].dirty = {9}             # written at the old primary beyond the cut
    rig.boards["s1"].dirty = set()
    res = pairops.failback(bench, timeout=5)
    assert res["ok"], res
    p0 = res["pairs"][0]
    assert p0["merged"] == 3 and p0["to_copy"] == 4 and p0["dirty"] == {0: [1, 2, 3, 9]}
    assert p0["copied"] == 4 and res["pairs"][1]["copied"] == 0
    # order: FAILBACK(2) to every old primary, merge, then FAILBACK(1) to every old secondary
    kinds = [(n, c, a) for n, c, a, _ in rig.log]
    fb2 = [k for k, x in enumerate(kinds) if x[1] == wire.C_FAILBACK and x[2] == wire.ROLE_SECONDARY]
    marks = [k for k, x in enumerate(kinds) if x[1] == wire.C_MARK_DIRTY]
    fb1 = [k for k, x in enumerate(kinds) if x[1] == wire.C_FAILBACK and x[2] == wire.ROLE_PRIMARY]
    assert len(fb2) == 2 and len(fb1) == 2 and len(marks) == 3
    assert max(fb2) < min(marks) and max(marks) < min(fb1)
    assert {kinds[k][0] for k in marks} == {"s0"}
    # the bench follows, in the bench file and the board configs
    b2 = rigmgr.load(bench["dir"])
    assert [b["name"] for b in rigmgr.primaries(b2)] == ["s0", "s1"]
    assert [b["name"] for b in rigmgr.secondaries(b2)] == ["p0", "p1"]
    assert [x["name"] for x in rigmgr.pair_boards(b2, 1)] == ["s1", "p1"]
    with open(rigmgr.board(b2, "p0")["config"]) as f:
        assert json.load(f)["role"] == wire.ROLE_SECONDARY
    with open(rigmgr.board(b2, "s0")["config"]) as f:
        assert json.load(f)["role"] == wire.ROLE_PRIMARY
    # a second failback in the other direction swaps back
    rig2 = FakeRig(b2, monkeypatch)
    for n in ("p0", "p1"):
        rig2.boards[n].state = wire.CS_FAILED_OVER
    res = pairops.failback(b2, timeout=5)
    assert res["ok"]
    b3 = rigmgr.load(bench["dir"])
    assert [b["name"] for b in rigmgr.primaries(b3)] == ["p0", "p1"]
    assert b3["failbacks"] == 2


def test_failback_refuses_without_a_failover_or_a_dead_old_primary(tmp_path, monkeypatch):
    bench = fake_bench(tmp_path, pairs=1)
    rig = FakeRig(bench, monkeypatch)
    with pytest.raises(ClientError, match="not FAILED_OVER"):
        pairops.failback(bench)
    rig.boards["s0"].state = wire.CS_FAILED_OVER
    monkeypatch.setattr(pairops, "_status", lambda b, timeout=0.5: None if b["name"] == "p0"
                        else rig.boards[b["name"]].status())
    with pytest.raises(ClientError, match="rig restart p0"):
        pairops.failback(bench)
    assert rig.log == []                                 # nothing was changed
    assert rigmgr.pair_boards(rigmgr.load(bench["dir"]), 0)[0]["name"] == "p0"


# -- status table ------------------------------------------------------------------------------------
def test_status_table_shows_copy_progress_dirty_pacing_and_reason(tmp_path):
    bench = fake_bench(tmp_path)
    st = {"p0": status_dict(copy_state=wire.CS_PENDING, copy_done=12, copy_total=40,
                            dirty_blocks=28, pace_us=1500, pace_threshold=256, pace_max_us=50000),
          "s0": status_dict(role=wire.ROLE_SECONDARY, copy_state=wire.CS_PENDING),
          "p1": status_dict(copy_state=wire.CS_SUSPENDED, dirty_blocks=7,
                            suspend_reason=wire.R_JOURNAL_FULL, pace_threshold=256),
          "s1": status_dict(role=wire.ROLE_SECONDARY, copy_state=wire.CS_SUSPENDED,
                            suspend_reason=wire.R_JOURNAL_FULL)}
    rows = rigops.pair_rows(bench, st)
    assert rows[0]["copy"] == "12/40" and rows[0]["p_dirty"] == 28 and rows[0]["pace_us"] == 1500
    assert rows[0]["pace_threshold"] == 256 and rows[0]["pace_max_us"] == 50000
    assert rows[1]["copy"] is None and rows[1]["reason"] == "auto"
    text = rigops.format_table(rows)
    head, r0, r1 = text.splitlines()
    for col in ("copy", "Pdirty", "pace us", "pace>", "why", "P > S"):
        assert col in head
    assert "PENDING" in r0 and "12/40" in r0 and "1500" in r0 and "p0>s0" in r0
    assert "SUSPENDED" in r1 and r1.rstrip().endswith("auto")
    st["p1"] = None
    assert rigops.pair_rows(bench, st)[1]["reason"] == "auto"    # the secondary says why
    # after a failback the rows follow the roles
    rigmgr.swap_roles(bench, [0])
    rows = rigops.pair_rows(rigmgr.load(bench["dir"]), {"s0": st["p0"], "p0": st["s0"]})
    assert rows[0]["boards"] == "s0>p0" and rows[0]["copy"] == "12/40"


# -- history: earlier runs' blocks on the volumes -------------------------------------------------
def _run_log(blocks, writer=1, start=1000):
    log = WorkloadLog(writer=writer)
    t = start
    for k, (p, b) in enumerate(blocks):
        log.issue(k + 1, p, 0, b, t)
        log.complete(k + 1, t + 10)
        t += 100
    log.close(t)
    return log


def _images_from(pairs, nblk, *logs_and_ids):
    images = {p: {0: rigops._Volume(nblk)} for p in range(pairs)}
    for log, ids in logs_and_ids:
        for i in ids:
            e = log.get(i)
            dict.__setitem__(images[e.pair][0], e.block, log.payload(i))
    return images


def test_verify_sets_earlier_runs_blocks_aside(tmp_path):
    bench = fake_bench(tmp_path, pairs=2, vol_blocks=8)
    old = _run_log([(0, 1), (0, 2), (1, 3)], start=1000)
    new = _run_log([(0, 2), (1, 4), (1, 5)], start=9000)
    rigops.save_log(bench, old)
    rigops.save_log(bench, new)                    # folds `old` into the history
    hist = rigops.load_history(bench)
    assert set(hist) == {(0, 0, 1), (0, 0, 2), (1, 0, 3)}
    assert rigops.load_log(bench).to_dict()["writes"][0]["issue_us"] == 9000
    # without the history the old blocks look like stray payloads (same writer, ids reused)
    images = _images_from(2, 8, (old, [1, 3]), (new, [1, 2, 3]))
    assert not checker.check(new, images).consistent
    images = _images_from(2, 8, (old, [1, 3]), (new, [1, 2, 3]))
    assert rigops.set_aside_history(images, new, hist) == 2
    rep = checker.check(new, images)
    assert rep.consistent and rep.writes_recovered == 3, rep.summary()
    # an old block where this run's acknowledged write should be: that write is lost
    images = _images_from(2, 8, (old, [1, 2, 3]), (new, [2, 3]))
    assert rigops.set_aside_history(images, new, hist) == 3
    rep = checker.check(new, images)
    assert rep.lost_acked == 1 and rep.violations_total == 2, rep.summary()
    # a payload in no log stays stray
    stray = P.encode(7, 1, 1, 0, 6)
    images = _images_from(2, 8, (new, [1, 2, 3]))
    dict.__setitem__(images[1][0], 6, stray)
    assert rigops.set_aside_history(images, new, hist) == 0
    assert checker.check(new, images).corrupt


def test_history_is_cleared_by_rig_up_cleanup_list():
    import inspect
    assert '"history.json"' in inspect.getsource(rigmgr.up)


# -- workload: abandoning writes whose board died -----------------------------------------------------
def test_abandoned_write_stays_in_flight_and_its_stream_goes_on():
    wl = Workload("random", pairs=2, blocks=64, rate=0, duration_us=10 ** 6, concurrency=1, seed=3)
    wl.start(0)
    first = wl.poll(0)
    assert len(first) == 1
    wl.abandon(first[0].id)
    nxt = wl.poll(10)
    assert len(nxt) == 1 and nxt[0].dep is None              # a new chain
    assert wl.log.get(first[0].id).complete_us is None        # in flight in the log
    for t in range(20, 5000, 10):
        for r in wl.poll(t):
            assert (r.pair, r.vol, r.block) != (first[0].pair, first[0].vol, first[0].block)
            wl.complete(r.id, t + 5)
    with pytest.raises(KeyError):
        wl.abandon(first[0].id)
    assert wl.abandoned == 1
