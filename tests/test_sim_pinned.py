# Pinned outcome fingerprints of seeded simulator drills: a performance-only change to the engine must keep them.
"""Same seed, same outcome, across code changes: tests/sim_pinned.json holds the fingerprint
(boards' disks, every frame sent with its local time, workload logs, result; no engine event
counts) of the pinned drills and of a differential set of 30 seeds.

A deliberate change of behaviour (firmware, workload, fault model) changes them: regenerate
with `.venv/bin/python tests/sim_pinned.py --write`, check the diff, commit it.
"""
import pytest

import sim_pinned


def _check(name):
    pinned = sim_pinned.load()
    assert name in pinned, "no pinned fingerprint for %s: run tests/sim_pinned.py --write" % name
    got = sim_pinned.fingerprint(*sim_pinned.ALL_CASES[name])
    assert got == pinned[name], (
        "%s changed: %s (pinned %s). If the behaviour change is intended, regenerate with "
        "`.venv/bin/python tests/sim_pinned.py --write`" % (name, got, pinned[name]))


@pytest.mark.parametrize("name", sorted(sim_pinned.CASES) + [sim_pinned.DIFF_QUICK])
def test_fingerprint_is_pinned(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(sim_pinned.DIFF_CASES))
def test_differential_fingerprint_is_pinned(name):
    _check(name)


def test_fingerprint_sees_a_different_seed():
    runner, kw = sim_pinned.CASES["all-3"]
    other = sim_pinned.fingerprint(runner, dict(kw, seed=4))
    assert other != sim_pinned.load()["all-3"]


def test_fingerprint_ignores_engine_event_count():
    # the same drill with the engine's event counter forced elsewhere: the same fingerprint
    from host_tools.sim import scheduler
    runner, kw = sim_pinned.CASES["all-8"]
    orig = scheduler.Scheduler._run

    def run(self, t_us, limit):
        n, drained = orig(self, t_us, limit)
        self.events += 1000
        return n, drained
    scheduler.Scheduler._run = run
    try:
        got = sim_pinned.fingerprint(runner, kw)
    finally:
        scheduler.Scheduler._run = orig
    assert got == sim_pinned.load()["all-8"]


def test_fingerprint_sees_one_frame_sent_later():
    # a board that sends the same frames one microsecond later (local time) is a different outcome
    from host_tools.sim.board import SimBoard
    runner, kw = sim_pinned.CASES["all-8"]
    orig = SimBoard._after

    def after(self, local, ticked):
        return orig(self, local + 1 if self.name == "p0" else local, ticked)
    SimBoard._after = after
    try:
        got = sim_pinned.fingerprint(runner, kw)
    finally:
        SimBoard._after = orig
    assert got["frames"] != sim_pinned.load()["all-8"]["frames"]
