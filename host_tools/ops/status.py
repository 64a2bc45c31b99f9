"""Board STATUS as the operator reads it: by field name, per pair, and as the status table."""
from firmware import wire

from host_tools import transport
from host_tools.transport import messages
from host_tools.transport.messages import REASON_NAMES


def get(t, board, timeout=None, attempts=1, pause_s=0.25):
    """The STATUS of `board` as a dict by field name (transport.messages.decode_status), or
    None if it did not answer in `attempts` tries (`pause_s` apart)."""
    for i in range(attempts):
        try:
            return messages.status(t, board, timeout)
        except (transport.TransportError, messages.Refused):
            pass
        if i + 1 < attempts:
            t.sleep(pause_s)
    return None


def collect(t, boards, timeout=None):
    """name -> STATUS dict, or None for a board that does not answer."""
    return {name: get(t, name, timeout) for name in boards}


def dirty_blocks(t, board, nvol, vol_blocks, attempts=1, pause_s=0.25, timeout=None):
    """{vol: [blocks]} marked in `board`'s change bitmap (C_DIRTY_LIST), or None if it did not
    answer in `attempts` tries."""
    for i in range(attempts):
        try:
            return {v: messages.dirty_list(t, board, v, vol_blocks, timeout) for v in range(nvol)}
        except (transport.TransportError, messages.Refused):
            pass
        if i + 1 < attempts:
            t.sleep(pause_s)
    return None


# -- checkpoints as STATUS shows them ----------------------------------------------------------------
def applied(s):
    """The checkpoint a board has applied, (n, T), or None without a status."""
    return (s["applied_n"], s["applied_t"]) if s else None


def released_point(s):
    """The newest checkpoint a secondary knows to be released: (n, T). Checkpoints are
    ordered by their time T (numbers are labels that a change of master may repeat)."""
    if s["uip_n"] and s["uip_t"] > s["applied_t"]:
        return s["uip_n"], s["uip_t"]
    return s["applied_n"], s["applied_t"]


def held_t(s):
    """The newest cut a secondary holds (journaled marker or applied), by time."""
    return max(s["ckpt_t"], s["applied_t"])


def had_image(s):
    """Did this secondary ever hold a consistent image (a checkpoint applied)?"""
    return bool(s["applied_t"])


# -- pairs ----------------------------------------------------------------------------------------
def pair_rows(pairs, st):
    """One row per pair. pairs: {i: (primary name, secondary name)} by current role; st: name ->
    STATUS dict or None (collect())."""
    rows = []
    for i in sorted(pairs):
        pn, sn = pairs[i]
        p = st.get(pn)
        s = st.get(sn)
        pending = p is not None and p["copy_state"] == wire.CS_PENDING
        reason = (p or {}).get("suspend_reason") or (s or {}).get("suspend_reason") or 0
        rows.append({
            "pair": i,
            "p_name": pn,
            "s_name": sn,
            "boards": "%s>%s" % (pn, sn),
            "primary": p and p["copy_state_name"],
            "secondary": s and s["copy_state_name"],
            "p_master": p["is_master"] if p else None,
            "s_master": s["is_master"] if s else None,
            "ckpt_seen": p and p["ckpt_n"],
            "held": s and s["ckpt_n"],
            "released": s and s["released_n"],
            "applied": s and s["applied_n"],
            "uip": s and (s["uip_n"] if s["uip"] else 0),
            "p_journal": p and p["journal_depth"],
            "s_journal": s and s["journal_depth"],
            "lag_ms": None if p is None else round(p["lag_us"] / 1000.0, 1),
            "apply_lag_ms": None if s is None else round(s["lag_us"] / 1000.0, 1),
            "skew_us": p and p["skew_us"],
            "skew_max_us": p and p["skew_max_us"],
            "writes": p and p["writes_completed"],
            "frames_bad": (p["frames_bad"] if p else 0) + (s["frames_bad"] if s else 0),
            "copy_done": p.get("copy_done") if p else None,
            "copy_total": p.get("copy_total") if p else None,
            "copy": ("%d/%d" % (p.get("copy_done", 0), p.get("copy_total", 0))) if pending else None,
            "p_dirty": p.get("dirty_blocks") if p else None,
            "s_dirty": s.get("dirty_blocks") if s else None,
            "pace_us": p.get("pace_us") if p else None,
            "pace_threshold": p.get("pace_threshold") if p else None,
            "pace_max_us": p.get("pace_max_us") if p else None,
            "suspend_reason": reason,
            "reason": REASON_NAMES.get(reason, str(reason)) or None,
        })
    return rows


_COLS = (("pair", "pair", 4), ("boards", "P > S", 9), ("primary", "P state", 9), ("secondary", "S state", 11),
         ("copy", "copy", 9), ("ckpt_seen", "ckpt", 6), ("held", "held", 6),
         ("released", "rel", 6), ("applied", "applied", 7), ("uip", "uip", 5),
         ("p_journal", "P jrnl", 6), ("s_journal", "S jrnl", 6), ("p_dirty", "Pdirty", 6),
         ("s_dirty", "Sdirty", 6), ("lag_ms", "lag ms", 7), ("apply_lag_ms", "S lag ms", 8),
         ("pace_us", "pace us", 7), ("pace_threshold", "pace>", 5), ("skew_max_us", "skew us", 7),
         ("writes", "writes", 7), ("frames_bad", "bad", 4), ("reason", "why", 8))


def format_table(rows):
    def cell(v):
        if v is None:
            return "-"
        if v is True:
            return "yes"
        if v is False:
            return "no"
        return str(v)
    head = " ".join(h.rjust(w) for _, h, w in _COLS)
    lines = [head]
    for r in rows:
        lines.append(" ".join(cell(r.get(k)).rjust(w) for k, _, w in _COLS))
    return "\n".join(lines)


def table(t, pairs, timeout=None):
    """The status table of `pairs` now."""
    names = [n for i in sorted(pairs) for n in pairs[i]]
    return format_table(pair_rows(pairs, collect(t, names, timeout)))
