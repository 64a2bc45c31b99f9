"""Board STATUS as the operator reads it: by field name, per pair, and as the status table."""
from firmware import wire
from firmware.store import IMG_FIRST, IMG_JOINED, IMG_ON

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


def image(s):
    """A secondary's preserved image (docs/ARCHITECTURE.md "Preserved image") as its STATUS
    shows it: a secondary has no sequence clock, pacing or copy total of its own, so
    seq_time_us is the image cut T it keeps (0: none), copy_total that cut's n, and pace_us
    its img_state bits (IMG_*) plus the preserved blocks << 8. -> dict t, n, flags, blocks,
    kept (an image cut is kept), first (a first copy: no image yet), joining (joined, not
    yet confirmed by a group release: shown PENDING)."""
    if not s or s.get("role") != wire.ROLE_SECONDARY:
        return {"t": 0, "n": 0, "flags": 0, "blocks": 0, "kept": False, "first": False,
                "joining": False}
    f = s["pace_us"] & 0xFF
    on = bool(f & IMG_ON)
    return {"t": s["seq_time_us"] if on else 0, "n": s["copy_total"] if on else 0, "flags": f,
            "blocks": s["pace_us"] >> 8, "kept": on, "first": bool(f & IMG_FIRST),
            "joining": bool(f & IMG_JOINED) and s["copy_state"] == wire.CS_PENDING}


def reach(s):
    """The cuts a secondary can be recovered to, as (lo, hi, kept_t): every T with lo <= T <= hi
    (lo, hi None: none, a resync is writing its volume), and kept_t (its kept image cut, 0:
    none). A failed-over board stays where it is."""
    im = image(s)
    if s["copy_state"] == wire.CS_FAILED_OVER:
        return s["applied_t"], s["applied_t"], 0
    if s["copy_state"] == wire.CS_PENDING and not im["joining"]:
        return None, None, im["t"]
    return s["applied_t"], held_t(s), im["t"]


def can_reach(s, t):
    lo, hi, kept = reach(s)
    return bool(t) and (t == kept or (lo is not None and lo <= t <= hi))


def had_image(s):
    """Did this secondary ever hold a consistent image (a checkpoint applied in the group, or
    an image cut kept)? A first copy (IMG_FIRST) has none until its join is confirmed."""
    im = image(s)
    return im["kept"] or (bool(s["applied_t"]) and not im["first"])


def cut_age_ms(p, s):
    """The age of the cut a pair's secondary can recover to, in ms: the primary's sequence time
    (the group's time) minus the T of the newest checkpoint its secondary knows released. It
    grows without bound while the group's recovery point is frozen. None without both boards'
    STATUS, before the first cut is applied, or in clockless mode (T is an epoch, not a time)."""
    if not p or not s or p.get("mode") == wire.MODE_CLOCKLESS or not p.get("seq_time_us"):
        return None
    if "applied_t" not in s:
        return None
    t = released_point(s)[1]
    if not t:
        return None
    return round(max(0, p["seq_time_us"] - t) / 1000.0, 1)


# -- pairs ----------------------------------------------------------------------------------------
def pair_rows(pairs, st, labels=None):
    """One row per pair. pairs: {i: (primary name, secondary name)} by current role; st: name ->
    STATUS dict or None (collect()); labels: {i: the pair's name} (default: its index)."""
    rows = []
    for i in sorted(pairs):
        pn, sn = pairs[i]
        p = st.get(pn)
        s = st.get(sn)
        pending = p is not None and p["copy_state"] == wire.CS_PENDING
        reason = (p or {}).get("suspend_reason") or (s or {}).get("suspend_reason") or 0
        lag = None if p is None else p["lag_us"] / 1000.0
        slag = None if s is None else s["lag_us"] / 1000.0
        rows.append({
            "pair": i if labels is None else labels.get(i, str(i)),
            "index": i,
            "p_answers": p is not None,
            "s_answers": s is not None,
            "rpo_ms": None if lag is None and slag is None else round((lag or 0.0) + (slag or 0.0), 1),
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
            "cut_age_ms": cut_age_ms(p, s),
            "skew_us": p and p["skew_us"],
            "p_clock_err_us": p and p.get("clock_err_us"),
            "s_clock_err_us": s and s.get("clock_err_us"),
            "p_heap_peak": (p.get("heap_peak") or None) if p else None,      # 0: unknown
            "s_heap_peak": (s.get("heap_peak") or None) if s else None,
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
            "frozen": bool(s and s.get("frozen")),
            "reason": REASON_NAMES.get(reason, str(reason)) or None,
        })
    return rows


_COLS = (("pair", "pair", 4), ("boards", "P > S", 9), ("primary", "P state", 9), ("secondary", "S state", 11),
         ("copy", "copy", 9), ("ckpt_seen", "ckpt", 6), ("held", "held", 6),
         ("released", "rel", 6), ("applied", "applied", 7), ("uip", "uip", 5),
         ("p_journal", "P jrnl", 6), ("s_journal", "S jrnl", 6), ("p_dirty", "Pdirty", 6),
         ("s_dirty", "Sdirty", 6), ("lag_ms", "lag ms", 7), ("apply_lag_ms", "S lag ms", 8),
         ("cut_age_ms", "cut ms", 8),
         ("pace_us", "pace us", 7), ("pace_threshold", "pace>", 5), ("p_clock_err_us", "err us", 7),
         ("p_heap_peak", "P heap", 7), ("s_heap_peak", "S heap", 7),
         ("writes", "writes", 7), ("frames_bad", "bad", 4), ("reason", "why", 8))


def _cell(v):
    if v is None:
        return "-"
    if v is True:
        return "yes"
    if v is False:
        return "no"
    return str(v)


def format_table(rows):
    """The wide table: every column (`arcopy status --wide`)."""
    cell = _cell
    head = " ".join(h.rjust(w) for _, h, w in _COLS)
    lines = [head]
    for r in rows:
        lines.append(" ".join(cell(r.get(k)).rjust(w) for k, _, w in _COLS))
    return "\n".join(lines)


# the short table: one line per pair; "why" takes what is left of the width
_SHORT = (("pair", "pair", 4), ("boards", "P > S", 9), ("primary", "P state", 9),
          ("secondary", "S state", 11), ("rpo_ms", "RPO~ms", 8), ("journal", "jrnl P/S", 9),
          ("released", "released", 8))
SHORT_MIN_WIDTH = sum(w + 1 for _, _, w in _SHORT) + 8


def why(r):
    """The short table's last column: what is not as it should be, in a few words."""
    parts = []
    if not r.get("p_answers", True):
        parts.append("%s silent" % r.get("p_name", "P"))
    if not r.get("s_answers", True):
        parts.append("%s silent" % r.get("s_name", "S"))
    if r.get("copy"):
        parts.append("copy " + r["copy"])
    if r.get("reason"):
        parts.append(r["reason"])
    if r.get("frozen"):
        parts.append("frozen")
    return ", ".join(parts) or "-"


def format_short(rows, width=100):
    """One line per pair in at most `width` columns (>= SHORT_MIN_WIDTH): pair, boards, states,
    RPO estimate (the primary's stream lag plus how far the applied image trails the newest
    held checkpoint), journal depths, the last released checkpoint and why."""
    width = max(SHORT_MIN_WIDTH, width)
    left = width - sum(w + 1 for _, _, w in _SHORT)

    def line(cells, last):
        text = " ".join(c.rjust(w) if k not in ("boards", "primary", "secondary") else c.ljust(w)
                        for c, (k, _, w) in zip(cells, _SHORT))
        if len(last) > left:
            last = last[:max(0, left - 2)] + ".."
        return (text + " " + last).rstrip()
    lines = [line([h for _, h, _ in _SHORT], "why")]
    for r in rows:
        jr = None
        if r.get("p_journal") is not None or r.get("s_journal") is not None:
            jr = "%s/%s" % (_cell(r.get("p_journal")), _cell(r.get("s_journal")))
        vals = dict(r, journal=jr)
        cells = []
        for k, _, w in _SHORT:
            c = _cell(vals.get(k))
            cells.append(c if len(c) <= w else c[:w - 1] + "~")
        lines.append(line(cells, why(r)))
    return "\n".join(lines)


def table(t, pairs, timeout=None):
    """The status table of `pairs` now."""
    names = [n for i in sorted(pairs) for n in pairs[i]]
    return format_table(pair_rows(pairs, collect(t, names, timeout)))
