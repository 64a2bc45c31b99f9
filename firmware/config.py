# Board configuration: who this board is and how its links run.
# Plain attributes (no dataclasses on MicroPython); from_dict/to_dict for the
# JSON config file that provisioning writes next to main.py.
from firmware.wire import ROLE_PRIMARY, ROLE_SECONDARY, MODE_CLOCK, MODE_CLOCKLESS, MODE_SYNC, \
    POLICY_FREEZE, POLICY_CONTINUE, MAX_FRAME

DRIFT_MAX_PPM = 200            # default drift_max_ppm: two +-100 ppm crystals

_FIELDS = (
    # name, default
    ("node", None),            # node id on the site bus, 1..254
    ("role", None),            # ROLE_PRIMARY / ROLE_SECONDARY
    ("peer", None),            # node id of the counterpart at the other site
    ("site_nodes", None),      # ids of every board on this site's bus (incl. this one)
    ("group", 0),              # copy group id
    ("mode", MODE_CLOCK),
    ("policy", POLICY_FREEZE),
    ("nvol", 1),               # volumes on this board
    ("vol_blocks", 256),       # blocks per volume
    ("journal_slots", 512),    # journal ring entries
    ("img_slots", 0),          # preserved-image area, blocks (0 = nvol * vol_blocks: never fills)
    ("keep_image", True),      # secondary: keep its image through a resync (before-images, the
                               # group's anchor); False: a resync overwrites it (for perf only)
    ("bus_baud", 115200),
    ("peer_baud", 115200),
    ("autostart", False),      # start copy at boot without a host command
    ("ckpt_interval_us", 200000),
    ("cycle_us", 0),           # bus slot cycle; 0 = derived from baud and members
    ("slot_us", 0),            # one member's slot; 0 = derived from baud
    ("window", 4),             # peer link: frames in flight
    ("batch_max", 7),          # peer link: records per WRITE_BATCH frame
    ("rto_us", 0),             # peer link retransmit timeout; 0 = derived from baud
    ("keepalive_us", 200000),  # peer link: keepalive when idle
    ("peer_timeout_us", 2000000),   # peer link silent this long: peer lost
    ("member_timeout_us", 0),  # bus member silent this long: absent; 0 = 8 cycles
    ("latency_us", 0),         # expected one-way peer-link latency (for derived timeouts)
    ("pace_threshold", 0),     # pacing: journal depth above which host completions are delayed
                               # (0 = half the journal)
    ("pace_max_us", 50000),    # pacing: the delay when the journal is full (grows linearly from 0
                               # at the threshold); 0 = no pacing
    ("auto_suspend", True),    # a full primary journal suspends the pair (False: refuse the write)
    ("copy_window", 0),        # resync: copy records in the journal at most (0 = a quarter of it)
    ("fence_writes", True),    # primary whose secondary failed over: refuse host writes (S_FENCED);
                               # False: take them, marked in the change bitmap
    ("commit_wait", True),     # clock mode: a journaled write's reply waits until its stamp is
                               # below every board's sequence time (SPEC section 9, "Clock error bound and commit wait")
    ("drift_max_ppm", DRIFT_MAX_PPM),   # largest rate between two boards' clocks (ppm): the clock
                               # error bound grows by this since the last beacon or round trip
    ("sync_late_us", 200),     # beacons read later than this behind the lower end are counted
                               # (late_samples): a tuning figure, no premise of the bound
    ("cut_age_max_us", 5000000),    # primary: a write reply carries F_EXPOSED when its oldest
                               # unacknowledged journal entry is older than this (0 = never)
)

ROLES = (ROLE_PRIMARY, ROLE_SECONDARY)
MODES = (MODE_CLOCK, MODE_CLOCKLESS, MODE_SYNC)
POLICIES = (POLICY_FREEZE, POLICY_CONTINUE)


class ConfigError(ValueError):
    pass


class Config:
    def __init__(self, **kw):
        for name, default in _FIELDS:
            setattr(self, name, kw.pop(name, default))
        if kw:
            raise ConfigError("unknown config field(s): " + ", ".join(sorted(kw)))
        self.validate()
        self._derive()

    def validate(self):
        if not isinstance(self.node, int) or not 1 <= self.node <= 254:
            raise ConfigError("node must be an id 1..254, got %r" % (self.node,))
        if self.role not in ROLES:
            raise ConfigError("role must be 1 (primary) or 2 (secondary), got %r" % (self.role,))
        if not isinstance(self.peer, int) or not 1 <= self.peer <= 254:
            raise ConfigError("peer must be an id 1..254, got %r" % (self.peer,))
        if not self.site_nodes:
            raise ConfigError("site_nodes must list the ids on this site's bus")
        nodes = tuple(sorted(set(int(x) for x in self.site_nodes)))
        if len(nodes) != len(self.site_nodes):
            raise ConfigError("site_nodes has duplicate ids")
        for x in nodes:
            if not 1 <= x <= 254:
                raise ConfigError("site node id out of range: %r" % (x,))
        if self.node not in nodes:
            raise ConfigError("this node (%d) is not in site_nodes" % self.node)
        self.site_nodes = nodes
        if self.mode not in MODES:
            raise ConfigError("mode must be 0 (clock), 1 (clockless) or 2 (sync)")
        if self.mode == MODE_CLOCKLESS and len(nodes) > 30:
            # the checkpoint barrier's member mask (a beacon's tag) must stay a small int
            raise ConfigError("clockless mode allows at most 30 site_nodes")
        if self.policy not in POLICIES:
            raise ConfigError("policy must be 0 (freeze) or 1 (continue)")
        if not 1 <= self.nvol <= 255:
            raise ConfigError("nvol must be 1..255")
        if self.vol_blocks < 1 or self.journal_slots < 8:
            raise ConfigError("vol_blocks >= 1 and journal_slots >= 8 required")
        if self.img_slots < 0 or self.img_slots > 0x3FFFFFFF:
            raise ConfigError("img_slots must be 0..2**30-1 (0 = nvol * vol_blocks)")
        if self.bus_baud < 1200 or self.peer_baud < 1200:
            raise ConfigError("baud rates must be >= 1200")
        if not 1 <= self.window <= 16:
            raise ConfigError("window must be 1..16")
        if self.pace_threshold < 0 or self.pace_threshold >= self.journal_slots:
            raise ConfigError("pace_threshold must be 0..journal_slots-1 (0 = half the journal)")
        if self.pace_max_us < 0 or self.pace_max_us > 10000000:
            raise ConfigError("pace_max_us must be 0..10000000")
        if self.copy_window < 0 or self.copy_window > self.journal_slots - 4:
            raise ConfigError("copy_window must be 0..journal_slots-4 (0 = a quarter of the journal)")
        if self.cut_age_max_us < 0 or self.cut_age_max_us >= 1 << 30:
            raise ConfigError("cut_age_max_us must be 0..2**30-1 (0 = no age rule)")
        if not 1 <= self.drift_max_ppm <= 100000:
            raise ConfigError("drift_max_ppm must be 1..100000")
        if not 0 <= self.sync_late_us <= 1000000:
            raise ConfigError("sync_late_us must be 0..1000000")
        if not 1 <= self.batch_max <= 7:
            raise ConfigError("batch_max must be 1..7 (a batch must fit MAX_PAYLOAD)")
        for name in ("keepalive_us", "peer_timeout_us", "member_timeout_us", "rto_us"):
            # a time kept for long is aged to at most 2**28 us old (firmware/ticks.py)
            if not 0 <= getattr(self, name) < 1 << 28:
                raise ConfigError("%s must be 0..2**28-1 (~268 s)" % name)

    def _derive(self):
        # 10 bits per byte on an 8N1 line
        if not self.slot_us:
            # two small frames (<= 40 bytes each) plus a turnaround guard
            self.slot_us = 80 * 10000000 // self.bus_baud + 2000
        if not self.cycle_us:
            need = (len(self.site_nodes) + 1) * self.slot_us
            self.cycle_us = need if need > 50000 else 50000
        if not self.member_timeout_us:
            self.member_timeout_us = 8 * self.cycle_us
        if not self.img_slots:
            self.img_slots = self.nvol * self.vol_blocks
        if not self.pace_threshold:
            self.pace_threshold = self.journal_slots // 2
        if not self.copy_window:
            self.copy_window = self.journal_slots // 4
        if not self.rto_us:
            frame = (MAX_FRAME * 100000000 // self.peer_baud) // 10   # us per full frame
            self.rto_us = 2 * self.window * frame + 2 * self.latency_us + 100000

    def to_dict(self):
        d = {}
        for name, _ in _FIELDS:
            d[name] = getattr(self, name)
        d["site_nodes"] = list(self.site_nodes)
        return d

    @staticmethod
    def from_dict(d):
        return Config(**d)
