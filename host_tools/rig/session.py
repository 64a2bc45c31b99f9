"""Rig-file glue: the operator procedures of host_tools/ops/ on a rig, over its SerialTransport.

A rig dict (host_tools/rig/manager.py load()) names the boards, their roles, pairs and host
ports; this module turns it into what ops/ takes (a Transport, {pair: (primary, secondary)},
the geometry) and keeps the rig's records (workload log, history, disaster) in step.
"""
from host_tools import ops
from host_tools.ops.errors import OpError
from host_tools.rig import manager as rigmgr
from host_tools.rig import records
from host_tools.rig.records import load_log, load_history, set_aside_history, load_disaster
from host_tools.rig.workload import mono_us
from host_tools.transport.serial_client import SerialTransport


def transport(rig, timeout=1.0, retries=2):
    """The rig's host ports as a host_tools.transport.Transport."""
    return SerialTransport.from_rig(rig, timeout=timeout, retries=retries)


def pairs(rig, which=None):
    """{pair: (primary name, secondary name)} by current role (after a failback p<i> is the
    secondary of pair i); `which`: the pairs wanted (default all)."""
    out = {}
    for i in (range(rig["pairs"]) if which is None else which):
        try:
            pb, sb = rigmgr.pair_boards(rig, i)
            out[i] = (pb["name"], sb["name"])
        except rigmgr.RigError:
            out[i] = ("p%d" % i, "s%d" % i)
    return out


# -- pairs as the rig file names them -------------------------------------------------------------
def pair_labels(rig):
    """{pair index: the pair's name}: the number the rig file's board names carry (p1/s1 ->
    "1" on a hardware rig file, p0/s0 -> "0" on the emulated rig), or the index when the
    names of a pair's boards do not share one number (or two pairs would share it)."""
    import re
    out = {}
    for i in range(rig["pairs"]):
        nums = set()
        for b in rig["boards"]:
            if b.get("pair") == i:
                m = re.search(r"(\d+)$", b["name"])
                nums.add(str(int(m.group(1))) if m else None)
        out[i] = nums.pop() if len(nums) == 1 and None not in nums else None
    if None in out.values() or len(set(out.values())) != len(out):
        return {i: str(i) for i in range(rig["pairs"])}
    return out


def pair_label(rig, i):
    return pair_labels(rig).get(i, str(i))


def describe_pair(rig, i):
    """"pair 1 (p1 -> s1)" by current roles."""
    p, s = pairs(rig, [i])[i]
    return "pair %s (%s -> %s)" % (pair_label(rig, i), p, s)


def resolve_pair(rig, text):
    """--pair TEXT -> (pair index, "pair 1 (p1 -> s1)"): TEXT is a pair's name (its number as
    the rig file numbers it) or the name of one of its boards. Raises ValueError naming the
    pairs there are."""
    text = str(text).strip()
    labels = pair_labels(rig)
    for b in rig["boards"]:
        if b["name"] == text and b.get("pair") is not None:
            return b["pair"], describe_pair(rig, b["pair"])
    for i, lab in labels.items():
        if lab == text or (text.isdigit() and lab.isdigit() and int(text) == int(lab)):
            return i, describe_pair(rig, i)
    raise ValueError("no pair %r on this rig: pairs are %s (a number or a board name)"
                     % (text, ", ".join(describe_pair(rig, i) for i in sorted(labels))))


def secondaries(rig):
    """{pair: secondary name} by current role."""
    return {b["pair"]: b["name"] for b in rigmgr.secondaries(rig)}


# -- status ------------------------------------------------------------------------------------
def collect_status(rig, timeout=0.5):
    """name -> STATUS dict, or None for a board that does not answer."""
    with transport(rig, timeout, 1) as t:
        return ops.status.collect(t, [b["name"] for b in rig["boards"]])


def pair_rows(rig, st):
    return ops.status.pair_rows(pairs(rig), st, pair_labels(rig))


format_table = ops.status.format_table


# -- copy ----------------------------------------------------------------------------------------
def start_copy(rig, wait=True, timeout=60.0, full=False, progress=None):
    """START_COPY on every pair; with wait, until every pair is duplex (raises OpError if a
    primary refused). -> {primary: status}."""
    with transport(rig, 2.0) as t:
        res, _ = ops.copy.start_copy(t, pairs(rig), full=full, wait=wait, timeout=timeout,
                                     progress=progress)
    bad = ops.copy.refused(res)
    if wait and bad:
        raise OpError("START_COPY refused: %s" % ", ".join("%s %s" % kv for kv in sorted(bad.items())))
    return res


# -- disaster, failover, verify --------------------------------------------------------------------
def disaster(rig):
    """kill -9 every primary board (the primary site is lost); -> {"disaster_us", "killed"}
    (also saved in the rig directory for verify)."""
    t = mono_us()
    killed = ops.drill.disaster(rigmgr.RigControl(rig), [b["name"] for b in rigmgr.primaries(rig)])
    return records.save_disaster(rig, t, killed)


def failover(rig, settle_timeout=10.0, log=None):
    """ops.failover.failover over the rig's secondaries."""
    with transport(rig, 1.0) as t:
        return ops.failover.failover(t, [b["name"] for b in rigmgr.secondaries(rig)],
                                     settle_timeout=settle_timeout, log=log)


def reader(rig, timeout=2.0):
    """ops.verify.read_back for several boards at once: one thread and one host port per
    board (each port is a paced serial line of its own). -> reader(boards, nvol, vol_blocks,
    **kw) for ops.verify.verify / ops.drill.recover."""
    from concurrent.futures import ThreadPoolExecutor

    def read(boards, nvol, vol_blocks, **kw):
        def one(pair):
            with transport(rig, timeout) as t:
                return ops.verify.read_back(t, {pair: boards[pair]}, nvol, vol_blocks, **kw)
        images, stats = {}, {}
        with ThreadPoolExecutor(max_workers=max(1, len(boards))) as ex:
            for imgs, st in ex.map(one, sorted(boards)):
                images.update(imgs)
                for k, v in st.items():
                    stats[k] = stats.get(k, 0) + v
        for k in ("reads", "busy_retries", "failed"):
            stats.setdefault(k, 0)
        return images, stats
    return read


def read_volumes(rig, boards=None):
    """Every block of every volume of `boards` (board dicts; default the secondaries).
    -> ({pair: {vol: Volume}}, stats)."""
    boards = rigmgr.secondaries(rig) if boards is None else boards
    return reader(rig)({b["pair"]: b["name"] for b in boards}, rig["nvol"], rig["vol_blocks"])


def check(rig, log=None, disaster_us=None, recovery=None):
    """Read back the secondaries that hold an image and judge them against the rig's
    workload log (blocks that hold a write of an earlier run count as not written by this
    one: stats["earlier_blocks"]). -> (Report, verdict, stats)."""
    if log is None:
        log = load_log(rig)
    if disaster_us is None:
        d = load_disaster(rig)
        if d and log.start_us is not None and d["disaster_us"] >= log.start_us:
            disaster_us = d["disaster_us"]
    history = load_history(rig)
    with transport(rig, 2.0) as t:
        rep, v, _, stats = ops.verify.verify(
            t, secondaries(rig), log, rig["nvol"], rig["vol_blocks"], disaster_us=disaster_us,
            recovery=recovery, adjust=lambda images: set_aside_history(images, log, history),
            reader=reader(rig))
    stats["earlier_blocks"] = stats.pop("adjusted", 0)
    return rep, v, stats


def verify(rig, log=None, disaster_us=None):
    """check() -> (Report, stats) (the verdict in stats["verdict"])."""
    rep, v, stats = check(rig, log, disaster_us)
    stats["verdict"] = v
    return rep, stats


def compare_sites(rig):
    """ops.verify.compare_sites over every pair of the rig (both sites through their host
    ports, one thread per board)."""
    with transport(rig, 2.0) as t:
        return ops.verify.compare_sites(t, pairs(rig), rig["nvol"], rig["vol_blocks"],
                                        reader=reader(rig))
