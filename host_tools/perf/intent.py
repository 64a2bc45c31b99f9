"""`arcopy perf intent`: what write intents cost (issue #13 item 3), measured in the simulator.

A host write outside DUPLEX (SIMPLEX, SUSPENDED, PENDING on a primary; FAILED_OVER on a
secondary) is sealed in the store's intent area before it is marked and written
(firmware/store.py, "write intent"). The figure counts the SD block writes each host write
costs in each state, on the primary's disk, over a run of writes to random blocks (a
block's first mark also writes a bitmap block; a DUPLEX write also gets its share of the
checkpoint markers and superblock commits), and gives the write's device time at a
stated time per single-block SD write: the simulator gives block writes no duration, so
that column is derived (block writes x the stated time), not measured.
"""
import random
import struct

from firmware import wire

from host_tools.perf.registry import section
from host_tools.perf.figures import build_world

SD_BLOCK_WRITE_MS = 1.5     # a typical single-block write of an SD card in SPI mode (stated)


def _write(world, name, blk, tag):
    data = (tag.encode() * 512)[:wire.BLOCK_SIZE]
    return world.call(name, wire.T_H_WRITE, struct.pack(wire.P_H_WRITE, 0, blk) + data)[0]


def _per_write(world, name, n, rng, tag, blocks=None):
    disk = world.boards[name].disk
    w0 = disk.writes
    for i in range(n):
        blk = rng.randrange(128) if blocks is None else blocks[i % len(blocks)]
        assert _write(world, name, blk, "%s%d" % (tag, i)) == wire.S_OK
        world.run(world.now + 2000)
    return (disk.writes - w0) / float(n)


def measure(quick, seed=1):
    n = 40 if quick else 200
    rng = random.Random(seed)
    world, _ = build_world(seed=seed, pairs=1, duration_s=600, rate=None)
    world.run(1500000)
    p = world.primaries[0].name
    rows = []
    duplex = _per_write(world, p, n, rng, "d")
    rows.append(("DUPLEX (journaled)", duplex))
    assert world.command(p, wire.C_SUSPEND)[0] == wire.S_OK
    world.run(world.now + 300000)
    st = world.boards[p].node.store
    unmarked = [b for b in range(128) if not st.bm_test(0, b)]
    first = _per_write(world, p, len(unmarked), rng, "f", blocks=unmarked)
    rows.append(("SUSPENDED, block not yet marked", first))
    again = _per_write(world, p, n, rng, "a", blocks=unmarked)
    rows.append(("SUSPENDED, block marked already", again))
    table = {"title": "SD block writes per host write (primary)",
             "columns": ["state", "block writes", "without intents (old path)", "device ms at %.1f ms/block"
                         % SD_BLOCK_WRITE_MS],
             "rows": []}
    before = {"DUPLEX (journaled)": duplex, "SUSPENDED, block not yet marked": 2.0,
              "SUSPENDED, block marked already": 1.0}
    for name, v in rows:
        table["rows"].append([name, round(v, 2), round(before[name], 2),
                              round(v * SD_BLOCK_WRITE_MS, 2)])
    return {"tables": [table], "notes": [
        "before intents a marked write was the volume block (and the bitmap block at its first "
        "mark); now the intent's data and header come first: +2 block writes, so a write outside "
        "DUPLEX costs about what a journaled DUPLEX write costs",
        "the first volume write of another kind after marked writes clears the intent once "
        "(+1 block write); the boot after a power cut reads and may rewrite one block"],
        "rows": {name: v for name, v in rows}}


@section("intent", "write intents: SD block writes per host write in DUPLEX and outside it (simulator)")
def run(quick):
    return measure(quick)
