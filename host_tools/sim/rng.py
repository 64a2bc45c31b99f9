"""Seed tree and fault options: one integer seed decides everything in a run.

``SeedTree(seed).stream("link/p0->s0")`` is a ``random.Random`` whose state is a
function of (seed, name) only (BLAKE2b of both), so streams are independent of
each other and of the order in which they are created: adding a new consumer of
randomness never shifts the draws of an existing one.

``FaultOptions.from_seed(seed, classes, ...)`` draws every fault option for the
requested fault classes from the stream "faults/<class>". A class that is not
requested leaves its options at their quiet defaults, and enabling one class
does not change what another class draws.

Fault classes (the CLI's --faults, comma separated; "all" = every class; "none"
= no faults; the primary-site disaster is always added unless told otherwise):

  loss       peer links drop whole frames and byte ranges
  corrupt    peer links flip bits (a bit error rate)
  jitter     peer links get a longer latency and a per-chunk jitter (never reordering)
  outage     peer links go silent for time windows
  drift      every board's clock runs fast or slow by some ppm
  powercut   boards lose power at a block write (maybe a torn block), then reboot
  crash      boards stop at an instant (no torn write), then reboot
  collision  site buses get line noise and spurious collision bursts
  disaster   the whole primary site is lost at an instant near the end of the run
"""
import hashlib
import math
import random

FAULT_CLASSES = ("loss", "corrupt", "jitter", "outage", "drift", "powercut", "crash",
                 "collision", "disaster")


def derive_seed(seed, *names):
    """A 64-bit integer that depends only on seed and the names (stable across runs,
    platforms and Python versions: no hash())."""
    h = hashlib.blake2b(digest_size=8, person=b"arcopy-sim")
    h.update(str(int(seed)).encode())
    for n in names:
        h.update(b"\x00")
        h.update(str(n).encode())
    return int.from_bytes(h.digest(), "little")


class SeedTree:
    """Named, independent random streams derived from one seed."""

    def __init__(self, seed, path=()):
        self.seed = int(seed)
        self.path = tuple(path)

    def stream(self, name):
        """A fresh random.Random for `name` (same name, same sequence)."""
        return random.Random(derive_seed(self.seed, *(self.path + (name,))))

    def child(self, name):
        """A subtree: child("a").stream("b") differs from stream("b") and stream("a/b")."""
        return SeedTree(self.seed, self.path + (name,))

    def randint(self, name, lo, hi):
        """One draw from the named stream (convenience for single values)."""
        return self.stream(name).randint(lo, hi)


def parse_faults(spec, disaster=True):
    """Parse a --faults value ("none", "all", "loss,corrupt", ...) into a frozenset of
    class names. The disaster class is always added unless disaster=False (then it is
    present only if named, or via "all")."""
    if spec is None:
        spec = "none"
    if isinstance(spec, (list, tuple, set, frozenset)):
        parts = [str(p).strip().lower() for p in spec]
    else:
        parts = [p.strip().lower() for p in str(spec).replace("+", ",").split(",")]
    out = set()
    for p in parts:
        if not p or p == "none":
            continue
        if p == "all":
            out.update(FAULT_CLASSES)
        elif p in FAULT_CLASSES:
            out.add(p)
        else:
            raise ValueError("unknown fault class %r (known: none, all, %s)"
                             % (p, ", ".join(FAULT_CLASSES)))
    if disaster:
        out.add("disaster")
    return frozenset(out)


def primary_name(i):
    return "p%d" % i


def secondary_name(i):
    return "s%d" % i


class FaultOptions:
    """Every fault option of one run. Plain attributes; times in virtual microseconds.

    Board names are "p0".."p{n-1}" (primaries) and "s0".."s{n-1}" (secondaries);
    peer link i joins p<i> and s<i>.
    """

    def __init__(self, seed=0, classes=frozenset(), pairs=4, duration_us=30000000):
        self.seed = int(seed)
        self.classes = frozenset(classes)
        self.pairs = pairs
        self.duration_us = duration_us
        names = [primary_name(i) for i in range(pairs)] + [secondary_name(i) for i in range(pairs)]
        self.boards = names
        # peer links (same options for both directions; each direction has its own stream)
        self.peer_latency_us = 1000      # fixed one-way latency
        self.peer_jitter_us = 0          # extra per-chunk delay drawn in [0, jitter] (no reordering)
        self.peer_frame_loss = 0.0       # probability that a transmission is lost whole
        self.peer_range_loss = 0.0       # probability that a transmission loses a byte range
        self.peer_ber = 0.0              # bit error rate on the peer lines
        self.peer_outages = {i: [] for i in range(pairs)}   # link -> [(start_us, end_us)]
        # site buses
        self.bus_ber = 0.0               # line noise (bit error rate) on both buses
        self.bus_burst_rate = 0.0        # probability a transmission is hit by a noise burst
        # boards
        self.clock_offset_us = {n: 0 for n in names}   # local clock at virtual 0
        self.drift_ppm = {n: 0.0 for n in names}
        self.power_cuts = []             # [(at_us, board, after_writes, torn, down_us)]
        self.crashes = []                # [(at_us, board, down_us)]
        self.disaster_at = None          # primary site lost at this instant (None: never)

    # ------------------------------------------------------------------------
    @classmethod
    def from_seed(cls, seed, classes, pairs=4, duration_us=30000000, offset_max_us=1 << 28):
        """Draw every option of the requested classes from the seed.

        classes: an iterable of class names (see parse_faults) or a --faults string.
        duration_us: length of the run; instants are drawn inside it.
        offset_max_us: local clocks start at a random value below this (boards booted
        at different times); drawn for every seed, whatever the classes.
        """
        if isinstance(classes, str):
            classes = parse_faults(classes, disaster=False)
        classes = frozenset(classes)
        unknown = classes - set(FAULT_CLASSES)
        if unknown:
            raise ValueError("unknown fault classes: %s" % ", ".join(sorted(unknown)))
        fo = cls(seed, classes, pairs, duration_us)
        tree = SeedTree(seed).child("faults")
        D = duration_us

        r = tree.stream("clock-offset")
        for n in fo.boards:
            fo.clock_offset_us[n] = r.randrange(offset_max_us) if offset_max_us > 0 else 0

        if "loss" in classes:
            r = tree.stream("loss")
            fo.peer_frame_loss = _log_uniform(r, 1e-3, 5e-2)
            fo.peer_range_loss = _log_uniform(r, 1e-4, 2e-2)
        if "corrupt" in classes:
            r = tree.stream("corrupt")
            fo.peer_ber = _log_uniform(r, 1e-7, 3e-5)
        if "jitter" in classes:
            r = tree.stream("jitter")
            fo.peer_latency_us = r.randint(500, 40000)
            fo.peer_jitter_us = r.randint(0, max(1000, fo.peer_latency_us))
        if "outage" in classes:
            r = tree.stream("outage")
            for i in range(pairs):
                wins = []
                for _ in range(r.randint(0, 3)):
                    length = int(_log_uniform(r, 5000, 3000000))
                    start = r.randrange(max(1, D - length))
                    wins.append((start, start + length))
                wins.sort()
                fo.peer_outages[i] = _merge(wins)
        if "drift" in classes:
            r = tree.stream("drift")
            for n in fo.boards:
                # crystals: tens of ppm; a few boards on a bad oscillator
                if r.random() < 0.1:
                    fo.drift_ppm[n] = round(r.uniform(-1000.0, 1000.0), 3)
                else:
                    fo.drift_ppm[n] = round(r.uniform(-100.0, 100.0), 3)
        if "powercut" in classes:
            r = tree.stream("powercut")
            for _ in range(r.randint(1, max(1, pairs))):
                at = r.randrange(D // 20, max(D // 20 + 1, (D * 9) // 10))
                board = r.choice(fo.boards)
                after = r.choice((0, 0, 1, 2, r.randint(3, 40)))
                torn = r.random() < 0.5
                down = int(_log_uniform(r, 1000, 2000000))
                fo.power_cuts.append((at, board, after, torn, down))
            fo.power_cuts.sort()
        if "crash" in classes:
            r = tree.stream("crash")
            for _ in range(r.randint(1, max(1, pairs))):
                at = r.randrange(D // 20, max(D // 20 + 1, (D * 9) // 10))
                board = r.choice(fo.boards)
                down = int(_log_uniform(r, 1000, 3000000))
                fo.crashes.append((at, board, down))
            fo.crashes.sort()
        if "collision" in classes:
            r = tree.stream("collision")
            fo.bus_ber = _log_uniform(r, 1e-7, 1e-5)
            fo.bus_burst_rate = _log_uniform(r, 1e-3, 3e-2)
        if "disaster" in classes:
            r = tree.stream("disaster")
            fo.disaster_at = r.randrange((D * 4) // 10, max((D * 4) // 10 + 1, (D * 9) // 10))
        return fo

    # ------------------------------------------------------------------------
    def to_dict(self):
        return {
            "seed": self.seed,
            "classes": sorted(self.classes),
            "pairs": self.pairs,
            "duration_us": self.duration_us,
            "peer_latency_us": self.peer_latency_us,
            "peer_jitter_us": self.peer_jitter_us,
            "peer_frame_loss": self.peer_frame_loss,
            "peer_range_loss": self.peer_range_loss,
            "peer_ber": self.peer_ber,
            "peer_outages": {str(k): [list(w) for w in v] for k, v in self.peer_outages.items()},
            "bus_ber": self.bus_ber,
            "bus_burst_rate": self.bus_burst_rate,
            "clock_offset_us": dict(self.clock_offset_us),
            "drift_ppm": dict(self.drift_ppm),
            "power_cuts": [list(x) for x in self.power_cuts],
            "crashes": [list(x) for x in self.crashes],
            "disaster_at": self.disaster_at,
        }

    def describe(self):
        """A short human-readable summary (one line per active class)."""
        out = ["seed %d, faults: %s" % (self.seed, ",".join(sorted(self.classes)) or "none")]
        if "loss" in self.classes:
            out.append("  loss: frame %.4f, range %.4f" % (self.peer_frame_loss, self.peer_range_loss))
        if "corrupt" in self.classes:
            out.append("  corrupt: ber %.2e" % self.peer_ber)
        if "jitter" in self.classes:
            out.append("  jitter: latency %d us + [0, %d] us" % (self.peer_latency_us, self.peer_jitter_us))
        if "outage" in self.classes:
            n = sum(len(v) for v in self.peer_outages.values())
            out.append("  outage: %d windows" % n)
        if "drift" in self.classes:
            worst = max(abs(v) for v in self.drift_ppm.values()) if self.drift_ppm else 0
            out.append("  drift: worst %.1f ppm" % worst)
        if self.power_cuts:
            out.append("  powercut: " + ", ".join("%s@%d" % (b, t) for t, b, _, _, _ in self.power_cuts))
        if self.crashes:
            out.append("  crash: " + ", ".join("%s@%d" % (b, t) for t, b, _ in self.crashes))
        if "collision" in self.classes:
            out.append("  collision: ber %.2e, burst %.4f" % (self.bus_ber, self.bus_burst_rate))
        if self.disaster_at is not None:
            out.append("  disaster at %d us" % self.disaster_at)
        return "\n".join(out)


def _log_uniform(r, lo, hi):
    return math.exp(r.uniform(math.log(lo), math.log(hi)))


def _merge(wins):
    out = []
    for s, e in wins:
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
