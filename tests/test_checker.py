import json
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings, strategies as st

from host_tools.check import payload as P
from host_tools.check.checker import check
from host_tools.check.workload import KINDS, Workload, WorkloadLog, drive_virtual


# ---- helpers ---------------------------------------------------------------------
def blank(pairs=2, vols=1):
    return {p: {v: {} for v in range(vols)} for p in range(pairs)}


def image_of(log, visible, pairs=2, vols=1):
    """Images showing exactly the writes in ``visible`` (at most one per block)."""
    img = blank(pairs, vols)
    for wid in visible:
        e = log.get(wid)
        assert e.block not in img[e.pair][e.vol]
        img[e.pair][e.vol][e.block] = log.payload(wid)
    return img


def patent_log():
    """The patent's IMS example: log write (1) on subsystem 1 (pair 0), database write
    (2) on subsystem 2 (pair 1) after (1) completed, commit record (3) on subsystem 1
    after (2) completed. Each write is issued at the instant the previous completes."""
    log = WorkloadLog(writer=1)
    log.issue(1, 0, 0, 0, 0, tag="log")
    log.complete(1, 100)
    log.issue(2, 1, 0, 40, 100, dep=1, tag="data")
    log.complete(2, 250)
    log.issue(3, 0, 0, 1, 250, dep=2, tag="commit")
    log.complete(3, 300)
    return log


# ---- the patent's three writes -------------------------------------------------------
def test_patent_1_and_3_without_2_is_inconsistent():
    log = patent_log()
    r = check(log, image_of(log, [1, 3]))
    assert not r.consistent
    assert r.violations_total == 1 and r.violating_pairs == 1
    v = r.violations[0]
    assert v["included"]["id"] == 3 and v["lost"]["id"] == 2
    assert (v["included"]["pair"], v["lost"]["pair"]) == (0, 1)
    assert (v["included"]["block"], v["lost"]["block"]) == (1, 40)
    assert v["lost"]["complete_us"] == 250 and v["included"]["issue_us"] == 250
    assert v["by_dependency"] and v["gap_us"] == 0
    assert "write 3" in v["text"] and "write 2" in v["text"]
    assert r.lost_acked == 1 and r.lost_acked_ids == [2]
    assert r.writes_recovered == 2 and r.writes_completed == 3
    assert r.recovery_point_us == 250 and r.rpo_ms == pytest.approx(0.05)
    assert "INCONSISTENT" in r.summary()


@pytest.mark.parametrize("visible,lost,rp", [
    ([], [1, 2, 3], 100),
    ([1], [2, 3], 250),
    ([1, 2], [3], 300),
    ([1, 2, 3], [], None),
])
def test_patent_consistent_states(visible, lost, rp):
    log = patent_log()
    r = check(log, image_of(log, visible))
    assert r.consistent, r.summary()
    assert r.violations == [] and r.violations_total == 0
    assert r.lost_acked_ids == lost and r.writes_recovered == len(visible)
    assert r.recovery_point_us == rp
    assert r.last_ack_us == 300 and r.end_us == 300
    assert r.rpo_ms == (0.0 if rp is None else (300 - rp) / 1000.0)


@pytest.mark.parametrize("visible,included,lost_ids,pairs", [
    ([2], 2, [1], 1),              # database write without its log record
    ([3], 3, [2], 2),              # commit alone: both 1 and 2 completed before it
    ([2, 3], 3, [1], 2),           # (2) and (3) both issued after (1) completed
])
def test_patent_other_inconsistent_states(visible, included, lost_ids, pairs):
    log = patent_log()
    r = check(log, image_of(log, visible))
    assert not r.consistent
    assert r.violations_total == len(visible) and r.violating_pairs == pairs
    assert any(v["included"]["id"] == included and v["lost"]["id"] in lost_ids
               for v in r.violations)


def test_patent_from_json_without_sequence_numbers():
    """Plain dicts (no event sequence numbers): the tie at 250 us between the completion
    of (2) and the issue of (3) is resolved by the dependency."""
    writes = [{k: v for k, v in e.to_dict().items() if not k.endswith("_seq")}
              for e in patent_log()]
    writes = json.loads(json.dumps(writes))
    img = json.loads(json.dumps({"0": {"0": {"0": None, "1": None}}, "1": {"0": {}}}))
    log = patent_log()
    img["0"]["0"]["0"] = log.payload(1)
    img["0"]["0"]["1"] = log.payload(3)
    r = check(writes, img)
    assert not r.consistent and r.violations[0]["lost"]["id"] == 2
    assert r.violations[0]["by_dependency"]
    # without the dependency, a write issued at the same microsecond is not "after"
    for w in writes:
        w["dep"] = None
    assert check(writes, img).consistent
    # ... but one microsecond later it is
    writes[2]["issue_us"] = 251
    r = check(writes, img)
    assert not r.consistent and r.violations[0]["lost"]["id"] == 2


def test_report_to_dict_is_json():
    log = patent_log()
    r = check(log.to_dict(), image_of(log, [1, 3]))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["consistent"] is False and d["violations"][0]["lost"]["id"] == 2
    assert set(d) == set(r.FIELDS)


# ---- image shapes ----------------------------------------------------------------------
def test_image_shapes():
    log = patent_log()
    want = check(log, image_of(log, [1, 3]))
    vol0 = bytearray(2 * 512)
    vol0[0:512] = log.payload(1)
    vol0[512:1024] = log.payload(3)
    raw = {0: {0: bytes(vol0)}, 1: {0: bytes(41 * 512)}}
    lists = [[[log.payload(1), log.payload(3)]], [[None] * 41]]
    blocks = {(0, 0, 0): log.payload(1), (0, 0, 1): log.payload(3)}

    def read(p, v, b):
        return blocks.get((p, v, b), bytes(512))
    for img in (raw, lists, read, {0: {0: lambda b: blocks.get((0, 0, b))}, 1: {0: {}}}):
        r = check(log, img)
        assert (r.consistent, r.violations_total, r.lost_acked_ids) == (False, 1, [2])
    assert want.violations == check(log, read).violations


def test_missing_volume_or_block_is_unreadable():
    log = patent_log()
    r = check(log, {0: {0: {0: log.payload(1)}}})           # no pair 1 at all
    assert not r.consistent and r.violations_total == 0
    assert [(u["pair"], u["block"]) for u in r.unreadable] == [(1, 40)]
    assert r.writes_unknown == 1
    r = check(log, {0: {0: [log.payload(1)] * 1}, 1: {0: bytes(512 * 41)}})
    assert [(u["pair"], u["block"]) for u in r.unreadable] == [(0, 1)]

    def read(p, v, b):
        raise IOError("sd card timeout")
    r = check(log, read)
    assert len(r.unreadable) == 3 and "timeout" in r.unreadable[0]["reason"]


# ---- corrupt blocks ---------------------------------------------------------------------
def test_torn_block_is_reported():
    log = patent_log()
    img = image_of(log, [1, 2])
    good = log.payload(2)
    img[1][0][40] = good[:200] + bytes(312)                    # torn over a zero block
    r = check(log, img)
    assert not r.consistent and r.violations_total == 0
    (c,) = r.corrupt
    assert (c["pair"], c["vol"], c["block"], c["status"]) == (1, 0, 40, P.CORRUPT)
    assert "CRC" in c["reason"]
    assert r.writes_unknown == 1 and r.lost_acked_ids == [3]


def test_garbage_and_stray_blocks_are_reported():
    log = patent_log()
    img = image_of(log, [1, 2])
    img[1][0][7] = b"\xff" * 512                               # garbage outside the log's blocks
    img[1][0][8] = P.encode(1, 99, 1, 0, 8)                    # a write never issued
    img[0][0][5] = log.payload(1)                              # a payload at the wrong address
    r = check(log, img)
    assert not r.consistent and r.violations_total == 0
    got = {(c["pair"], c["block"]): c for c in r.corrupt}
    assert set(got) == {(1, 7), (1, 8), (0, 5)}
    assert got[(1, 7)]["status"] == P.FOREIGN
    assert "never issued" in got[(1, 8)]["reason"]
    assert "misplaced" in got[(0, 5)]["reason"] and got[(0, 5)]["id"] == 1
    # with a read callable, only the log's blocks are looked at
    assert check(log, lambda p, v, b: img[p][v].get(b)).consistent


def test_wrong_writer_or_version_is_reported():
    log = patent_log()
    img = image_of(log, [1, 2])
    img[1][0][40] = P.encode(2, 2, 1, 0, 40, 100, 1, 0, 0, 1, "data")      # other writer
    r = check(log, img)
    assert "writer" in r.corrupt[0]["reason"] and not r.consistent
    img[1][0][40] = P.encode(1, 2, 1, 0, 40, 100, 7, 0, 0, 1, "data")      # bad bver
    r = check(log, img)
    assert "version" in r.corrupt[0]["reason"] and not r.consistent
    img[1][0][40] = P.encode(1, 3, 1, 0, 40)                               # id of another block
    r = check(log, img)
    assert "sent to pair 0" in r.corrupt[0]["reason"]


# ---- hot blocks: per-block version order ---------------------------------------------------
def hot_log():
    """Block X = (0,0,9) written three times; Y = (1,0,3) written once, between X's
    second and third versions."""
    log = WorkloadLog()
    log.issue(1, 0, 0, 9, 0)
    log.complete(1, 10)
    log.issue(2, 0, 0, 9, 10)
    log.complete(2, 20)
    log.issue(4, 1, 0, 3, 20)
    log.complete(4, 30)
    log.issue(3, 0, 0, 9, 30)
    log.complete(3, 40)
    return log


@pytest.mark.parametrize("x,y,ok,included,lost", [
    (None, None, True, 0, [1, 2, 4, 3]),
    (1, None, True, 1, [2, 4, 3]),
    (2, None, True, 2, [4, 3]),
    (2, 4, True, 3, [3]),
    (3, 4, True, 4, []),        # older versions of X count as included
    (1, 4, False, 2, [2, 3]),   # Y without X's second version
    (3, None, False, 3, [4]),   # X's third version without Y
])
def test_hot_block_versions(x, y, ok, included, lost):
    log = hot_log()
    vis = [w for w in (x, y) if w is not None]
    r = check(log, image_of(log, vis))
    assert r.consistent == ok
    assert r.writes_recovered == included and r.lost_acked_ids == lost
    if not ok:
        v = r.violations[0]
        assert (v["lost"]["id"], v["included"]["id"]) == ((2, 4) if x == 1 else (4, 3))


# ---- in-flight and failed writes ----------------------------------------------------------
def inflight_log():
    log = WorkloadLog()
    log.issue(1, 0, 0, 0, 0)                  # in flight at the disaster
    log.issue(2, 1, 0, 0, 5)
    log.complete(2, 10)
    log.issue(3, 1, 0, 1, 10)                 # failed write
    log.complete(3, 20, ok=False)
    log.issue(4, 1, 0, 2, 20)                 # in flight, issued after 2 and 3 completed
    log.close(50)
    return log


@pytest.mark.parametrize("vis", [[], [1], [2], [1, 2], [2, 3], [1, 2, 3], [2, 4], [2, 3, 4],
                                 [1, 2, 3, 4]])
def test_inflight_and_failed_writes_are_legal_either_way(vis):
    log = inflight_log()
    r = check(log, image_of(log, vis))
    assert r.consistent, r.summary()
    assert r.writes_inflight == 2 and r.writes_failed == 1 and r.writes_completed == 1
    assert r.included_unacked == len([w for w in vis if w != 2])
    assert r.end_us == 50
    if 2 not in vis:
        assert r.lost_acked_ids == [2] and r.rpo_ms == pytest.approx(0.04)
    else:
        assert r.lost_acked == 0 and r.rpo_ms == 0.0


@pytest.mark.parametrize("vis", [[4], [3], [1, 4], [3, 4]])
def test_visible_inflight_write_counts_for_causality(vis):
    log = inflight_log()
    r = check(log, image_of(log, vis))
    assert not r.consistent
    assert all(v["lost"]["id"] == 2 for v in r.violations)
    assert {v["included"]["id"] for v in r.violations} == set(vis) - {1}


def test_disaster_instant_sets_rpo():
    log = patent_log()
    r = check(log, image_of(log, [1]), disaster_us=1250)
    assert r.end_us == 1250 and r.rpo_ms == pytest.approx(1.0)


# ---- caps and log warnings -----------------------------------------------------------------
def test_violations_capped_with_totals():
    log = WorkloadLog()
    log.issue(1, 0, 0, 0, 0)
    log.complete(1, 10)
    for i in range(2, 52):
        log.issue(i, 1, 0, i, 10 + i)
        log.complete(i, 11 + i)
    r = check(log, image_of(log, range(2, 52)), max_violations=3, max_list=1)
    assert r.violations_total == 50 and len(r.violations) == 3
    assert all(v["lost"]["id"] == 1 for v in r.violations)
    # every write 3..51 was issued after 2..(i-1) completed, which are included: one lost each
    assert r.violating_pairs == 50
    assert r.lost_acked == 1 and r.lost_acked_ids == [1]


def test_log_anomalies_are_warned():
    log = WorkloadLog()
    log.issue(1, 0, 0, 0, 0)
    log.issue(2, 0, 0, 0, 5)                    # same block while 1 is outstanding
    log.complete(1, 10)
    log.complete(2, 12)
    log.issue(3, 0, 0, 1, 11, dep=2)            # before its dependency completed
    log.complete(3, 20)
    r = check(log, image_of(log, [2, 3]))
    assert r.log_warnings_total == 2
    assert "overlap" in r.log_warnings[0] and "dependency" in r.log_warnings[1]
    assert r.writes_ambiguous == 1              # write 1 overlaps the visible write 2


# ---- property tests ---------------------------------------------------------------------------
def make_log(kind, seed, pairs, conc, burst):
    wl = Workload(kind, pairs=pairs, vols=2, blocks=24, rate=None, duration_us=30000,
                  concurrency=conc, seed=seed, burst=burst, burst_at_us=2000, hot_blocks=3)
    rng = random.Random(seed ^ 0x5A5A)
    slow = rng.randrange(pairs)

    def lat(req):
        v = rng.randint(20, 1500)
        return v * 4 if req.pair == slow else v
    # stop mid-run, so that some writes are in flight at the end
    return drive_virtual(wl, lat, until_us=rng.randint(10000, 30000))


def images_from_states(log, included_of, pairs):
    """The image where each block shows the last write of it (in issue order) that
    ``included_of(entry)`` admits."""
    last = {}
    for e in sorted(log, key=lambda e: e.issue_seq):
        if included_of(e):
            last[e.address] = e.id
    return image_of(log, last.values(), pairs=pairs, vols=2), set(last.values())


def consistent_cut(log, draw_seq, coin):
    """Included at event s: every write completed by s; a write in flight at s may or
    may not be (coin); nothing issued after s."""
    s = draw_seq

    def inc(e):
        if e.issue_seq > s:
            return False
        if e.complete_seq is not None and e.complete_seq <= s:
            return True
        return coin(e.id)
    return inc


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 10 ** 6), pairs=st.integers(1, 4),
       conc=st.integers(1, 8), burst=st.integers(0, 10), cut=st.floats(0, 1),
       data=st.data())
def test_property_consistent_cut_then_break_it(kind, seed, pairs, conc, burst, cut, data):
    log = make_log(kind, seed, pairs, conc, burst)
    nseq = max(max(e.issue_seq, e.complete_seq or 0) for e in log)
    s = int(cut * nseq)
    coin_rng = random.Random(seed + s)
    coins = {e.id: coin_rng.random() < 0.5 for e in log}
    inc = consistent_cut(log, s, coins.__getitem__)
    img, _ = images_from_states(log, inc, pairs)
    r = check(log, img)
    assert r.consistent, r.summary()
    lost = sorted((e for e in log if e.ok and not inc(e)), key=lambda e: e.complete_seq)
    assert r.lost_acked_ids == [e.id for e in lost]
    assert r.writes_recovered == sum(1 for e in log if inc(e))
    if lost:
        assert r.recovery_point_us == lost[0].complete_us
        assert r.rpo_ms == (log.end_us - lost[0].complete_us) / 1000.0
    else:
        assert r.rpo_ms == 0.0

    # Break it: drop a visible acknowledged write W that completed before some other
    # included write was issued; its block falls back to the previous version.
    included = [e for e in log if inc(e)]
    visible = {}
    for e in sorted(included, key=lambda e: e.issue_seq):
        visible[e.address] = e
    cands = [w for w in visible.values() if w.ok and
             any(x.issue_seq > w.complete_seq for x in included)]
    if not cands:
        return
    w = data.draw(st.sampled_from(sorted(cands, key=lambda e: e.id)))
    inc2 = lambda e: inc(e) and e.id != w.id            # noqa: E731
    img2, _ = images_from_states(log, inc2, pairs)
    r2 = check(log, img2, max_violations=10 ** 6)
    assert not r2.consistent
    expect = {x.id for x in included if x.id != w.id and x.issue_seq > w.complete_seq}
    assert {v["included"]["id"] for v in r2.violations} == expect
    assert all(v["lost"]["id"] == w.id for v in r2.violations)
    assert r2.violating_pairs == len(expect)


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 10 ** 6), pairs=st.integers(2, 4),
       cuts=st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_property_matches_brute_force_on_per_pair_cuts(kind, seed, pairs, cuts):
    """Each secondary stopped at its own instant (what an uncoordinated asynchronous copy
    would leave): compare with the definition evaluated pair by pair, O(n^2)."""
    log = make_log(kind, seed, pairs, 6, 4)
    nseq = max(max(e.issue_seq, e.complete_seq or 0) for e in log)
    stop = [int(c * nseq) for c in cuts[:pairs]]
    inc = lambda e: e.complete_seq is not None and e.complete_seq <= stop[e.pair]  # noqa: E731
    img, _ = images_from_states(log, inc, pairs)
    r = check(log, img, max_violations=10 ** 6)
    ents = list(log)
    lost = [e for e in ents if e.ok and not inc(e)]
    bad = defaultdict(int)
    for i in ents:
        if inc(i):
            for l in lost:
                if l.complete_seq < i.issue_seq:
                    bad[i.id] += 1
    assert r.consistent == (not bad)
    assert r.violations_total == len(bad)
    assert r.violating_pairs == sum(bad.values())
    assert {v["included"]["id"] for v in r.violations} == set(bad)
    for v in r.violations:
        l = log.get(v["lost"]["id"])
        assert not inc(l) and l.complete_seq < log.get(v["included"]["id"]).issue_seq
