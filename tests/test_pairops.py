"""Host side of the pair operations (start copy, suspend/resume, failback), without a
rig: the operator procedures of host_tools/ops/ over a fake Transport whose boards answer
host requests, the history that lets verify tell earlier runs' blocks apart, the role swap
in the rig files, the status table."""
import json
import os
import struct

import pytest

from host_tools import ops
from host_tools import transport
from host_tools.ops.errors import OpError
from host_tools.rig import manager as rigmgr
from host_tools.rig import records as rigops
from host_tools.rig import session
from host_tools.check import checker
from host_tools.check import payload as P
from host_tools.cli import main as arcopy
from host_tools.transport import Reply, Transport
from host_tools.transport import messages
from host_tools.transport.messages import decode_status
from host_tools.transport.serial_client import ClientError, HostClient, unpack_dirty_list
from host_tools.check.workload import Workload, WorkloadLog
from firmware import codec
from firmware import wire
from protocol import hostcodec


# -- a rig directory without processes ----------------------------------------------------------
def fake_rig_dir(tmp_path, pairs=2, nvol=1, vol_blocks=16):
    d = str(tmp_path / "rig")
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
    rigd = {"format": "arcopy-rig", "version": 1, "dir": d, "pairs": pairs, "nvol": nvol,
             "vol_blocks": vol_blocks, "boards": boards, "hub": None}
    rigmgr.save(rigd)
    return rigmgr.load(d)


def status_body(**kw):
    """A STATUS reply body with every field zero except those given."""
    vals = {f: 0 for f in hostcodec.STATUS_FIELDS}
    vals.update(role=wire.ROLE_PRIMARY, node=1)
    vals.update(kw)
    body = bytearray(struct.calcsize(wire.P_STATUS_BODY))
    codec.pack_status_body(body, 0, *[vals[f] for f in hostcodec.STATUS_FIELDS])
    return bytes(body)


def status_dict(**kw):
    """A decoded STATUS with every field zero except those given."""
    return decode_status(status_body(**kw))


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
        return decode_status(self.status_body())

    def status_body(self):
        if self.polls_to_duplex is not None:
            if self.polls_to_duplex == 0:
                self.state = wire.CS_DUPLEX
                self.copy_done = self.copy_total
                self.polls_to_duplex = None
            else:
                self.polls_to_duplex -= 1
                self.copy_done = min(self.copy_total, self.copy_done + 2)
        return status_body(role=self.role, copy_state=self.state, applied_n=self.applied[0],
                           applied_t=self.applied[1], dirty_blocks=len(self.dirty),
                           copy_done=self.copy_done, copy_total=self.copy_total,
                           suspend_reason=self.reason)


class FakeTransport(Transport):
    """host_tools.transport.Transport to the FakeRig's boards: STATUS, host commands and
    C_DIRTY_LIST answered as a board would; time passes only when asked (sleep) and a
    little at every look at the clock, so the procedures' timeouts still run out."""

    def __init__(self, rig):
        self.rig = rig
        self.t = 0.0
        self.silent = set()          # boards that do not answer

    def boards(self):
        return sorted(self.rig.boards)

    def now(self):
        self.t += 0.001
        return self.t

    def sleep(self, seconds):
        self.t += seconds

    def request(self, board, mtype, payload=b"", timeout=None, idempotent=False):
        if board in self.silent:
            self.t += timeout or 0.5
            raise transport.Timeout("%s: silent" % board)
        fb = self.rig.boards[board]
        if mtype == wire.T_H_STATUS:
            return Reply(wire.S_OK, fb.status_body(), wire.T_H_REPLY, 1, False)
        assert mtype == wire.T_H_COMMAND
        cmd, arg, arg2 = struct.unpack(wire.P_H_COMMAND, payload)
        if cmd == wire.C_DIRTY_LIST:
            if arg2 == 0:
                self.rig.log.append((board, cmd, arg, 0))
            page = sorted(b for b in fb.dirty if b >= arg2)[:wire.DIRTY_MAX]
            nxt = page[-1] + 1 if len(page) == wire.DIRTY_MAX else fb.vol_blocks
            return Reply(wire.S_OK, _dirty_body(page, nxt), wire.T_H_REPLY, 1, False)
        self.rig.log.append((board, cmd, arg, arg2))
        return Reply(self.rig.handle(fb, cmd, arg, arg2), b"", wire.T_H_REPLY, 1, False)


class FakeRig:
    def __init__(self, rigd, monkeypatch):
        self.rigd = rigd
        self.log = []
        self.boards = {b["name"]: FakeBoard(b["name"], wire.ROLE_PRIMARY if b["role"] == "primary"
                                            else wire.ROLE_SECONDARY, rigd["vol_blocks"])
                       for b in rigd["boards"]}
        for b in self.boards.values():
            if b.role == wire.ROLE_SECONDARY:
                b.applied = (7, 7000)
        self.t = FakeTransport(self)

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


class PagingTransport(Transport):
    """A board that answers C_DIRTY_LIST with `reply(arg, arg2)`."""

    def __init__(self, reply):
        self.reply = reply
        self.asked = []

    def request(self, board, mtype, payload=b"", timeout=None, idempotent=False):
        cmd, arg, arg2 = struct.unpack(wire.P_H_COMMAND, payload)
        assert mtype == wire.T_H_COMMAND and cmd == wire.C_DIRTY_LIST and idempotent
        self.asked.append((arg, arg2))
        return self.reply(arg, arg2)


def test_dirty_list_pages_until_the_end_of_the_volume():
    marked = list(range(0, 250, 1))

    def page(arg, arg2):
        blocks = [b for b in marked if b >= arg2][:wire.DIRTY_MAX]
        nxt = blocks[-1] + 1 if len(blocks) == wire.DIRTY_MAX else 300
        return Reply(wire.S_OK, _dirty_body(blocks, nxt), wire.T_H_REPLY, 1, False)
    t = PagingTransport(page)
    assert messages.dirty_list(t, "fake", 2, 300) == marked
    assert t.asked == [(2, 0), (2, 100), (2, 200)]


def test_dirty_list_refusal_and_no_progress_are_errors(monkeypatch):
    t = PagingTransport(lambda a, a2: Reply(wire.S_UNKNOWN_VOLUME, b"", wire.T_H_REPLY, 1, False))
    with pytest.raises(messages.Refused, match="UNKNOWN_VOLUME"):
        messages.dirty_list(t, "fake", 5, 16)
    t = PagingTransport(lambda a, a2: Reply(wire.S_OK, _dirty_body([], 0), wire.T_H_REPLY, 1, False))
    with pytest.raises(messages.Refused, match="next block"):
        messages.dirty_list(t, "fake", 0, 16)
    # the one-port client raises its ClientError for the same refusal
    c = HostClient.__new__(HostClient)
    c.path = "fake"
    monkeypatch.setattr(HostClient, "request", lambda self, *a, **k: Reply(
        wire.S_UNKNOWN_VOLUME, b"", wire.T_H_REPLY, 1, False))
    with pytest.raises(ClientError, match="UNKNOWN_VOLUME"):
        c.dirty_list(5, 16)


# -- progress ------------------------------------------------------------------------------------------
def test_copy_progress_rate_from_successive_polls(monkeypatch):
    t = [100.0]
    p = ops.copy.CopyProgress("resync", enabled=False, clock=lambda: t[0])
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
    assert ops.copy.progress_enabled(Tty(True))
    assert not ops.copy.progress_enabled(Tty(False))
    monkeypatch.setenv("CI", "1")
    assert not ops.copy.progress_enabled(Tty(True))


# -- wait, start copy, suspend/resume, failback on fake boards ---------------------------------------
def test_start_copy_waits_for_duplex_and_reports_blocks_copied(tmp_path, monkeypatch):
    rigd = fake_rig_dir(tmp_path)
    rig = FakeRig(rigd, monkeypatch)
    for b in rig.boards.values():
        b.state = wire.CS_SIMPLEX
        b.applied = (0, 0)
    rig.boards["p0"].dirty = {1, 2, 3}
    rig.boards["p1"].dirty = {5}
    prog = ops.copy.CopyProgress(enabled=False)
    res, copied = ops.copy.start_copy(rig.t, session.pairs(rigd), progress=prog, timeout=5)
    assert res == {"p0": wire.S_OK, "p1": wire.S_OK}
    assert {i: c["copied"] for i, c in copied.items()} == {0: 3, 1: 1}
    assert (prog.done, prog.total) == (4, 4)
    rig2 = FakeRig(rigd, monkeypatch)
    for b in rig2.boards.values():
        b.state = wire.CS_SIMPLEX
        b.applied = (0, 0)
    _, copied = ops.copy.start_copy(rig2.t, session.pairs(rigd), full=True, timeout=5)
    assert [c["copied"] for c in copied.values()] == [16, 16]
    assert (("p0", wire.C_START_COPY, 1, 0) in rig2.log)


def test_wait_copy_times_out_with_the_table(tmp_path, monkeypatch):
    rigd = fake_rig_dir(tmp_path, pairs=1)
    rig = FakeRig(rigd, monkeypatch)
    rig.boards["s0"].state = wire.CS_SUSPENDED
    with pytest.raises(OpError, match="not duplex") as e:
        ops.copy.wait_copy(rig.t, session.pairs(rigd, [0]), timeout=0.0)
    assert "SUSPENDED" in str(e.value) and "p0>s0" in str(e.value)      # the status table


def test_resume_waits_for_a_checkpoint_applied_after_joining(tmp_path, monkeypatch):
    rigd = fake_rig_dir(tmp_path)
    rig = FakeRig(rigd, monkeypatch)
    assert ops.pairs.suspend(rig.t, session.pairs(rigd, [1])) == {"p1": wire.S_OK}
    p1 = rig.boards["p1"]
    p1.dirty |= {4, 6, 8, 10}
    # the secondary shows duplex (joined) but applies nothing more: no return
    orig = rig.join

    def join_no_apply(fb):
        orig(fb)
        peer = rig.peer(fb)
        peer.applied = (peer.applied[0] - 1, peer.applied[1] - 100)
    rig.join = join_no_apply
    with pytest.raises(OpError):
        ops.pairs.resume(rig.t, session.pairs(rigd, [1]), timeout=0.05)
    rig.boards["p1"].state = wire.CS_SUSPENDED
    rig.boards["p1"].dirty = {4, 6, 8, 10}
    rig.join = orig
    polls = []
    st = rig.boards["s1"].status_body

    def s1_status():
        polls.append(1)
        if len(polls) == 12:          # a checkpoint applied well after joining
            rig.boards["s1"].applied = (99, 99000)
        return st()
    rig.boards["s1"].status_body = s1_status
    res, copied = ops.pairs.resume(rig.t, session.pairs(rigd, [1]), timeout=5)
    assert res == {"p1": wire.S_OK} and copied[1]["copied"] == 4
    assert rig.boards["s1"].applied == (99, 99000)


def test_select_pairs():
    assert ops.pairs.select_pairs(3, 1, False) == [1]
    assert ops.pairs.select_pairs(3, None, True) == [0, 1, 2]
    for bad in ((None, False), (1, True), (3, False), (-1, False)):
        with pytest.raises(OpError):
            ops.pairs.select_pairs(3, *bad)


def test_suspend_and_resume_need_exactly_one_of_pair_and_all(tmp_path, capsys):
    for cmd in ("suspend", "resume"):
        with pytest.raises(SystemExit):
            arcopy([cmd, "--dir", str(tmp_path)])
        with pytest.raises(SystemExit):
            arcopy([cmd, "--dir", str(tmp_path), "--pair", "0", "--all"])


def test_failback_order_merge_and_persistent_role_swap(tmp_path, monkeypatch):
    rigd = fake_rig_dir(tmp_path)
    rig = FakeRig(rigd, monkeypatch)
    for i in range(2):
        rig.boards["s%d" % i].state = wire.CS_FAILED_OVER
    rig.boards["s0"].dirty = {1, 2}          # host writes after failover
    rig.boards["p0"].journal = {2, 3}        # records the old primary never had acknowledged
    rig.boards["p0"].dirty = {9}             # written at the old primary beyond the cut
    rig.boards["s1"].dirty = set()
    # p0's marks are writes taken after the failover: listed, and refused unless forced
    with pytest.raises(ops.failback.WrittenAfterFailover, match=r"p0: 1\).*--force") as e:
        failback(rig, rigd)
    assert e.value.written == {"p0": {0: [9]}}
    assert [x for x in rig.log if x[1] != wire.C_DIRTY_LIST] == []        # nothing was changed
    del rig.log[:]
    res = failback(rig, rigd, force=True)
    assert res["ok"], res
    assert res["written_after_failover"] == {"p0": {0: [9]}}
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
    # the rigd follows, in the rigd file and the board configs
    b2 = rigmgr.load(rigd["dir"])
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
    res = failback(rig2, b2)
    assert res["ok"]
    b3 = rigmgr.load(rigd["dir"])
    assert [b["name"] for b in rigmgr.primaries(b3)] == ["p0", "p1"]
    assert b3["failbacks"] == 2


def failback(rig, rigd, timeout=5, force=False):
    """ops.failback.failback on the fake rig, the roles recorded in the rig file as `arcopy
    failback` records them."""
    return ops.failback.failback(rig.t, session.pairs(rigd), rigd["nvol"], rigd["vol_blocks"],
                                 timeout=timeout, force=force,
                                 on_swapped=lambda done: rigmgr.swap_roles(rigd, done))


def test_failback_refuses_without_a_failover_or_a_dead_old_primary(tmp_path, monkeypatch):
    rigd = fake_rig_dir(tmp_path, pairs=1)
    rig = FakeRig(rigd, monkeypatch)
    with pytest.raises(OpError, match="not FAILED_OVER"):
        failback(rig, rigd)
    rig.boards["s0"].state = wire.CS_FAILED_OVER
    rig.t.silent.add("p0")
    with pytest.raises(OpError, match="rig restart p0"):
        failback(rig, rigd)
    assert rig.log == []                                 # nothing was changed
    assert rigmgr.pair_boards(rigmgr.load(rigd["dir"]), 0)[0]["name"] == "p0"


# -- status table ------------------------------------------------------------------------------------
def test_status_table_shows_copy_progress_dirty_pacing_and_reason(tmp_path):
    rigd = fake_rig_dir(tmp_path)
    st = {"p0": status_dict(copy_state=wire.CS_PENDING, copy_done=12, copy_total=40,
                            dirty_blocks=28, pace_us=1500, pace_threshold=256, pace_max_us=50000),
          "s0": status_dict(role=wire.ROLE_SECONDARY, copy_state=wire.CS_PENDING),
          "p1": status_dict(copy_state=wire.CS_SUSPENDED, dirty_blocks=7,
                            suspend_reason=wire.R_JOURNAL_FULL, pace_threshold=256),
          "s1": status_dict(role=wire.ROLE_SECONDARY, copy_state=wire.CS_SUSPENDED,
                            suspend_reason=wire.R_JOURNAL_FULL)}
    rows = session.pair_rows(rigd, st)
    assert rows[0]["copy"] == "12/40" and rows[0]["p_dirty"] == 28 and rows[0]["pace_us"] == 1500
    assert rows[0]["pace_threshold"] == 256 and rows[0]["pace_max_us"] == 50000
    assert rows[1]["copy"] is None and rows[1]["reason"] == "auto"
    text = ops.status.format_table(rows)
    head, r0, r1 = text.splitlines()
    for col in ("copy", "Pdirty", "pace us", "pace>", "why", "P > S"):
        assert col in head
    assert "PENDING" in r0 and "12/40" in r0 and "1500" in r0 and "p0>s0" in r0
    assert "SUSPENDED" in r1 and r1.rstrip().endswith("auto")
    st["p1"] = None
    assert session.pair_rows(rigd, st)[1]["reason"] == "auto"    # the secondary says why
    # after a failback the rows follow the roles
    rigmgr.swap_roles(rigd, [0])
    rows = session.pair_rows(rigmgr.load(rigd["dir"]), {"s0": st["p0"], "p0": st["s0"]})
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
    images = {p: {0: ops.verify.Volume(nblk)} for p in range(pairs)}
    for log, ids in logs_and_ids:
        for i in ids:
            e = log.get(i)
            dict.__setitem__(images[e.pair][0], e.block, log.payload(i))
    return images


def test_verify_sets_earlier_runs_blocks_aside(tmp_path):
    rigd = fake_rig_dir(tmp_path, pairs=2, vol_blocks=8)
    old = _run_log([(0, 1), (0, 2), (1, 3)], start=1000)
    new = _run_log([(0, 2), (1, 4), (1, 5)], start=9000)
    rigops.save_log(rigd, old)
    rigops.save_log(rigd, new)                    # folds `old` into the history
    hist = rigops.load_history(rigd)
    assert set(hist) == {(0, 0, 1), (0, 0, 2), (1, 0, 3)}
    assert rigops.load_log(rigd).to_dict()["writes"][0]["issue_us"] == 9000
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
