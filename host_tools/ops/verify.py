"""Read recovered volumes back through the host ports and hand them, with the workload log, to the checker.

    images, stats = read_back(t, {pair: board}, nvol, vol_blocks)
    rep, v = verify(t, {pair: secondary}, log, nvol, vol_blocks, recovery=...)

Which pairs are judged: those whose secondary holds an image (recovered by the failover,
or, without a failover result, any secondary not in a resync); the others are liveness
(host_tools/check/verdict.py): their volume is never read as if it were an image.
"""
from firmware import wire

from host_tools import transport
from host_tools.check import checker
from host_tools.check import verdict as _verdict
from host_tools.ops import status as _status
from host_tools.transport import messages
from host_tools.transport.messages import status_name


class Volume(dict):
    """Blocks read back from a board; a block that could not be read raises Unreadable."""

    def __init__(self, nblocks):
        dict.__init__(self)
        self.failed = {}
        self.nblocks = nblocks

    def keys(self):
        return range(self.nblocks)

    def __contains__(self, k):
        return True

    def __getitem__(self, k):
        if k in self.failed:
            raise checker.Unreadable(self.failed[k])
        return dict.get(self, k)

    def get(self, k, default=None):
        return self[k]

    def raw(self):
        """The volume as one bytes image (unread blocks as zeros)."""
        z = bytes(wire.BLOCK_SIZE)
        return b"".join(dict.get(self, k) or z for k in range(self.nblocks))


def read_back(t, boards, nvol, vol_blocks, timeout=2.0, busy_timeout=20.0, attempts=3,
              busy_pause_s=0.02):
    """Read every block of every volume of `boards` ({pair: board name}) through the host
    ports. A read the board answers S_BUSY_UIP is asked again for up to `busy_timeout`;
    an unanswered one up to `attempts` times. -> ({pair: {vol: Volume}}, stats)."""
    images = {}
    stats = {"reads": 0, "busy_retries": 0, "failed": 0}
    for pair in sorted(boards):
        name = boards[pair]
        vols = {v: Volume(vol_blocks) for v in range(nvol)}
        images[pair] = vols
        busy_until = t.now() + busy_timeout
        gone = None
        for v in range(nvol):
            for k in range(vol_blocks):
                if gone is not None:
                    vols[v].failed[k] = gone
                    stats["failed"] += 1
                    continue
                silent = 0
                while True:
                    try:
                        st, data = messages.read(t, name, v, k, timeout)
                    except transport.BoardGone as e:
                        gone = "port closed: %s" % e
                        vols[v].failed[k] = gone
                        stats["failed"] += 1
                        break
                    except transport.TransportError as e:
                        silent += 1
                        if silent < attempts:
                            continue
                        vols[v].failed[k] = "no answer: %s" % e
                        stats["failed"] += 1
                        break
                    if st == wire.S_OK:
                        dict.__setitem__(vols[v], k, data)
                        stats["reads"] += 1
                        break
                    if st == wire.S_BUSY_UIP and t.now() < busy_until:
                        stats["busy_retries"] += 1
                        t.sleep(busy_pause_s)
                        continue
                    vols[v].failed[k] = "read refused: %s" % status_name(st)
                    stats["failed"] += 1
                    break
    return images, stats


def classify(t, secondaries, status_timeout=None):
    """Without a failover result: which pairs hold an image, from their secondaries' STATUS.
    A secondary in a resync (PENDING) holds none (no_image_yet if it never had one); one
    that does not answer is a timeout. -> {"recovered", "no_image", "no_image_yet",
    "timeouts"} (lists of pairs)."""
    out = {"recovered": [], "no_image": [], "no_image_yet": [], "timeouts": []}
    for pair in sorted(secondaries):
        s = _status.get(t, secondaries[pair], status_timeout, attempts=2)
        if s is None:
            out["timeouts"].append(pair)
        elif s["copy_state"] == wire.CS_PENDING or (
                s["copy_state"] == wire.CS_SIMPLEX and not _status.had_image(s)):
            out["no_image" if _status.had_image(s) else "no_image_yet"].append(pair)
        else:
            out["recovered"].append(pair)
    return out


def from_failover(fo, secondaries):
    """The same classes, by pair, from an ops.failover.failover() result."""
    pair_of = {name: pair for pair, name in secondaries.items()}
    out = {"recovered": sorted(pair_of[n] for n in fo["recovered"]),
           "no_image": sorted(pair_of[n] for n in fo["no_image"]),
           "no_image_yet": sorted(pair_of[n] for n in fo["no_image_yet"]),
           "timeouts": sorted(pair_of[n] for n in fo["silent"] + fo["unreachable"]),
           "no_common_cut": fo["no_common_cut"]}
    return out


def verify(t, secondaries, log, nvol, vol_blocks, disaster_us=None, cut_at_us=None, recovery=None,
           adjust=None, read_kw=None, reader=None):
    """Read back the secondaries that hold an image and judge them against `log`.
    secondaries: {pair: board}; recovery: from_failover() or classify() (default: classify
    now); adjust(images): called on the images before the check (e.g. the rig's history of
    earlier runs); reader(boards, nvol, vol_blocks, **read_kw): read_back's stand-in that
    runs it for several boards at once (default: read_back over `t`).
    -> (Report, verdict dict, images, read stats)."""
    rec = recovery if recovery is not None else classify(t, secondaries)
    boards = {p: secondaries[p] for p in rec["recovered"]}
    if reader is None:
        images, stats = read_back(t, boards, nvol, vol_blocks, **(read_kw or {}))
    else:
        images, stats = reader(boards, nvol, vol_blocks, **(read_kw or {}))
    if adjust is not None:
        stats["adjusted"] = adjust(images)
    rep, v = _verdict.judge(log, images, rec["recovered"], rec["no_image"], rec["no_image_yet"],
                            len(rec["timeouts"]), rec.get("no_common_cut", False),
                            disaster_us=disaster_us, cut_at_us=cut_at_us)
    return rep, v, images, stats


def compare_sites(t, pairs, nvol, vol_blocks, reader=None, read_kw=None):
    """After a failback (or any time the host is quiet): read both volumes of every pair,
    {pair: (primary, secondary)}, through the host ports and compare them block for block.
    reader: as for verify(). -> {"differ": {pair: [(vol, block), ...]} (pairs that differ
    only), "unreadable": {pair: [board, ...]}, "blocks": blocks compared, "reads": stats}."""
    prim = {i: pairs[i][0] for i in pairs}
    sec = {i: pairs[i][1] for i in pairs}
    kw = read_kw or {}
    if reader is None:
        a, sa = read_back(t, prim, nvol, vol_blocks, **kw)
        b, sb = read_back(t, sec, nvol, vol_blocks, **kw)
    else:
        a, sa = reader(prim, nvol, vol_blocks, **kw)
        b, sb = reader(sec, nvol, vol_blocks, **kw)
    out = {"differ": {}, "unreadable": {}, "blocks": 0,
           "reads": {k: sa.get(k, 0) + sb.get(k, 0) for k in ("reads", "busy_retries", "failed")}}
    for i in sorted(pairs):
        bad = []
        for v in range(nvol):
            va, vb = a[i][v], b[i][v]
            if va.failed or vb.failed:
                out["unreadable"][i] = [n for n, vol in ((pairs[i][0], va), (pairs[i][1], vb))
                                        if vol.failed]
                continue
            for k in range(vol_blocks):
                out["blocks"] += 1
                if dict.get(va, k) != dict.get(vb, k):
                    bad.append((v, k))
        if bad:
            out["differ"][i] = bad
    return out
