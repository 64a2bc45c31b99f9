"""The preserved-image area (firmware/store.py, "preserved image"): copy-on-write before-images that
keep a secondary's image of one cut through a resync, restored at failover; crash-safe at every
block write."""
import random

import pytest

from firmware.store import (Store, IMG_ON, IMG_RESTORING, IMG_FIRST)
from firmware.wire import BLOCK_SIZE
from host_tools.sim.disk import RamDisk, FaultyDisk, PowerCut

NVOL, VOLB = 2, 16


def fresh(img_slots=NVOL * VOLB):
    disk = RamDisk(Store.blocks_needed(NVOL, VOLB, 8, img_slots))
    Store.format(disk, 2, 3, 4, 7, NVOL, VOLB, 8, img_slots=img_slots)
    return disk


def mounted(disk):
    s = Store(disk)
    s.mount()
    return s


def data(i):
    return bytes(((i * 13 + k) & 0xFF for k in range(BLOCK_SIZE)))


def volumes(s):
    buf = bytearray(BLOCK_SIZE)
    out = []
    for v in range(NVOL):
        for b in range(VOLB):
            s.read_block(v, b, buf)
            out.append(bytes(buf))
    return out


def seeded(disk):
    s = mounted(disk)
    for v in range(NVOL):
        for b in range(VOLB):
            s.write_block(v, b, data(100 + v * VOLB + b))
    return s


def test_restore_brings_back_the_image_of_the_cut_and_marks_the_blocks():
    s = seeded(fresh())
    image = volumes(s)
    s.img_start(5, 5000)
    assert s.img_active() and (s.sb.img_n, s.sb.img_t) == (5, 5000) and s.img_used() == 0
    scratch = bytearray(BLOCK_SIZE)
    for i, (v, b) in enumerate([(0, 1), (1, 3), (0, 1), (0, 15), (1, 3)]):
        assert s.img_write(v, b, data(i), scratch)
    assert s.img_used() == 3                       # once per block
    assert s.img_preserved(0, 1) and not s.img_preserved(0, 2)
    assert volumes(s) != image
    s2 = mounted(s.bdev)                           # the RAM map is rebuilt at mount
    assert s2.img_used() == 3 and s2.img_preserved(1, 3)
    assert s2.img_restore(bytearray(BLOCK_SIZE)) == 3
    assert s2.sb.img_state & IMG_RESTORING
    s2.img_drop(applied_n=5, applied_t=5000)
    assert volumes(s2) == image
    assert sorted(s2.bm_iter(0)) == [1, 15] and sorted(s2.bm_iter(1)) == [3]
    assert not s2.img_active() and s2.img_used() == 0 and s2.sb.img_state == 0
    s3 = mounted(s2.bdev)
    assert s3.img_used() == 0 and not s3.img_active() and s3.sb.applied_t == 5000


def test_a_dropped_image_is_forgotten_and_a_new_one_starts_empty():
    s = seeded(fresh())
    scratch = bytearray(BLOCK_SIZE)
    s.img_start(1, 100, IMG_FIRST)
    s.img_write(0, 0, data(1), scratch)
    s.img_drop(keep=IMG_FIRST)
    assert s.sb.img_state == IMG_FIRST
    image = volumes(s)
    s.img_start(2, 200)
    assert s.sb.img_state == IMG_ON | IMG_FIRST
    s.img_write(0, 5, data(2), scratch)
    s2 = mounted(s.bdev)                           # the old generation's slot 0 is dead
    assert s2.img_used() == 1 and s2.img_preserved(0, 5) and not s2.img_preserved(0, 0)
    s2.img_restore(scratch)
    s2.img_drop()
    assert volumes(s2) == image


def test_writes_without_an_image_kept_preserve_nothing():
    s = seeded(fresh())
    assert s.img_write(0, 0, data(9), bytearray(BLOCK_SIZE))
    assert s.img_used() == 0 and not s.img_preserved(0, 0)


def test_a_full_area_refuses_the_write_and_leaves_the_image_whole():
    s = seeded(fresh(img_slots=2))
    image = volumes(s)
    s.img_start(3, 300)
    scratch = bytearray(BLOCK_SIZE)
    assert s.img_write(0, 0, data(1), scratch) and s.img_write(0, 1, data(2), scratch)
    assert s.img_free() == 0
    assert s.img_write(0, 0, data(3), scratch)     # preserved already: no slot needed
    before = volumes(s)
    assert not s.img_write(0, 2, data(4), scratch)  # a third block: refused, nothing written
    assert volumes(s) == before
    s.img_restore(scratch)
    s.img_drop()
    assert volumes(s) == image


def _play(img, steps, cut_at=None, torn=False, seed=0):
    inner = img.clone()
    fd = FaultyDisk(inner, random.Random(seed))
    s = mounted(fd)
    start = fd.writes
    if cut_at is not None:
        fd.arm_power_cut(cut_at, torn=torn)
    scratch = bytearray(BLOCK_SIZE)
    try:
        for st in steps:
            if st[0] == "start":
                s.img_start(7, 7000)
            elif st[0] == "write":
                s.img_write(st[1], st[2], data(st[3]), scratch)
            elif st[0] == "restore":
                s.img_restore(scratch)
            else:
                s.img_drop(applied_n=7, applied_t=7000)
    except PowerCut:
        return inner, True, fd.writes - start
    return inner, False, fd.writes - start


@pytest.mark.parametrize("seed", range(3))
def test_power_cut_at_every_block_write_keeps_the_image_or_redoes_the_restore(seed):
    rng = random.Random(seed)
    base = seeded(fresh()).bdev
    image = volumes(mounted(base))
    writes = [("write", rng.randrange(NVOL), rng.randrange(VOLB), rng.randrange(1000))
              for _ in range(12)]
    steps = [("start",)] + writes + [("restore",), ("drop",)]
    _, cut, total = _play(base, steps)
    assert not cut
    for k in range(total + 1):
        for torn in (False, True):
            inner, cut, _ = _play(base, steps, cut_at=k, torn=torn, seed=k)
            s = mounted(inner)
            # what boot (Secondary._rollback) or a failover to the image cut does next
            if s.sb.img_state & (IMG_ON | IMG_RESTORING):
                s.img_restore(bytearray(BLOCK_SIZE))
                s.img_drop(applied_n=7, applied_t=7000)
            assert volumes(s) == image, (k, torn)
