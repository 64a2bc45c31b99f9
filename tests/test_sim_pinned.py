# Pinned fingerprints of a few simulator seeds: a performance-only change to the engine must keep them.
"""Same seed, same outcome, across code changes: tests/sim_pinned.json holds the fingerprint
(state digest, events, workload log digest, result digest) of a few seeded drills.

A deliberate change of behaviour (firmware, workload, fault model) changes them: regenerate
with `.venv/bin/python tests/sim_pinned.py --write`, check the diff, commit it.
"""
import pytest

import sim_pinned


@pytest.mark.parametrize("name", sorted(sim_pinned.CASES))
def test_fingerprint_is_pinned(name):
    pinned = sim_pinned.load()
    assert name in pinned, "no pinned fingerprint for %s: run tests/sim_pinned.py --write" % name
    got = sim_pinned.fingerprint(*sim_pinned.CASES[name])
    assert got == pinned[name], (
        "%s changed: %s (pinned %s). If the behaviour change is intended, regenerate with "
        "`.venv/bin/python tests/sim_pinned.py --write`" % (name, got, pinned[name]))


def test_fingerprint_sees_a_different_seed():
    runner, kw = sim_pinned.CASES["all-3"]
    other = sim_pinned.fingerprint(runner, dict(kw, seed=4))
    assert other != sim_pinned.load()["all-3"]
