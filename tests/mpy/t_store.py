# Plain script (no pytest): exercises firmware/store.py under MicroPython and CPython.
# Runs format / mount / superblock commits / volumes / journal / bitmap / reboot on an
# in-memory block device defined here, and prints "ALL OK" at the end.
try:
    from firmware import store
except ImportError:  # CPython, run from anywhere
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from firmware import store

import gc
from firmware.store import Store, StoreError, JournalFull, J_RECORD, J_CHECKPOINT
from firmware.wire import S_UNKNOWN_VOLUME, S_OUT_OF_RANGE, S_BAD_LENGTH, S_JOURNAL_FULL, S_IO_ERROR

BS = 512


class MemDisk:
    def __init__(self, nblocks):
        self.n = nblocks
        self.mem = bytearray(nblocks * BS)
        self.mv = memoryview(self.mem)
        self.writes = 0
        self.fail_next = False

    def readblocks(self, n, buf):
        ln = len(buf)
        buf[0:ln] = self.mv[n * BS:n * BS + ln]

    def writeblocks(self, n, buf):
        if self.fail_next:          # a driver that reports failure by status
            self.fail_next = False
            return -5
        ln = len(buf)
        self.mv[n * BS:n * BS + ln] = buf
        self.writes += ln // BS
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return BS
        return 0


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_error(code, fn, *args):
    try:
        fn(*args)
    except StoreError as e:
        check(e.code == code, "wrong code %r (want %r): %s" % (e.code, code, e))
        return e
    raise AssertionError("no StoreError from %r" % (fn,))


def block(i):
    b = bytearray(BS)
    for k in range(0, BS, 64):
        b[k] = (i + k) & 0xFF
    b[BS - 1] = i & 0xFF
    return b


NVOL = 2
VOLB = 100
SLOTS = 8
disk = MemDisk(2 + NVOL + 2 * SLOTS + 2 + NVOL * VOLB)     # no preserved-image area
Store.format(disk, 2, 5, 6, 1, NVOL, VOLB, SLOTS)

s = Store(disk)
s.mount()
check(s.sb.role == 2 and s.sb.node == 5 and s.sb.peer == 6 and s.sb.group == 1, "ids")
check(s.sb.nvol == NVOL and s.sb.vol_blocks == VOLB and s.sb.journal_slots == SLOTS, "geometry")
check(s.j_depth() == 0 and s.j_free() == SLOTS, "empty journal")

# superblock commits alternate and survive a reboot, with 64-bit times
T_BIG = (1 << 62) + 12345
g = s.sb.generation
s.commit(uip_n=3, uip_t=T_BIG, copy_state=2)
s.commit(applied_n=3, applied_t=T_BIG + 1)
check(s.sb.generation == g + 2, "generation")
r = Store(disk)
r.mount()
check(r.sb.uip_n == 3 and r.sb.uip_t == T_BIG and r.sb.applied_t == T_BIG + 1, "sb fields")
check(r.sb.copy_state == 2 and r.sb.generation == g + 2, "sb reboot")
# damage the newest copy: the previous one wins
newest = r._cur
disk.mem[newest * BS + 30] ^= 1
r = Store(disk)
r.mount()
check(r.sb.applied_n == 0 and r.sb.uip_n == 3, "fallback copy")
r.commit(applied_n=4)
s = Store(disk)
s.mount()
check(s.sb.applied_n == 4, "commit after fallback")

# volumes
buf = bytearray(BS)
s.write_block(1, 99, block(7))
s.read_block(1, 99, buf)
check(buf == block(7), "volume data")
expect_error(S_UNKNOWN_VOLUME, s.write_block, 2, 0, block(0))
expect_error(S_OUT_OF_RANGE, s.read_block, 0, 100, buf)
expect_error(S_BAD_LENGTH, s.write_block, 0, 0, b"abc")
disk.fail_next = True
expect_error(S_IO_ERROR, s.write_block, 0, 0, block(1))

# journal: append, wrap around, full, trim, reboot
for i in range(SLOTS):
    if i == 3:
        check(s.j_append_checkpoint(1, T_BIG) == i, "ckpt jseq")
    else:
        check(s.j_append_record(100 + i, i % NVOL, i, T_BIG + i, block(i)) == i, "rec jseq")
e = expect_error(S_JOURNAL_FULL, s.j_append_checkpoint, 2, 0)
check(isinstance(e, JournalFull), "JournalFull class")
ents = list(s.j_entries())
check(len(ents) == SLOTS and ents[3] == (3, J_CHECKPOINT, 1, 0, 0, T_BIG), "entries")
check(ents[5] == (5, J_RECORD, 105, 1, 5, T_BIG + 5), "record entry")
s.j_read_data(5, buf)
check(buf == block(5), "journal data")
nxt = SLOTS
for lap in range(3 * SLOTS):
    s.j_trim(nxt - 3)
    check(s.j_append_record(nxt, 0, nxt % VOLB, nxt, block(nxt)) == nxt, "wrap jseq")
    nxt += 1
live = list(s.j_entries())
r = Store(disk)
r.mount()
got = list(r.j_entries())
check(got[-len(live):] == live, "journal after reboot")
check([x[0] for x in got] == list(range(got[0][0], nxt)), "consecutive jseq")
r.j_read_data(nxt - 1, buf)
check(buf == block(nxt - 1), "journal data after reboot")
r.j_trim(nxt)
r.commit()
r = Store(disk)
r.mount()
check(r.j_depth() == 0 and r.j_next() == nxt, "trim persisted")

# bitmap
for b in (0, 7, 8, 50, 99):
    r.bm_set(0, b)
r.bm_set(1, 42)
r.bm_clear(0, 8)
check(r.bm_test(0, 7) and not r.bm_test(0, 8), "bm_test")
s = Store(disk)
s.mount()
check(list(s.bm_iter(0)) == [0, 7, 50, 99] and s.bm_count(0) == 4, "bitmap reboot")
check(list(s.bm_iter(1)) == [42] and s.bm_count(1) == 1, "bitmap vol 1")
s.bm_clear_all(0)
s = Store(disk)
s.mount()
check(s.bm_count(0) == 0 and s.bm_count(1) == 1, "bm_clear_all")

# index memory: one compact record per slot
gc.collect()
SL2 = 1000
big = MemDisk(2 + 1 + 2 * SL2 + 2 + 4)
Store.format(big, 1, 1, 2, 0, 1, 4, SL2)
bs = Store(big)
bs.mount()
data = block(1)
for i in range(SL2):
    bs.j_append_record(i, 0, i & 3, T_BIG + i, data)
HAVE_MEM = hasattr(gc, "mem_alloc")    # MicroPython only
gc.collect()
a0 = gc.mem_alloc() if HAVE_MEM else 0
bs2 = Store(big)
bs2.mount()
gc.collect()
used = gc.mem_alloc() - a0 if HAVE_MEM else 0
check(bs2.j_depth() == SL2, "big journal")
# the index is one bytearray of 22 bytes per slot, whatever the depth (the heap
# delta is only printed: the WebAssembly port cannot collect garbage mid-script)
check(isinstance(bs2._idx, bytearray) and len(bs2._idx) == SL2 * store.IDX_SIZE, "index size")
n = 0
for ent in bs2.j_entries():
    n += 1
check(n == SL2, "iterate big journal")
print("mount of %d slots: index %d bytes, heap delta %d bytes" % (SL2, len(bs2._idx), used))
print("ALL OK")
