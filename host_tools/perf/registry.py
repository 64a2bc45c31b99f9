"""Perf sections: the registry, table printing and rate measurement shared by every section.

A section is a function ``fn(quick) -> dict`` registered with ``@section(name, help)``; it returns
``{"tables": [{"title", "columns", "rows"}], "notes": [str]}``. Sections defined in other modules
are found by listing those modules in ``SECTION_MODULES`` (imported on demand). `arcopy perf`
(host_tools/cmds/perf.py) runs them.
"""
import time

# modules that register sections when imported
SECTION_MODULES = ("host_tools.perf.codec", "host_tools.perf.sim", "host_tools.perf.figures",
                   "host_tools.perf.ops", "host_tools.perf.commit_wait", "host_tools.perf.sweep",
                   "host_tools.perf.intent")

SECTIONS = {}     # name -> (function, help)


def section(name, help):
    def register(fn):
        if name in SECTIONS:
            raise ValueError("perf section %r registered twice" % name)
        SECTIONS[name] = (fn, help)
        return fn
    return register


def load_sections():
    import importlib
    for mod in SECTION_MODULES:
        importlib.import_module(mod)


def print_table(table):
    cols = table["columns"]
    rows = [[_fmt(v) for v in row] for row in table["rows"]]
    widths = [max(len(str(c)), *(len(r[i]) for r in rows)) if rows else len(str(c)) for i, c in enumerate(cols)]
    print("  " + table["title"])
    print("  " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)))


def _fmt(v):
    """A cell as printed (the JSON keeps the number; None is "n/a")."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "%.1f" % v if abs(v) >= 10 else "%.3f" % v
    return str(v)


def _numeric(s):
    try:
        float(s.rstrip("%"))
        return True
    except ValueError:
        return False


def rate(fn, quick, min_time=None):
    """Calls per second of fn() (best of a few timed batches)."""
    min_time = min_time or (0.05 if quick else 0.4)
    n = 1
    while True:                     # calibrate the batch size
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / 5:
            break
        n *= 2
    best = dt / n
    for _ in range(2 if quick else 4):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return 1.0 / best


