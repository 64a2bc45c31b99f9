"""The disaster drill's steps, as an operator runs them: lose the primary site, fail over, read back, judge.

    killed = disaster(site, primaries)                         # Site.kill
    out = recover(t, {pair: secondary}, log, nvol, vol_blocks, disaster_us=..., cut_at=...)

`recover` is failover (ops/failover.py), read-back of the pairs that recovered and the
verdict (ops/verify.py, host_tools/check/verdict.py): the same on the rig and in the
simulator.
"""
from host_tools.ops import failover as _failover
from host_tools.ops import verify as _verify


def disaster(site, primaries):
    """The primary site is lost: every primary stops now. -> names stopped."""
    return site.kill(list(primaries))


def recover(t, secondaries, log, nvol, vol_blocks, disaster_us=None, cut_at=None, failover_kw=None,
            read_kw=None, adjust=None, say=None, reader=None):
    """Fail the secondaries ({pair: board}) over to the newest released cut, read back the
    pairs that recovered and judge them against `log`. cut_at(T) -> when the cut T was
    issued (virtual or host us), or None not to check for writes lost before the cut.
    -> {"failover": the failover result, "report": checker Report over the recovered
    pairs, "verdict": the verdict dict, "images": {pair: {vol: Volume}}, "reads": stats,
    "cut_at_us": ...}."""
    fo = _failover.failover(t, [secondaries[p] for p in sorted(secondaries)], log=say,
                            **(failover_kw or {}))
    rec = _verify.from_failover(fo, secondaries)
    cut_at_us = cut_at(fo["target_t"]) if cut_at is not None else None
    rep, v, images, stats = _verify.verify(t, secondaries, log, nvol, vol_blocks,
                                           disaster_us=disaster_us, cut_at_us=cut_at_us,
                                           recovery=rec, adjust=adjust, read_kw=read_kw,
                                           reader=reader)
    return {"failover": fo, "recovery": rec, "report": rep, "verdict": v, "images": images,
            "reads": stats, "cut_at_us": cut_at_us}
