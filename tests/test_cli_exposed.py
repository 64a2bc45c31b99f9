"""Overload is visible to the host, through the real `arcopy` command: a workload during which a
pair auto-suspends (p0's journal of 16, its link cut) counts the writes answered OK with the
flag EXPOSED and says so; `arcopy status` shows the age of each pair's cut (cut_age_ms)."""
import json

from test_cli_operator import arcopy, js, numbers_are_numbers, ok
from test_cli_operator import rig  # noqa: F401  (the rig fixture: p0's journal of 16, link cut-able)


def test_workload_counts_writes_answered_while_a_pair_was_not_protected(rig):
    d = rig
    assert js("start-copy", "--dir", d)["ok"]
    doc = js("workload", "--dir", d, "--duration", 1, "--rate", 10, "--no-progress")
    assert doc["ok"] and doc["exposed"] == {} and doc["exposed_total"] == 0, doc
    st = js("status", "--dir", d)
    ages = [st[k]["cut_age_ms"] for k in ("0", "1")]
    assert all(isinstance(a, float) and 0 <= a < 5000 for a in ages), ages
    ok("rig", "hub", "--dir", d, "cut", "p0", "on")
    try:
        r = arcopy("workload", "--dir", d, "--duration", 2.5, "--rate", 20, "--no-progress", "--json")
    finally:
        ok("rig", "hub", "--dir", d, "cut", "p0", "off")
    doc = json.loads(r.stdout)
    assert doc["suspended_pairs"] == {"0": "auto"}, (doc, r.stderr)
    assert doc["failed"] == 0, doc                       # every write done: only the flag says
    assert list(doc["exposed"]) == ["0"], doc            # pair 1 stayed protected
    n = doc["exposed"]["0"]["writes"]
    assert 0 < n <= doc["issued"] and doc["exposed_total"] == n
    assert doc["exposed"]["0"]["why"] == "suspended: auto"
    assert "%d write(s) answered while pair 0 was not protected (suspended: auto)" % n in r.stderr
    numbers_are_numbers(doc)
    # the frozen group's cut ages: pair 0's secondary resigned at its last cut
    st = js("status", "--dir", d)
    assert st["0"]["cut_age_ms"] > 0
    wide = arcopy("status", "--dir", d, "--wide", columns=200).stdout.splitlines()
    assert "cut ms" in wide[0]
    # text mode prints the same count
    r = arcopy("workload", "--dir", d, "--duration", 1, "--rate", 10, "--no-progress")
    assert "answered while pair 0 was not protected (suspended: auto)" in r.stderr, r.stderr
    assert js("resume", "--dir", d, "--pair", 0, "--timeout", 30)["ok"]
