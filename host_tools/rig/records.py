"""The files a rig keeps besides the rig file: the workload log, the history of earlier runs' blocks, the disaster record."""
import json
import os
import time

from host_tools.rig import manager as rigmgr
from host_tools.check.workload import WorkloadLog

WORKLOAD_FILE = "workload.json"
DISASTER_FILE = "disaster.json"


class NoLog(rigmgr.RigError):
    """The rig has no workload log yet."""


def _path(rig, name):
    return os.path.join(rig["dir"], name)


def save_log(rig, log, extra=None):
    """Save `log` as the rig's workload log. The log it replaces is folded into the
    rig's history first (see fold_history), so that `verify` can tell the blocks of
    earlier runs (still on the volumes) from stray data."""
    d = log.to_dict()
    if extra:
        d["meta"] = dict(d.get("meta") or {}, **extra)
    path = _path(rig, WORKLOAD_FILE)
    if os.path.exists(path):
        try:
            old = WorkloadLog.load(path)
        except (OSError, ValueError, KeyError):
            old = None
        if old is not None:
            fold_history(rig, old)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(d, f, separators=(",", ":"))
    os.replace(tmp, path)
    return path


def load_log(rig):
    path = _path(rig, WORKLOAD_FILE)
    if not os.path.exists(path):
        raise NoLog("no workload log in %s (run `arcopy workload` first)" % rig["dir"])
    return WorkloadLog.load(path)


# -- history: blocks written by earlier workload runs ----------------------------------------------
# A volume keeps what earlier runs wrote (data written before the copy started, the writes
# of a workload before the last one, host writes at failed-over secondaries that failback
# copied back). The checker knows only the current log and would call those blocks stray
# payloads; the history lists them as (pair, vol, block, payload CRC) so that verify can
# count them as "not written by this run" instead.
HISTORY_FILE = "history.json"


def load_history(rig):
    """-> {(pair, vol, block): set of payload CRCs} of every earlier run's writes."""
    path = _path(rig, HISTORY_FILE)
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for p, v, k, crc in json.load(f).get("blocks", ()):
                out.setdefault((p, v, k), set()).add(crc)
    return out


def fold_history(rig, log):
    """Add every write of `log` (whatever its outcome: a failed or in-flight write may be
    on the volume too) to the rig's history."""
    path = _path(rig, HISTORY_FILE)
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = json.load(f).get("blocks", [])
    have = set(map(tuple, rows))
    for e in log.entries:
        data = log.payload(e.id)
        row = (e.pair, e.vol, e.block, _crc_of(data))
        if row not in have:
            have.add(row)
            rows.append(list(row))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"format": "arcopy-history", "version": 1, "blocks": rows}, f,
                  separators=(",", ":"))
    os.replace(tmp, path)
    return len(rows)


def _crc_of(data):
    return int.from_bytes(bytes(data[-4:]), "little")


def set_aside_history(images, log, history):
    """In read-back `images` ({pair: {vol: {block: data}}}), blank every block that holds
    a payload of an earlier run (in `history`, and not a write of the current `log`):
    for this run's check that block was never written. -> number of blocks blanked."""
    from host_tools.check import payload as _payload
    if not history:
        return 0
    by_id = {e.id: e for e in log.entries}
    n = 0
    for pair, vols in images.items():
        for vol, image in vols.items():
            for blk in list(dict.keys(image)):
                data = dict.get(image, blk)
                if data is None:
                    continue
                crcs = history.get((pair, vol, blk))
                if not crcs or _crc_of(data) not in crcs:
                    continue
                st = _payload.inspect(data)
                if st.status != _payload.VALID:
                    continue
                e = by_id.get(st.payload.serial)
                if e is not None and e.address == (pair, vol, blk) and \
                        log.payload(e.id) == bytes(data):
                    continue                        # this run's write
                dict.__setitem__(image, blk, None)
                n += 1
    return n


# -- disaster ------------------------------------------------------------------------------------
def save_disaster(rig, disaster_us, killed):
    """Record the instant of a disaster and the boards it killed. -> the record."""
    rec = {"disaster_us": disaster_us, "wall": time.time(), "killed": killed}
    with open(_path(rig, DISASTER_FILE), "w") as f:
        json.dump(rec, f)
    return rec


def load_disaster(rig):
    path = _path(rig, DISASTER_FILE)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None
