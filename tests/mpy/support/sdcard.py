# Stand-in for micropython-lib's `sdcard` driver: SDCard(spi, cs, baudrate=...) with
# readblocks/writeblocks/ioctl over the rig's memory card for the board being built.
# Like the real driver it can return silently when the card rejects a data block
# (MemCard.reject_next / reject_always) and raises OSError(5) on a failed command
# (MemCard.raise_next).
import rig

_BS = 512


class SDCard:
    def __init__(self, spi, cs, baudrate=1320000):
        r = rig.current()
        card = r.cards.get(r.board)
        if card is None:
            raise OSError("no SD card")
        if cs.value() != 1:
            r.problems.append("board %s: SD CS not high before init" % r.board)
        self.card = card
        self.spi = spi
        self.cs = cs
        self.sectors = card.blocks
        # the real driver's own buffers (command, token, 512-byte dummy block)
        self.cmdbuf = bytearray(6)
        self.tokenbuf = bytearray(1)
        self.dummybuf = bytearray(_BS)

    def _check(self, n, buf):
        nb = len(buf) // _BS
        if nb == 0 or len(buf) % _BS:
            raise ValueError("Buffer length is invalid")
        if n < 0 or n + nb > self.card.blocks:
            raise OSError(5)
        return nb

    def readblocks(self, n, buf):
        nb = self._check(n, buf)
        c = self.card
        c.reads += nb
        buf[0:nb * _BS] = c.mv[n * _BS:(n + nb) * _BS]

    def writeblocks(self, n, buf):
        nb = self._check(n, buf)
        c = self.card
        if c.raise_next > 0:
            c.raise_next -= 1
            raise OSError(5)
        if c.reject_always:
            return
        if c.reject_next > 0:
            c.reject_next -= 1
            return                   # data block rejected by the card: the driver says nothing
        c.writes += nb
        c.mv[n * _BS:(n + nb) * _BS] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.sectors
        if op == 5:
            return _BS
        return None
