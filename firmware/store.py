# Crash-safe block store on a raw block device (SD card, RAM disk, image file).
#
# Runs unchanged under MicroPython and CPython: struct + binascii only, buffers
# allocated once at mount, no per-byte loops on the I/O paths.
#
# Block device protocol (as MicroPython's AbstractBlockDev): readblocks(n, buf),
# writeblocks(n, buf), ioctl(4, 0) -> block count, ioctl(5, 0) -> 512.
# A device exception (a simulated power cut, an SD driver error) propagates
# unchanged; a device that reports failure through a return value, or (with
# verify=True) whose read-back differs, raises StoreError(S_IO_ERROR).
#
# On-disk layout (512-byte blocks), all integers little-endian:
#
#   block 0, 1        superblock copies A and B. Each commit writes the copy that
#                     does not hold the current state, with generation + 1; mount
#                     takes the valid copy (magic, version, CRC) with the highest
#                     generation. A torn superblock write fails its CRC, so the
#                     other copy (the previous state) wins.
#   bm_start ..       change bitmaps: bm_blocks blocks per volume, volume v first
#                     at bm_start + v * bm_blocks. Each block holds BM_BITS bits
#                     (bytes 0..507, bit i of block b = volume block b*BM_BITS+i,
#                     LSB first) and a CRC-32 of those bytes at 508. A block that
#                     fails its CRC at mount is taken as all-set (conservative:
#                     resync copies more, never less) and rewritten.
#   j_start ..        journal ring: journal_slots slots of two blocks each; slot s
#                     is [data block, header block] at j_start + 2*s. Entry jseq
#                     lives in slot jseq % journal_slots. The data block is written
#                     first, then the header block: magic, jseq, kind, vol, blk,
#                     lseq, t, data CRC, header CRC over all of that (bytes 38..
#                     are zero). A header that passes its CRC proves that its data
#                     block was written completely.
#   x_start ..        write-intent area (2 blocks, data and header taking turns): a block
#                     written outside the journal is sealed here first, so a power cut
#                     cannot leave it torn nor changed but unmarked ("write intent" below).
#   img_start ..      preserved-image area: img_slots slots of two blocks each (before-images
#                     that keep a secondary's last consistent image through a resync).
#                     Slot s is [data block, header block] at img_start + 2*s; see
#                     "preserved image" below (superblock: img_n, img_t, img_state, img_gen).
#   vol_start ..      volumes: volume v, block b at vol_start + v*vol_blocks + b.
#
# Journal liveness: the superblock holds j_head, a persisted lower bound of the
# first live jseq. Mount scans forward from it: live entries are the run of valid
# headers whose jseq is exactly j_head, j_head+1, ...; a stale header (earlier lap:
# jseq - journal_slots) or a torn one ends the run. Trims move the RAM head only
# (lazy; any commit persists the current head). Before an append reuses the slot of
# jseq J - journal_slots, the store makes sure the persisted head is beyond that
# jseq (committing the superblock if needed), so a reboot never mistakes a reused
# slot for part of the live run, nor loses live entries behind it.
#
# RAM: the journal index is one bytearray of IDX_SIZE (16) bytes per slot: kind, vol,
# blk, lseq, and t as 48 bits (t_lo u32, t_hi u16). The data CRC is not kept: reading
# a record's data also reads its header block (CRC-checked) for it. A t of 2**48 - 2**32
# or more (no clock gets there: 8.9 years of microseconds) is kept as t_hi = 0xFFFF and
# read back from the header block when asked for. The bitmaps are kept as one bytearray
# (512 bytes per bitmap block) plus 2 bytes of set-bit count per bitmap block.

import struct
import binascii

from firmware.wire import (const, BLOCK_SIZE, S_OUT_OF_RANGE, S_UNKNOWN_VOLUME, S_BAD_LENGTH,
                  S_JOURNAL_FULL, S_IO_ERROR, S_BAD_STATE, S_NOT_READY)

_crc32 = binascii.crc32
_pack_into = struct.pack_into
_unpack_from = struct.unpack_from

# journal entry kinds
J_RECORD = const(1)
J_CHECKPOINT = const(2)
J_COPY = const(3)          # resync copy of a volume block (data); never redone at boot
J_JOIN = const(4)          # end of a resync: the pair joins the group at checkpoint (n, t)

# superblock `mode` and `policy`: 0 = never set by the operator (the config file's value
# rules); SB_SAVED | value = set by SET_MODE / SET_POLICY, which wins over the config at boot
SB_SAVED = const(0x80)

STORE_VERSION = const(2)
SB_MAGIC = const(0x1A5C5B01)      # below 2**30: a small int on MicroPython too
J_MAGIC = const(0x1A5C4A01)
X_MAGIC = const(0x1A5C5801)       # write-intent header

# write-intent header block: magic, seq, vol, blk, data CRC, then the header CRC-32
# over those 20 bytes; the rest of the block is zero
_XH_FMT = "<IIIII"
_XH_CRC_OFF = const(20)

I_MAGIC = const(0x1A5C4901)       # preserved-image slot header

# superblock img_state bits (the preserved image, and the resync it protects)
IMG_ON = const(0x01)          # before-images are kept: the image of cut (img_n, img_t) is recoverable
IMG_RESTORING = const(0x02)   # a restore was started: a boot redoes it before anything else
IMG_FIRST = const(0x04)       # a first copy onto a secondary that never had an image
IMG_JOINED = const(0x08)      # joined at applied_t; not yet confirmed by a group release at/after it

# superblock: header, then the fields in _SB_FIELDS order, then CRC-32 of all that
_SB_HDR = "<IHHQ"                 # magic, version, reserved, generation
_SB_HDR_SIZE = const(16)
_SB_FIELDS = (
    "role", "node", "peer", "group", "nvol", "copy_state", "mode", "policy",
    "vol_blocks", "journal_slots", "incarnation",
    "uip_n", "uip_t", "applied_n", "applied_t", "ckpt_n", "ckpt_t",
    "next_lseq", "suspend_reason", "t_floor",
    "j_head", "bm_start", "bm_blocks", "j_start", "vol_start", "dev_blocks",
    "x_start", "img_start", "img_slots",
    "img_n", "img_t", "img_state", "img_gen",
)
_SB_TYPES = "BBBBBBBB" "III" "IQIQIQ" "IIQ" "QIIIII" "III" "IQBI"
_SB_BODY = "<" + _SB_TYPES
_SB_BODY_SIZE = struct.calcsize(_SB_BODY)
SB_CRC_OFF = _SB_HDR_SIZE + _SB_BODY_SIZE
# fields commit() may not change: geometry and the journal head (store-managed)
_SB_FIXED = ("nvol", "vol_blocks", "journal_slots", "j_head", "bm_start", "bm_blocks",
             "j_start", "vol_start", "dev_blocks", "x_start", "img_start", "img_slots")

# journal header block: magic, jseq, then the index entry (kind, vol, blk, lseq, t,
# data crc: bytes 12..33, copied verbatim to/from the RAM index), then the header
# CRC-32 over bytes 0..33. The rest of the block is zero.
_JH_FMT = "<IQ"
JH_IDX_OFF = const(12)
JH_CRC_OFF = const(34)
# the header's entry (kind, vol, blk, lseq, t, data crc)
_JH_ENT_FMT = "<BBIIQI"
# RAM index entry per slot: kind, vol, blk, lseq, t_lo, t_hi (t_hi 0xFFFF: t on the card)
_IDX_FMT = "<BBIIIH"
IDX_SIZE = const(16)
_T_HI_CARD = const(0xFFFF)

# One 512-byte buffer builds every header block (journal, write intent, preserved image).
# The journal's header is the longest (bytes 0..37); the intent's and the image's end at
# byte 23, so they zero bytes 24..37 (_HDR_GAP) first: every header block keeps "the rest
# of the block is zero", whatever the buffer held before.
_HDR_END = const(38)              # JH_CRC_OFF + 4
_HDR_SHORT = const(24)            # _XH_CRC_OFF + 4 (the image header: the same length)
_HDR_GAP = bytes(_HDR_END - _HDR_SHORT)

BM_BYTES = const(508)             # bitmap bytes per block (the CRC takes the rest)
BM_BITS = const(4064)
_ZERO_MV = memoryview(bytes(BLOCK_SIZE))
_BM_ZERO = _ZERO_MV[0:BM_BYTES]
_BM_ONES = memoryview(b"\xff" * BM_BYTES)

_U32_MAX = 0xFFFFFFFF
_U64_MAX = (1 << 64) - 1


class StoreError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


class JournalFull(StoreError):
    def __init__(self, msg):
        super().__init__(S_JOURNAL_FULL, msg)


class SuperBlock:
    """Decoded superblock: one attribute per field, plus `generation`.
    Read-only by convention: change fields with Store.commit(**changes)."""

    def __init__(self):
        self.generation = 0
        for name in _SB_FIELDS:
            setattr(self, name, 0)

    def as_dict(self):
        d = {"generation": self.generation}
        for name in _SB_FIELDS:
            d[name] = getattr(self, name)
        return d


def _max_of(code):
    if code == "B":
        return 0xFF
    if code == "H":
        return 0xFFFF
    if code == "I":
        return _U32_MAX
    return _U64_MAX


# built once: each field's largest value (_SB_FIELDS order), and the field's index by name for
# the fields commit() may change (-1: a fixed one)
_SB_MAX = tuple(_max_of(c) for c in _SB_TYPES)
_SB_POS = dict((name, -1 if name in _SB_FIXED else i) for i, name in enumerate(_SB_FIELDS))
_J_HEAD_I = _SB_FIELDS.index("j_head")
_J_HEAD_MAX = _SB_MAX[_J_HEAD_I]
_SB_TAIL_ZERO = _ZERO_MV[SB_CRC_OFF + 4:]


def _check_rc(r, what, n):
    # a block device reports failure by returning a nonzero value (MicroPython's
    # extended protocol returns 0 or a negative errno); None means success.
    if r is not None and r != 0 and r is not True:
        raise StoreError(S_IO_ERROR, "%s of block %d failed (device returned %r)" % (what, n, r))


def _dev_write(bdev, n, buf, vbuf):
    _check_rc(bdev.writeblocks(n, buf), "write", n)
    if vbuf is not None:
        _check_rc(bdev.readblocks(n, vbuf), "verify read", n)
        if vbuf != buf:
            raise StoreError(S_IO_ERROR, "write of block %d did not stick (verify mismatch)" % n)


def _pack_sb(buf, generation, values):
    _pack_into(_SB_HDR, buf, 0, SB_MAGIC, STORE_VERSION, 0, generation)
    _pack_into(_SB_BODY, buf, _SB_HDR_SIZE, *values)
    _pack_into("<I", buf, SB_CRC_OFF, _crc32(memoryview(buf)[0:SB_CRC_OFF]))


def _parse_sb(buf):
    """-> (generation, values tuple) or None when the copy is not valid."""
    magic, version, _rsv, gen = _unpack_from(_SB_HDR, buf, 0)
    if magic != SB_MAGIC or version != STORE_VERSION:
        return None
    (crc,) = _unpack_from("<I", buf, SB_CRC_OFF)
    if crc != _crc32(memoryview(buf)[0:SB_CRC_OFF]):
        return None
    return gen, _unpack_from(_SB_BODY, buf, _SB_HDR_SIZE)


def _bm_seal(mv, off):
    # mv: memoryview over bitmap bytes; off: start of a 512-byte bitmap block
    _pack_into("<I", mv, off + BM_BYTES, _crc32(mv[off:off + BM_BYTES]))


def _popcount(mv):
    # bit count of a bitmap block (mount time only)
    x = int.from_bytes(bytes(mv), "little")
    if x == 0:
        return 0
    return bin(x).count("1")


class Store:
    def __init__(self, bdev, verify=False):
        self.bdev = bdev
        self.verify = verify
        self.sb = None
        self._buf = bytearray(BLOCK_SIZE)       # superblock / journal header scratch
        self._mv = memoryview(self._buf)
        self._scan_mv = self._mv[0:JH_CRC_OFF]
        self._sbcrc_mv = self._mv[0:SB_CRC_OFF]         # what a superblock's CRC covers
        self._sbtail_mv = self._mv[SB_CRC_OFF + 4:]     # zero in a superblock block
        self._sbv = None                        # the superblock's values (_SB_FIELDS order) = sb's
        # the one header buffer: journal, write-intent and preserved-image headers are built
        # here in turn (see _HDR_END); _xbuf and _ihbuf are the same object
        self._hbuf = bytearray(BLOCK_SIZE)
        self._hcrc_mv = memoryview(self._hbuf)[0:JH_CRC_OFF]
        self._xbuf = self._ihbuf = self._hbuf
        self._xcrc_mv = self._ihcrc = memoryview(self._hbuf)[0:_XH_CRC_OFF]
        self._hgap = memoryview(self._hbuf)[_HDR_SHORT:_HDR_END]
        self._hhead = memoryview(self._hbuf)[0:_HDR_END]
        self._vbuf = bytearray(BLOCK_SIZE) if verify else None
        self._cur = 0                           # superblock copy holding the current state
        self._idx = None                        # journal index (bytearray), None = not mounted
        self._head = 0                          # first live jseq (RAM)
        self._tail = 0                          # next jseq to assign
        self._slots = 0
        self._bm = None
        self._bmv = None
        self._bmc = None                        # per bitmap block set-bit counts ("<H" each)
        self._bmtot = None                      # per volume set-bit totals
        self.bm_repaired = 0                    # bitmap blocks found torn at mount
        self._x_live = False                    # the write-intent header on disk is valid
        self.head_commits = 0                   # superblock commits forced by appends

    # ---- format / mount -------------------------------------------------------
    @staticmethod
    def blocks_needed(nvol, vol_blocks, journal_slots, img_slots=0):
        """Device size (blocks) the layout needs: 2 superblocks, the bitmaps, the
        journal ring (2 blocks a slot), the intent area (2), the preserved-image area
        (2 blocks a slot) and the volumes."""
        bm_blocks = (vol_blocks + BM_BITS - 1) // BM_BITS
        return (2 + nvol * bm_blocks + 2 * journal_slots + 2 + 2 * img_slots
                + nvol * vol_blocks)

    @staticmethod
    def format(bdev, role, node, peer, group, nvol, vol_blocks, journal_slots, verify=False,
               img_slots=0):
        """Lay out a fresh device. Not crash-safe itself: a power cut during format
        leaves no valid superblock (mount then fails), never a half-old store."""
        for name, v, lo, hi in (("role", role, 0, 255), ("node", node, 0, 255),
                                ("peer", peer, 0, 255), ("group", group, 0, 255),
                                ("nvol", nvol, 1, 255), ("vol_blocks", vol_blocks, 1, _U32_MAX),
                                ("journal_slots", journal_slots, 2, 0x3FFFFFFF),
                                ("img_slots", img_slots, 0, 0x3FFFFFFF)):
            if not isinstance(v, int) or v < lo or v > hi:
                raise StoreError(S_OUT_OF_RANGE, "format: %s=%r not in %d..%d" % (name, v, lo, hi))
        bs = bdev.ioctl(5, 0)
        if bs is not None and bs != BLOCK_SIZE:
            raise StoreError(S_IO_ERROR, "block size %r, need %d" % (bs, BLOCK_SIZE))
        count = bdev.ioctl(4, 0)
        bm_blocks = (vol_blocks + BM_BITS - 1) // BM_BITS
        bm_start = 2
        j_start = bm_start + nvol * bm_blocks
        x_start = j_start + 2 * journal_slots
        img_start = x_start + 2
        vol_start = img_start + 2 * img_slots
        dev_blocks = vol_start + nvol * vol_blocks       # == Store.blocks_needed(...)
        if dev_blocks > count:
            raise StoreError(S_OUT_OF_RANGE, "device too small: layout needs %d blocks, device has %d"
                             % (dev_blocks, count))
        buf = bytearray(BLOCK_SIZE)
        vbuf = bytearray(BLOCK_SIZE) if verify else None
        # 1. invalidate both superblock copies first
        _dev_write(bdev, 0, buf, vbuf)
        _dev_write(bdev, 1, buf, vbuf)
        # 2. no journal header may survive from an earlier life of the device
        for s in range(journal_slots):
            _dev_write(bdev, j_start + 2 * s + 1, buf, vbuf)
        # ... nor an intent (either of its two blocks may hold the header) or
        # preserved-image header
        _dev_write(bdev, x_start, buf, vbuf)
        _dev_write(bdev, x_start + 1, buf, vbuf)
        for s in range(img_slots):
            _dev_write(bdev, img_start + 2 * s + 1, buf, vbuf)
        # 3. empty bitmaps
        mv = memoryview(buf)
        _bm_seal(mv, 0)
        for b in range(nvol * bm_blocks):
            _dev_write(bdev, bm_start + b, buf, vbuf)
        # 4. the superblock, both copies (generations 1 and 2)
        sb = SuperBlock()
        sb.role = role
        sb.node = node
        sb.peer = peer
        sb.group = group
        sb.nvol = nvol
        sb.vol_blocks = vol_blocks
        sb.journal_slots = journal_slots
        sb.next_lseq = 1
        sb.bm_start = bm_start
        sb.bm_blocks = bm_blocks
        sb.j_start = j_start
        sb.vol_start = vol_start
        sb.dev_blocks = dev_blocks
        sb.x_start = x_start
        sb.img_start = img_start
        sb.img_slots = img_slots
        values = [getattr(sb, name) for name in _SB_FIELDS]
        for copy in (0, 1):
            mv[0:BLOCK_SIZE] = _ZERO_MV
            _pack_sb(buf, copy + 1, values)
            _dev_write(bdev, copy, buf, vbuf)

    def mount(self):
        bdev = self.bdev
        bs = bdev.ioctl(5, 0)
        if bs is not None and bs != BLOCK_SIZE:
            raise StoreError(S_IO_ERROR, "block size %r, need %d" % (bs, BLOCK_SIZE))
        count = bdev.ioctl(4, 0)
        best = None
        cur = 0
        for copy in (0, 1):
            self._rd(copy, self._buf)
            got = _parse_sb(self._buf)
            if got is not None and (best is None or got[0] > best[0]):
                best = got
                cur = copy
        if best is None:
            raise StoreError(S_IO_ERROR, "no valid superblock (device not formatted, or both copies damaged)")
        sb = SuperBlock()
        sb.generation = best[0]
        for name, v in zip(_SB_FIELDS, best[1]):
            setattr(sb, name, v)
        bm_blocks = (sb.vol_blocks + BM_BITS - 1) // BM_BITS
        if (sb.nvol < 1 or sb.journal_slots < 2 or sb.bm_blocks != bm_blocks or sb.bm_start != 2
                or sb.j_start != sb.bm_start + sb.nvol * bm_blocks
                or sb.x_start != sb.j_start + 2 * sb.journal_slots
                or sb.img_start != sb.x_start + 2
                or sb.vol_start != sb.img_start + 2 * sb.img_slots
                or sb.dev_blocks != sb.vol_start + sb.nvol * sb.vol_blocks):
            raise StoreError(S_IO_ERROR, "superblock geometry is inconsistent")
        if sb.dev_blocks > count:
            raise StoreError(S_IO_ERROR, "device has %d blocks, superblock needs %d" % (count, sb.dev_blocks))
        self.sb = sb
        self._sbv = list(best[1])               # (with sb: what commit() starts from)
        self._cur = cur
        self._load_bitmaps()
        self._scan_journal()
        self._x_load()
        self._img_load()

    def _need(self):
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")

    # ---- device helpers -------------------------------------------------------
    def _rd(self, n, buf):
        r = self.bdev.readblocks(n, buf)              # (_check_rc, inline)
        if r is not None and r != 0 and r is not True:
            raise StoreError(S_IO_ERROR, "read of block %d failed (device returned %r)" % (n, r))

    def _wr(self, n, buf):
        # _dev_write, inline (the store's one write path: every block it writes)
        r = self.bdev.writeblocks(n, buf)
        if r is not None and r != 0 and r is not True:
            raise StoreError(S_IO_ERROR, "write of block %d failed (device returned %r)" % (n, r))
        vbuf = self._vbuf
        if vbuf is not None:
            _check_rc(self.bdev.readblocks(n, vbuf), "verify read", n)
            if vbuf != buf:
                raise StoreError(S_IO_ERROR, "write of block %d did not stick (verify mismatch)" % n)

    # ---- superblock -----------------------------------------------------------
    def commit(self, **changes):
        """Write the superblock with `changes` applied (and the current journal head)
        to the other copy, generation + 1. Durable when it returns; on an error the
        in-RAM superblock is left unchanged."""
        sbv = self._sbv
        if self._idx is None or sbv is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        # _sbv holds the values of sb (valid: unpacked at mount or checked here when
        # set), so only the changed fields and the journal head are checked
        values = list(sbv)
        bad = False
        for name in changes:
            i = _SB_POS.get(name)
            if i is None:
                raise StoreError(S_BAD_STATE, "unknown superblock field %r" % (name,))
            if i < 0:
                raise StoreError(S_BAD_STATE, "superblock field %r is not changeable" % (name,))
            v = changes[name]
            if not isinstance(v, int) or v < 0 or v > _SB_MAX[i]:
                bad = True
            values[i] = v
        head = self._head
        values[_J_HEAD_I] = head
        if bad or not isinstance(head, int) or head < 0 or head > _J_HEAD_MAX:
            self._commit_error(values)
        sb = self.sb
        gen = sb.generation + 1
        other = self._cur ^ 1
        buf = self._buf
        self._sbtail_mv[0:] = _SB_TAIL_ZERO
        _pack_into(_SB_HDR, buf, 0, SB_MAGIC, STORE_VERSION, 0, gen)
        _pack_into(_SB_BODY, buf, _SB_HDR_SIZE, *values)
        _pack_into("<I", buf, SB_CRC_OFF, _crc32(self._sbcrc_mv))
        self._wr(other, buf)
        # durable: now publish it in RAM (the unchanged fields hold their values already)
        self._cur = other
        sb.generation = gen
        for name in changes:
            setattr(sb, name, changes[name])
        sb.j_head = head
        self._sbv = values

    @staticmethod
    def _commit_error(values):
        # the first field (in _SB_FIELDS order) whose value does not fit
        i = 0
        for name in _SB_FIELDS:
            v = values[i]
            if not isinstance(v, int) or v < 0 or v > _SB_MAX[i]:
                raise StoreError(S_OUT_OF_RANGE, "superblock field %s=%r out of range" % (name, v))
            i += 1

    # ---- volumes --------------------------------------------------------------
    def _chk(self, vol, blk):
        sb = self.sb
        if not isinstance(vol, int) or vol < 0 or vol >= sb.nvol:
            raise StoreError(S_UNKNOWN_VOLUME, "unknown volume %r (have %d)" % (vol, sb.nvol))
        if not isinstance(blk, int) or blk < 0 or blk >= sb.vol_blocks:
            raise StoreError(S_OUT_OF_RANGE, "block %r out of range 0..%d" % (blk, sb.vol_blocks - 1))

    def read_block(self, vol, blk, buf):
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        self._chk(vol, blk)
        if len(buf) != BLOCK_SIZE:
            raise StoreError(S_BAD_LENGTH, "read buffer is %d bytes, need %d" % (len(buf), BLOCK_SIZE))
        self._rd(self.sb.vol_start + vol * self.sb.vol_blocks + blk, buf)

    def write_block(self, vol, blk, data):
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        self._chk(vol, blk)
        if len(data) != BLOCK_SIZE:
            raise StoreError(S_BAD_LENGTH, "block data is %d bytes, need %d" % (len(data), BLOCK_SIZE))
        if self._x_live:
            self._x_clear()      # a write intent must never redo over a newer write
        self._wr(self.sb.vol_start + vol * self.sb.vol_blocks + blk, data)

    # ---- journal --------------------------------------------------------------
    def _scan_journal(self):
        sb = self.sb
        nslots = sb.journal_slots
        self._idx = bytearray(nslots * IDX_SIZE)
        buf = self._buf
        hmv = self._scan_mv
        head = sb.j_head
        j = head
        while j - head < nslots:
            slot = j % nslots
            self._rd(sb.j_start + 2 * slot + 1, buf)
            magic, jseq = _unpack_from(_JH_FMT, buf, 0)
            if magic != J_MAGIC or jseq != j:
                break
            (hcrc,) = _unpack_from("<I", buf, JH_CRC_OFF)
            if hcrc != _crc32(hmv):
                break
            kind, vol, blk, lseq, t, _dcrc = _unpack_from(_JH_ENT_FMT, buf, JH_IDX_OFF)
            if kind < J_RECORD or kind > J_JOIN:
                break
            self._idx_put(slot, kind, vol, blk, lseq, t)
            j += 1
        self._slots = nslots
        self._head = head
        self._tail = j

    def _idx_put(self, slot, kind, vol, blk, lseq, t):
        thi = t >> 32
        if thi >= _T_HI_CARD:
            thi = _T_HI_CARD                    # read back from the header when asked for
        _pack_into(_IDX_FMT, self._idx, slot * IDX_SIZE, kind, vol, blk, lseq,
                         t & 0xFFFFFFFF, thi)

    def _header(self, jseq):
        """Read live entry jseq's header block into _buf and check it; -> its entry tuple
        (kind, vol, blk, lseq, t, data crc)."""
        buf = self._buf
        self._rd(self.sb.j_start + 2 * (jseq % self._slots) + 1, buf)
        magic, hj = _unpack_from(_JH_FMT, buf, 0)
        (hcrc,) = _unpack_from("<I", buf, JH_CRC_OFF)
        if magic != J_MAGIC or hj != jseq or hcrc != _crc32(self._scan_mv):
            raise StoreError(S_IO_ERROR, "journal entry %d: header block fails its check" % jseq)
        return _unpack_from(_JH_ENT_FMT, buf, JH_IDX_OFF)

    def _append(self, kind, lseq, vol, blk, t, data, dcrc):
        j = self._tail
        nslots = self._slots
        if j - self._head >= nslots:
            raise JournalFull("journal full: %d of %d slots live" % (j - self._head, nslots))
        if j - nslots >= self.sb.j_head:
            # the slot still holds jseq j - nslots, which a reboot would take as
            # live: persist the head past it before overwriting
            self.head_commits += 1
            self.commit()
        slot = j % nslots
        base = self.sb.j_start + 2 * slot
        if data is not None:
            self._wr(base, data)
        buf = self._hbuf
        _pack_into(_JH_FMT, buf, 0, J_MAGIC, j)
        _pack_into(_JH_ENT_FMT, buf, JH_IDX_OFF, kind, vol, blk, lseq, t, dcrc)
        _pack_into("<I", buf, JH_CRC_OFF, _crc32(self._hcrc_mv))
        self._wr(base + 1, buf)
        thi = t >> 32                           # _idx_put, inline
        if thi >= _T_HI_CARD:
            thi = _T_HI_CARD
        _pack_into(_IDX_FMT, self._idx, slot * IDX_SIZE, kind, vol, blk, lseq, t & 0xFFFFFFFF, thi)
        self._tail = j + 1
        return j

    def j_append_record(self, lseq, vol, blk, t, data, kind=J_RECORD):
        """Journal one block write (kind J_RECORD), or one resync copy of a block
        (J_COPY); durable when it returns. -> jseq."""
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        if kind != J_RECORD and kind != J_COPY:
            raise StoreError(S_BAD_STATE, "kind %r is not a data entry" % (kind,))
        self._chk(vol, blk)
        if len(data) != BLOCK_SIZE:
            raise StoreError(S_BAD_LENGTH, "record data is %d bytes, need %d" % (len(data), BLOCK_SIZE))
        if not isinstance(lseq, int) or lseq < 0 or lseq > _U32_MAX:
            raise StoreError(S_OUT_OF_RANGE, "lseq %r out of range" % (lseq,))
        if not isinstance(t, int) or t < 0 or t > _U64_MAX:
            raise StoreError(S_OUT_OF_RANGE, "time %r out of range" % (t,))
        return self._append(kind, lseq, vol, blk, t, data, _crc32(data))

    def j_append_checkpoint(self, n, t, kind=J_CHECKPOINT):
        """Journal a checkpoint marker CHECKPOINT(n, t) (or, kind J_JOIN, the marker
        that ends a resync); durable when it returns. -> jseq."""
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        if kind != J_CHECKPOINT and kind != J_JOIN:
            raise StoreError(S_BAD_STATE, "kind %r is not a marker" % (kind,))
        if not isinstance(n, int) or n < 0 or n > _U32_MAX:
            raise StoreError(S_OUT_OF_RANGE, "checkpoint n %r out of range" % (n,))
        if not isinstance(t, int) or t < 0 or t > _U64_MAX:
            raise StoreError(S_OUT_OF_RANGE, "time %r out of range" % (t,))
        return self._append(kind, n, 0, 0, t, None, 0)

    def j_entry(self, jseq):
        """-> (jseq, kind, lseq, vol, blk, t) of one live entry."""
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        if jseq < self._head or jseq >= self._tail:
            raise StoreError(S_OUT_OF_RANGE, "jseq %r not live (%d..%d)" % (jseq, self._head, self._tail - 1))
        kind, vol, blk, lseq, tlo, thi = _unpack_from(
            _IDX_FMT, self._idx, (jseq % self._slots) * IDX_SIZE)
        if thi == _T_HI_CARD:
            t = self._header(jseq)[4]
        else:
            t = tlo | thi << 32 if thi else tlo
        return (jseq, kind, lseq, vol, blk, t)

    def j_entries(self):
        """Iterator of live entries (jseq, kind, lseq, vol, blk, t) in append order
        (for a checkpoint, lseq holds n). Tolerates trims/appends while iterating."""
        self._need()
        j = self._head
        while j < self._tail:
            if j < self._head:
                j = self._head
                continue
            # j_entry(j), inline (j is live)
            kind, vol, blk, lseq, tlo, thi = _unpack_from(_IDX_FMT, self._idx, (j % self._slots) * IDX_SIZE)
            if thi == _T_HI_CARD:
                t = self._header(j)[4]
            else:
                t = tlo | thi << 32 if thi else tlo
            yield (j, kind, lseq, vol, blk, t)
            j += 1

    def j_read_data(self, jseq, buf):
        """Read the block of live record `jseq` into buf (512 bytes); checks its CRC."""
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        if jseq < self._head or jseq >= self._tail:
            raise StoreError(S_OUT_OF_RANGE, "jseq %r not live (%d..%d)" % (jseq, self._head, self._tail - 1))
        if len(buf) != BLOCK_SIZE:
            raise StoreError(S_BAD_LENGTH, "read buffer is %d bytes, need %d" % (len(buf), BLOCK_SIZE))
        slot = jseq % self._slots
        off = slot * IDX_SIZE
        kind = self._idx[off]
        if kind != J_RECORD and kind != J_COPY:
            raise StoreError(S_BAD_STATE, "journal entry %d is not a record" % jseq)
        dcrc = self._header(jseq)[5]
        self._rd(self.sb.j_start + 2 * slot, buf)
        if _crc32(buf) != dcrc:
            raise StoreError(S_IO_ERROR, "journal entry %d: data block fails its CRC" % jseq)

    def j_trim(self, upto_jseq):
        """Drop live entries with jseq < upto_jseq (persisted lazily)."""
        self._need()
        if upto_jseq > self._tail:
            upto_jseq = self._tail
        if upto_jseq > self._head:
            self._head = upto_jseq

    def j_depth(self):
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        return self._tail - self._head

    def j_free(self):
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        return self._slots - (self._tail - self._head)

    def j_capacity(self):
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        return self._slots

    def j_first(self):
        """jseq of the oldest live entry (== j_next() when empty)."""
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        return self._head

    def j_next(self):
        """jseq the next append will get."""
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        return self._tail

    # ---- change bitmaps -------------------------------------------------------
    def _load_bitmaps(self):
        sb = self.sb
        nblk = sb.nvol * sb.bm_blocks
        bm = bytearray(nblk * BLOCK_SIZE)
        bmv = memoryview(bm)
        bmc = bytearray(2 * nblk)
        tot = [0] * sb.nvol
        repaired = 0
        for g in range(nblk):
            off = g * BLOCK_SIZE
            self._rd(sb.bm_start + g, bmv[off:off + BLOCK_SIZE])
            (crc,) = _unpack_from("<I", bm, off + BM_BYTES)
            if crc == _crc32(bmv[off:off + BM_BYTES]):
                c = _popcount(bmv[off:off + BM_BYTES])
            else:
                c = self._bm_fill(bmv, g)
                repaired += 1
            _pack_into("<H", bmc, 2 * g, c)
            tot[g // sb.bm_blocks] += c
        self._bm = bm
        self._bmv = bmv
        self._bmc = bmc
        self._bmtot = tot
        self.bm_repaired = repaired
        # rewrite the repaired blocks so they are valid again
        if repaired:
            for g in range(nblk):
                off = g * BLOCK_SIZE
                (crc,) = _unpack_from("<I", bm, off + BM_BYTES)
                if crc != _crc32(bmv[off:off + BM_BYTES]):
                    _bm_seal(bmv, off)
                    self._wr(sb.bm_start + g, bmv[off:off + BLOCK_SIZE])

    def _bm_fill(self, bmv, g):
        # set every valid bit of bitmap block g (global index); -> bits set
        sb = self.sb
        bi = g % sb.bm_blocks
        nvalid = sb.vol_blocks - bi * BM_BITS
        if nvalid > BM_BITS:
            nvalid = BM_BITS
        off = g * BLOCK_SIZE
        bmv[off:off + BM_BYTES] = _BM_ZERO
        full = nvalid >> 3
        if full:
            bmv[off:off + full] = _BM_ONES[0:full]
        rem = nvalid & 7
        if rem:
            bmv[off + full] = (1 << rem) - 1
        # leave the CRC stale on purpose: _load_bitmaps rewrites blocks whose CRC fails
        return nvalid

    def _bm_locate(self, vol, blk):
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        self._chk(vol, blk)
        bi = blk // BM_BITS
        bit = blk - bi * BM_BITS
        return vol * self.sb.bm_blocks + bi, bit

    def _bm_update(self, g, delta):
        c = _unpack_from("<H", self._bmc, 2 * g)[0] + delta
        _pack_into("<H", self._bmc, 2 * g, c)
        self._bmtot[g // self.sb.bm_blocks] += delta
        off = g * BLOCK_SIZE
        _bm_seal(self._bmv, off)
        self._wr(self.sb.bm_start + g, self._bmv[off:off + BLOCK_SIZE])

    def bm_set(self, vol, blk):
        g, bit = self._bm_locate(vol, blk)
        i = g * BLOCK_SIZE + (bit >> 3)
        m = 1 << (bit & 7)
        if self._bm[i] & m:
            return
        self._bm[i] |= m
        self._bm_update(g, 1)

    def _bm_mark(self, vol, blk):
        # bm_set of a (vol, blk) the caller has checked (mounted, in range)
        bi = blk // BM_BITS
        bit = blk - bi * BM_BITS
        g = vol * self.sb.bm_blocks + bi
        i = g * BLOCK_SIZE + (bit >> 3)
        m = 1 << (bit & 7)
        bm = self._bm
        if bm[i] & m:
            return
        bm[i] |= m
        self._bm_update(g, 1)

    def bm_clear(self, vol, blk):
        g, bit = self._bm_locate(vol, blk)
        i = g * BLOCK_SIZE + (bit >> 3)
        m = 1 << (bit & 7)
        if not self._bm[i] & m:
            return
        self._bm[i] &= ~m & 0xFF
        self._bm_update(g, -1)

    def bm_test(self, vol, blk):
        g, bit = self._bm_locate(vol, blk)
        return bool(self._bm[g * BLOCK_SIZE + (bit >> 3)] & (1 << (bit & 7)))

    def bm_count(self, vol):
        self._need()
        self._chk(vol, 0)
        return self._bmtot[vol]

    def bm_iter(self, vol):
        """Iterator of the set block numbers of `vol`, ascending (a snapshot per
        bitmap block: bits changed while iterating may or may not be seen)."""
        self._need()
        self._chk(vol, 0)
        nb = self.sb.bm_blocks
        vb = self.sb.vol_blocks
        bm = self._bm
        for bi in range(nb):
            g = vol * nb + bi
            left = _unpack_from("<H", self._bmc, 2 * g)[0]
            off = g * BLOCK_SIZE
            byte = 0
            while left > 0 and byte < BM_BYTES:
                v = bm[off + byte]
                if v:
                    base = bi * BM_BITS + (byte << 3)
                    k = 0
                    while v:
                        if v & 1:
                            if base + k >= vb:
                                return
                            left -= 1
                            yield base + k
                        v >>= 1
                        k += 1
                byte += 1

    def bm_total(self):
        """Set bits over every volume."""
        self._need()
        n = 0
        for c in self._bmtot:
            n += c
        return n

    def bm_set_all(self, vol):
        """Mark every block of `vol` (a full copy)."""
        self._bm_fill_vol(vol, True)

    def _bm_fill_vol(self, vol, ones):
        """Set (ones) or clear every bit of `vol`, writing only the bitmap blocks that change."""
        self._need()
        self._chk(vol, 0)
        nb = self.sb.bm_blocks
        for bi in range(nb):
            g = vol * nb + bi
            c = _unpack_from("<H", self._bmc, 2 * g)[0]
            if ones:
                n = self._bm_fill(self._bmv, g)
            else:
                n = 0
                if c:
                    off = g * BLOCK_SIZE
                    self._bmv[off:off + BM_BYTES] = _BM_ZERO
            if n != c:
                self._bm_update(g, n - c)

    def bm_first(self, vol, start):
        """The first set block of `vol` at or after `start`, or None."""
        self._need()
        self._chk(vol, 0)
        sb = self.sb
        nb = sb.bm_blocks
        bm = self._bm
        bi = start // BM_BITS
        while bi < nb:
            g = vol * nb + bi
            if _unpack_from("<H", self._bmc, 2 * g)[0]:
                base = bi * BM_BITS
                lo = start - base if start > base else 0
                byte = lo >> 3
                off = g * BLOCK_SIZE
                while byte < BM_BYTES:
                    v = bm[off + byte]
                    if v:
                        for k in range(8):
                            b = base + (byte << 3) + k
                            if v & (1 << k) and b >= start:
                                return b if b < sb.vol_blocks else None
                    byte += 1
            bi += 1
        return None

    def bm_clear_all(self, vol):
        self._bm_fill_vol(vol, False)

    # ---- misc -----------------------------------------------------------------
    def stats(self):
        return {
            "generation": self.sb.generation if self.sb else 0,
            "j_depth": self._tail - self._head,
            "j_capacity": self._slots,
            "j_first": self._head,
            "j_next": self._tail,
            "j_head_persisted": self.sb.j_head if self.sb else 0,
            "head_commits": self.head_commits,
            "bm_repaired": self.bm_repaired,
        }

    # ---- write intent ---------------------------------------------------------
    # A block written outside the journal (a marked write: SIMPLEX, SUSPENDED, PENDING,
    # FAILED_OVER) is sealed in the intent area first, then marked, then written. The
    # area's two blocks take turns: intent seq s puts its data in block x_start + 1 - (s & 1),
    # then its header (magic, seq, vol, blk, data CRC, header CRC) in x_start + (s & 1).
    # So the data of intent s+1 overwrites the header of intent s before anything else:
    # a valid header at its seq's place proves that its own data block is whole and that
    # no newer intent began (no CRC of the data is relied on for that: blocks that end
    # with their own CRC-32 all share one CRC). After a power cut, x_redo() (at boot,
    # before anything writes a volume) compares the volume block with the sealed copy and
    # rewrites it when they differ (torn, or never written), marking it. Only the newest
    # marked write can be in flight, so one intent suffices. Every other volume write
    # (journal, copy, apply, redo) clears a live intent first, so a stale intent never
    # redoes over newer data. Cost per marked write: 2 block writes (data, header), plus
    # 1 header write at the first other volume write after marked writes.

    def _x_load(self):
        """Mount: is there a valid intent on disk? (kept for x_redo)"""
        self.x_seq = 0
        self.x_redone = 0                          # valid intents found at mount and settled
        self.x_repaired = 0                        # of those, volume blocks that differed
        self.x_last = None                         # (vol, blk) of the last repaired block
        found = None
        for k in (0, 1):
            h = self._x_read_header(k)
            if h is not None and (found is None or h[0] > found[0]):
                found = h
        self._x_found = found
        self._x_live = found is not None
        if found is not None:
            self.x_seq = found[0]

    def _x_read_header(self, k):
        """-> (seq, vol, blk, dcrc) of a valid intent header in block x_start + k that
        belongs there (seq parity), or None."""
        buf = self._buf
        self._rd(self.sb.x_start + k, buf)
        magic, seq, vol, blk, dcrc = _unpack_from(_XH_FMT, buf, 0)
        if magic != X_MAGIC or (seq & 1) != k:
            return None
        (hcrc,) = _unpack_from("<I", buf, _XH_CRC_OFF)
        if hcrc != _crc32(self._mv[0:_XH_CRC_OFF]):
            return None
        if vol >= self.sb.nvol or blk >= self.sb.vol_blocks:
            return None
        return seq, vol, blk, dcrc

    def _x_clear(self):
        self._hhead[0:_HDR_END] = _ZERO_MV[0:_HDR_END]
        self._wr(self.sb.x_start + (self.x_seq & 1), self._xbuf)
        self._x_live = False
        self._x_found = None

    def x_write(self, vol, blk, data):
        """A marked write, torn-proof: seal `data` in the intent area, mark the block in
        the change bitmap, then write it to the volume. Durable and marked when it returns."""
        if self._idx is None:
            raise StoreError(S_NOT_READY, "store is not mounted")
        self._chk(vol, blk)
        if len(data) != BLOCK_SIZE:
            raise StoreError(S_BAD_LENGTH, "block data is %d bytes, need %d" % (len(data), BLOCK_SIZE))
        sb = self.sb
        self._x_found = None                        # a redo not yet done is superseded
        seq = self.x_seq + 1
        if seq > 0x3FFFFFFF:
            seq = 2                                 # (keeps the parity turn)
        k = seq & 1
        self.x_seq = seq
        # the data first, where the previous intent's header was: from here on no header
        # of an older intent exists
        self._wr(sb.x_start + 1 - k, data)
        buf = self._xbuf
        self._hgap[0:] = _HDR_GAP
        _pack_into(_XH_FMT, buf, 0, X_MAGIC, seq, vol, blk, _crc32(data))
        _pack_into("<I", buf, _XH_CRC_OFF, _crc32(self._xcrc_mv))
        self._wr(sb.x_start + k, buf)
        self._x_live = True
        self._bm_mark(vol, blk)                     # (checked above)
        self._wr(sb.vol_start + vol * sb.vol_blocks + blk, data)

    def x_redo(self, buf):
        """Boot: settle the intent found at mount. If the volume block differs from the
        sealed copy (torn or never written by a power cut), rewrite it from the copy and
        mark it. Then clear the intent. `buf`: 512-byte scratch.
        -> (vol, blk, repaired) or None when there was no valid intent."""
        self._need()
        found = self._x_found
        if found is None:
            return None
        seq, vol, blk, dcrc = found
        sb = self.sb
        self._rd(sb.x_start + 1 - (seq & 1), buf)
        if _crc32(buf) != dcrc:
            # cannot happen by a power cut (the header follows its data); a damaged card
            self._x_clear()
            return None
        cur = self._buf
        self._rd(sb.vol_start + vol * sb.vol_blocks + blk, cur)
        repaired = cur != buf
        if repaired:
            self.bm_set(vol, blk)
            self._wr(sb.vol_start + vol * sb.vol_blocks + blk, buf)
            self.x_repaired += 1
            self.x_last = (vol, blk)
        self.x_redone += 1
        self._x_clear()
        return vol, blk, repaired
    # ---- preserved image ------------------------------------------------------
    # Copy-on-write before-images that keep a secondary's image of cut (sb.img_n,
    # sb.img_t) recoverable while a resync, or cuts applied after that one, overwrite
    # its volume. Slots fill in order from 0; slot s = [data block, header block] at
    # img_start + 2*s. Header: magic, generation (sb.img_gen), vol, blk, data CRC,
    # then a CRC-32 of those 20 bytes. A block is preserved at most once per
    # generation (its first overwrite): the data block is written, then the header,
    # then (by the caller) the volume block. Live slots are the run of valid headers of
    # the current generation from slot 0, so a torn header ends the run and its volume
    # block was never overwritten. Dropping the image is one superblock commit
    # (img_gen + 1: every older header is dead). A restore commits IMG_RESTORING, writes
    # every live slot back (marking the block in the change bitmap) and ends with the
    # caller's img_drop(); a boot that finds IMG_RESTORING redoes it (idempotent).
    # RAM: one bit per volume block (preserved or not); headers are built in the store's one
    # header buffer (see _HDR_END).
    def _img_load(self):
        sb = self.sb
        self._imap = bytearray((sb.nvol * sb.vol_blocks + 7) >> 3)
        self._img_used = 0
        if not sb.img_state & (IMG_ON | IMG_RESTORING):
            return
        buf = self._buf
        s = 0
        while s < sb.img_slots:
            got = self._img_header(s, buf)
            if got is None:
                break
            vol, blk, dcrc = got
            if vol >= sb.nvol or blk >= sb.vol_blocks:
                break
            i = vol * sb.vol_blocks + blk
            self._imap[i >> 3] |= 1 << (i & 7)
            s += 1
        self._img_used = s

    def _img_header(self, s, buf):
        """(vol, blk, data crc) of live slot s, or None (not of this generation, torn)."""
        self._rd(self.sb.img_start + 2 * s + 1, buf)
        magic, gen, vol, blk, dcrc, hcrc = _unpack_from("<IIIIII", buf, 0)
        if magic != I_MAGIC or gen != self.sb.img_gen or hcrc != _crc32(memoryview(buf)[0:20]):
            return None
        return vol, blk, dcrc

    def img_active(self):
        """Are before-images kept (an image of cut (img_n, img_t) is recoverable)?"""
        return bool(self.sb.img_state & IMG_ON)

    def img_used(self):
        return self._img_used

    def img_free(self):
        return self.sb.img_slots - self._img_used

    def img_start(self, n, t, state=0):
        """Keep the volumes as they are now as the image of cut (n, t): from here on
        img_write preserves every block before its first overwrite. Durable."""
        self._need()
        self.commit(img_n=n, img_t=t, img_gen=(self.sb.img_gen + 1) & 0x3FFFFFFF,
                    img_state=(self.sb.img_state & ~(IMG_ON | IMG_RESTORING)) | IMG_ON | state)
        self._img_clear_ram()

    def img_drop(self, keep=0, **fields):
        """Forget the preserved image (one commit, with `fields`); img_state keeps the bits
        in `keep` (IMG_FIRST, IMG_JOINED) only."""
        self._need()
        self.commit(img_n=0, img_t=0, img_gen=(self.sb.img_gen + 1) & 0x3FFFFFFF,
                    img_state=self.sb.img_state & keep, **fields)
        self._img_clear_ram()

    def img_flags(self, state):
        """Set img_state to `state` (its IMG_ON and IMG_RESTORING bits are kept)."""
        keep = self.sb.img_state & (IMG_ON | IMG_RESTORING)
        if self.sb.img_state != keep | state:
            self.commit(img_state=keep | state)

    def _img_clear_ram(self):
        m = self._imap
        m[0:len(m)] = bytes(len(m))
        self._img_used = 0

    def img_preserved(self, vol, blk):
        i = vol * self.sb.vol_blocks + blk
        return bool(self._imap[i >> 3] & (1 << (i & 7)))

    def img_preserve(self, vol, blk, buf):
        """Save the current content of (vol, blk) as its before-image unless it is saved
        already or no image is kept. False: the area is full (nothing was written)."""
        sb = self.sb
        if not sb.img_state & IMG_ON:
            return True
        self._chk(vol, blk)
        i = vol * sb.vol_blocks + blk
        m = 1 << (i & 7)
        if self._imap[i >> 3] & m:
            return True
        s = self._img_used
        if s >= sb.img_slots:
            return False
        self.read_block(vol, blk, buf)
        base = sb.img_start + 2 * s
        self._wr(base, buf)
        h = self._ihbuf
        self._hgap[0:] = _HDR_GAP
        _pack_into("<IIIII", h, 0, I_MAGIC, sb.img_gen, vol, blk, _crc32(buf))
        _pack_into("<I", h, 20, _crc32(self._ihcrc))
        self._wr(base + 1, h)
        self._imap[i >> 3] |= m
        self._img_used = s + 1
        return True

    def img_write(self, vol, blk, data, buf):
        """write_block, preserving the block's before-image first (buf: 512-byte scratch,
        not `data`). False: the area is full, nothing was written."""
        if not self.img_preserve(vol, blk, buf):
            return False
        self.write_block(vol, blk, data)
        return True

    def img_restore(self, buf, mark=True):
        """Write every preserved block back: the volumes are the image of cut (img_n,
        img_t) again. Leaves IMG_RESTORING set: the caller ends it with img_drop(...)
        (a boot that finds it set calls this again). mark: set each restored block in the
        change bitmap (it differs from the peer's). -> blocks restored."""
        self._need()
        sb = self.sb
        if not sb.img_state & IMG_RESTORING:
            self.commit(img_state=sb.img_state | IMG_RESTORING)
        n = self._img_used
        h = self._ihbuf
        for s in range(n):
            got = self._img_header(s, h)
            if got is None:
                raise StoreError(S_IO_ERROR, "preserved image slot %d: header unreadable" % s)
            vol, blk, dcrc = got
            self._rd(sb.img_start + 2 * s, buf)
            if _crc32(buf) != dcrc:
                raise StoreError(S_IO_ERROR, "preserved image slot %d: data fails its CRC" % s)
            self.write_block(vol, blk, buf)
            if mark:
                self.bm_set(vol, blk)
        return n
