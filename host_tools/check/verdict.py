"""A drill's verdict: safety (the recovered images) apart from liveness (pairs left without an image).

    rep, v = judge(log, images, recovered=[0, 1, 3], no_image=[2], disaster_us=..., cut_at_us=...)

Only the pairs that recovered are checked: the log is cut down to their writes and the
checker (host_tools/check/checker.py) is given their images alone, so that the volume of
a pair that refused failover (a resync was running: its volume is no image) is never
judged as if it were one. What the checker finds there is safety; a pair without an
image is liveness.

    v["safety"]   = {"violations": consistency violations among the recovered pairs (plus
                     corrupt blocks), "lost_before_cut": acknowledged writes lost although
                     they completed before the recovered cut was issued (less SKEW_MARGIN_US),
                     "sites_differ": pairs whose two volumes differ block for block after a
                     failback completed, the host quiet and the stream drained (a later
                     disaster would recover data the primary never had; with_sites_differ)}
    v["liveness"] = {"no_image": pairs with no recoverable image, "no_image_yet": pairs
                     whose secondary never had one (a first copy onto a blank volume: counted
                     apart, not a failure), "timeouts": boards that did not answer (the
                     failover, or reads of their volume), "no_common_cut": a secondary never
                     received the cut the others recovered to}
    v["ok"]       = no safety failure and no liveness failure
    v["verdict"]  = "ok" | "safety" | "liveness" | "safety+liveness"

Imports nothing of the firmware or of the replication code.
"""
from host_tools.check import checker

SKEW_MARGIN_US = 20000


class _Writes(object):
    """Some writes of a WorkloadLog (its entries, not copied), as the checker reads a log:
    entries, writer, end_us; get(id) -> entry."""

    def __init__(self, writer, end_us, entries):
        self.writer = writer
        self.end_us = end_us
        self.entries = entries
        self._by_id = None

    def get(self, id):
        if self._by_id is None:
            self._by_id = {e.id: e for e in self.entries}
        return self._by_id[id]


def _restrict(log, pairs):
    """The writes of `log` (a WorkloadLog or its to_dict()) on `pairs`: a _Writes over the
    log's entries, or a log dict."""
    pairs = set(pairs)
    if hasattr(log, "entries"):
        return _Writes(getattr(log, "writer", None), getattr(log, "end_us", None),
                       [e for e in log.entries if e.pair in pairs])
    if isinstance(log, dict):
        return dict(log, writes=[w for w in log["writes"] if int(w["pair"]) in pairs])
    return [w for w in log if int(w["pair"]) in pairs]


def lost_before(log, rep, cut_at_us, margin_us=SKEW_MARGIN_US):
    """Ids of the acknowledged writes the checker found lost although they completed
    before the recovered checkpoint was cut (less a margin for clock skew): a protocol
    failure even where the image is consistent. `log`: anything with get(id) -> entry,
    or a log dict."""
    out = []
    if cut_at_us is None:
        return out
    if isinstance(log, dict):
        by_id = {w["id"]: w for w in log["writes"]}
        done = lambda wid: by_id[wid].get("complete_us")        # noqa: E731
    else:
        done = lambda wid: log.get(wid).complete_us             # noqa: E731
    for wid in set(rep.lost_acked_ids):
        c = done(wid)
        if c is not None and c < cut_at_us - margin_us:
            out.append(wid)
    return out


def verdict(rep, lost_before_cut=(), no_image=0, no_image_yet=0, timeouts=0, no_common_cut=False,
            sites_differ=0):
    """The verdict schema (see the module docstring) from a checker Report over the
    recovered pairs and the liveness counts."""
    violations = unreadable = 0
    if rep is not None:
        violations = rep.violations_total + len(rep.corrupt)
        unreadable = 1 if rep.unreadable else 0       # a board whose reads went unanswered
    safety = {"violations": violations, "lost_before_cut": len(lost_before_cut),
              "sites_differ": int(sites_differ)}
    liveness = {"no_image": int(no_image), "no_image_yet": int(no_image_yet),
                "timeouts": int(timeouts) + unreadable, "no_common_cut": bool(no_common_cut)}
    return classify(safety, liveness)


def classify(safety, liveness):
    """The verdict dict from its two halves: ok and the verdict name."""
    bad_s = bool(safety["violations"] or safety["lost_before_cut"] or safety.get("sites_differ"))
    bad_l = bool(liveness["no_image"] or liveness["timeouts"] or liveness["no_common_cut"])
    return {"safety": safety, "liveness": liveness, "ok": not (bad_s or bad_l),
            "verdict": "+".join(x for x, b in (("safety", bad_s), ("liveness", bad_l)) if b) or "ok"}


def with_sites_differ(v, pairs):
    """Verdict `v` with the pairs whose sites differ after a failback (a count or an
    iterable of pairs) added to its safety half."""
    n = pairs if isinstance(pairs, int) else len(list(pairs))
    safety = dict(v["safety"])
    safety["sites_differ"] = safety.get("sites_differ", 0) + n
    return dict(v, **classify(safety, dict(v["liveness"])))


def judge(log, images, recovered, no_image=(), no_image_yet=(), timeouts=0, no_common_cut=False,
          disaster_us=None, cut_at_us=None, margin_us=SKEW_MARGIN_US):
    """Check the images of the `recovered` pairs against their writes in `log` and give the
    verdict. images: {pair: {vol: volume}} (only recovered pairs are looked at); no_image,
    no_image_yet: the pairs without an image (iterables, or counts); timeouts: boards that
    did not answer; cut_at_us: when the recovered cut was issued (None: not checked).
    -> (checker Report over the recovered pairs, verdict dict with "lost_before_cut_ids")."""
    recovered = sorted(set(recovered))
    sub = _restrict(log, recovered)
    imgs = {p: images[p] for p in recovered if p in images}
    rep = checker.check(sub, imgs, disaster_us=disaster_us)
    lost = lost_before(sub, rep, cut_at_us, margin_us)
    count = lambda x: x if isinstance(x, int) else len(list(x))     # noqa: E731
    v = verdict(rep, lost, count(no_image), count(no_image_yet), timeouts, no_common_cut)
    v["lost_before_cut_ids"] = sorted(lost)
    return rep, v
