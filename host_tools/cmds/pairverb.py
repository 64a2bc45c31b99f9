"""What the pair verbs share: the pairs --pair/--all pick, per-board results printed or as JSON, why a board refused."""
import sys

from host_tools.cmds import chosen_pairs, emit_json


def pick(args, rig):
    """The pairs ({i: (primary, secondary)}) --pair/--all pick; says which (stdout, or stderr
    with --json)."""
    from host_tools.rig import session
    out = sys.stderr if getattr(args, "json", False) else sys.stdout
    which = chosen_pairs(args, rig, say=lambda m: print(m, file=out))
    return session.pairs(rig, which)


def state_of(t, board):
    """"p1 is SIMPLEX" (or "p1 does not answer"): what a refusal is usually about."""
    from host_tools import ops
    s = ops.status.get(t, board, 1.0)
    if s is None:
        return "%s does not answer" % board
    return "%s is %s %s, mode %s" % (board, s["role_name"], s["copy_state_name"], s["mode_name"])


def explain(t, res):
    """{board: status} -> {board: "why"} for the boards that did not answer S_OK."""
    from firmware import wire
    return {b: state_of(t, b) for b, rc in res.items() if rc != wire.S_OK}


def report(args, rig, pairs, verb, res, why=None, extra=None):
    """Print `<board>: VERB -> STATUS [(why)]` lines, or JSON keyed by pair name:
    {"command", "ok", "pairs": {name: {"primary", "secondary", "results": {board: status}}}}.
    -> exit status (1 when a board refused or did not answer)."""
    from firmware import wire
    from host_tools.rig import session
    from host_tools.transport.messages import status_name
    why = why or {}
    ok = bool(res) and all(rc == wire.S_OK for rc in res.values())
    bad = sorted(b for b, rc in res.items() if rc != wire.S_OK)
    if bad:
        print("arcopy %s: %s: %s" % (args.command, "failed" if len(bad) == len(res) else
                                     "failed on %d of %d boards" % (len(bad), len(res)),
                                     ", ".join("%s %s" % (b, status_name(res[b])) for b in bad)),
              file=sys.stderr)
    if getattr(args, "json", False):
        labels = session.pair_labels(rig)
        doc = {"command": args.command, "ok": ok, "pairs": {}}
        for i in sorted(pairs):
            p, s = pairs[i]
            doc["pairs"][labels[i]] = {
                "primary": p, "secondary": s,
                "results": {b: status_name(res[b]) for b in (p, s) if b in res},
                "why": {b: why[b] for b in (p, s) if b in why}}
        if extra:
            doc.update(extra)
        emit_json(doc)
        return 0 if ok else 1
    for b, rc in sorted(res.items()):
        line = "%s: %s -> %s" % (b, verb, status_name(rc))
        if b in why:
            line += " (%s)" % why[b]
        print(line)
    return 0 if ok else 1


def run_verb(args, verb, op, note=None):
    """A pair verb whose answer is {board: status}: pick the pairs, call op(transport, pairs)
    (after setting the interrupt `note`), report. -> exit status."""
    from host_tools.cmds import interrupt_note, run_on_rig

    def call(rig, t, prog):
        pairs = pick(args, rig)
        if note:
            interrupt_note(note)
        res = op(t, pairs)
        return pairs, res, explain(t, res)
    out = run_on_rig(args, call)
    if out is None:
        return 1
    rig, (pairs, res, why), _ = out
    return report(args, rig, pairs, verb, res, why)
