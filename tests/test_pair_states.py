"""The pair state machine (firmware/pairstate.py): every role x state x event against the table, and no
copy-state change anywhere else in the firmware."""
import glob
import os
import re

import pytest

from firmware import pairstate as ps
from firmware import wire

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = {"primary": wire.ROLE_PRIMARY, "secondary": wire.ROLE_SECONDARY}
STATES = {k[3:]: v for k, v in vars(wire).items() if k.startswith("CS_")}
EVENT_NAMES = ("START_COPY", "START_NOCOPY", "RESUME", "SUSPEND", "AUTO_SUSPEND", "STOP_COPY", "JOIN",
               "RESYNC", "HELLO", "PEER_SUSPEND", "PEER_AUTO_SUSPEND", "PEER_LOST", "FAILOVER",
               "BECOME_PRIMARY", "BECOME_SECONDARY", "PEER_FAILED_OVER")
EVENTS = {name: getattr(ps, name) for name in EVENT_NAMES}


def key(role, state, event):
    """The table's key: a small int from role, state and event (as in firmware/pairstate.py)."""
    return role << 8 | state << 5 | event


CASES = [(r, s, e) for r in ROLES for s in STATES for e in EVENTS]


class _Sb:
    def __init__(self, state):
        self.copy_state = state


class FakeStore:
    """Just the superblock and its commit, counting the durable writes."""

    def __init__(self, state):
        self.sb = _Sb(state)
        self.commits = []

    def commit(self, **changes):
        self.commits.append(changes)
        for k, v in changes.items():
            setattr(self.sb, k, v)


def test_event_constants_are_named_in_order():
    assert [getattr(ps, n) for n in EVENT_NAMES] == list(range(1, ps.EVENTS + 1))


def test_table_keys_decode_to_a_role_state_and_event():
    for k, new in ps.TABLE.items():
        role, state, event = k >> 8, (k >> 5) & 7, k & 31
        assert role in ROLES.values() and state in STATES.values() and event in EVENTS.values(), k
        assert k == key(role, state, event)
        assert new in STATES.values() or new == ps.SAME, (k, new)


@pytest.mark.parametrize("role,state,event", CASES, ids=["-".join(c) for c in CASES])
def test_every_role_state_and_event(role, state, event):
    r, s, e = ROLES[role], STATES[state], EVENTS[event]
    listed = ps.TABLE.get(key(r, s, e))
    store = FakeStore(s)
    got = ps.transition(store, r, e, next_lseq=7)
    assert ps.next_state(r, s, e) == (ps.BAD_STATE if listed is None else listed)
    if listed is None:
        # illegal: answered from the table, nothing written
        assert got == ps.BAD_STATE == wire.S_BAD_STATE
        assert store.commits == [] and store.sb.copy_state == s
    elif listed == ps.SAME:
        # legal and done already: the current state, nothing written
        assert got == s and store.commits == [] and store.sb.copy_state == s
    else:
        # a move: one durable write of the new state, with the caller's fields
        assert got == listed and store.sb.copy_state == listed
        assert store.commits == [{"copy_state": listed, "next_lseq": 7}]


def test_table_size_and_secondary_has_no_pair_operations():
    assert len(ps.TABLE) == 59
    for e in (ps.START_COPY, ps.START_NOCOPY, ps.RESUME, ps.SUSPEND, ps.STOP_COPY):
        for s in STATES.values():
            assert ps.next_state(wire.ROLE_SECONDARY, s, e) == ps.BAD_STATE


def test_no_copy_state_commit_outside_pairstate():
    offenders = []
    for path in sorted(glob.glob(os.path.join(ROOT, "firmware", "**", "*.py"), recursive=True)):
        if os.path.basename(path) == "pairstate.py":
            continue
        with open(path) as f:
            for i, line in enumerate(f, 1):
                # a commit(copy_state=...) keyword, or an assignment to a copy_state attribute
                if re.search(r"\bcopy_state\s*=(?!=)", line):
                    offenders.append("%s:%d: %s" % (os.path.relpath(path, ROOT), i, line.strip()))
    assert offenders == [], \
        "copy-state changes must go through pairstate.transition():\n" + "\n".join(offenders)
