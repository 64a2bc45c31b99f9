"""firmware/main.py's event loop, in-process, over a fake HAL (no processes, no ptys)."""
from firmware.wire import (HOST_ID, ROLE_PRIMARY, S_OK, T_ERROR, T_H_READ, T_H_REPLY,
                           T_H_STATUS, T_H_WRITE)
from protocol import hostcodec
from firmware import main
from firmware.deframer import Deframer
from firmware.store import Store
from host_tools.sim.disk import RamDisk


class FakePort:
    def __init__(self):
        self.inbox = bytearray()
        self.sent = bytearray()

    def read_into(self, buf):
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        del self.inbox[:n]
        return n

    def write(self, frame):
        self.sent += frame


class FakeHal:
    def __init__(self):
        self.now = 1000
        self.disk = RamDisk(Store.blocks_needed(1, 64, 32, 64))     # img_slots: nvol * vol_blocks
        self.portlist = [FakePort(), FakePort(), FakePort()]
        self.logs = []

    def config(self):
        return dict(node=1, role=ROLE_PRIMARY, peer=101, site_nodes=[1], vol_blocks=64,
                    journal_slots=32, autostart=False)

    def block_device(self):
        return self.disk

    def ports(self):
        return self.portlist

    def ticks_us(self):
        return self.now

    def wait(self, us):
        self.now += us

    def log(self, msg):
        self.logs.append(msg)


def replies(port):
    d = Deframer()
    d.feed(bytes(port.sent))
    port.sent.clear()
    out = []
    while d.next():
        out.append((d.mtype, d.seq, bytes(d.payload)))
    return out


def test_fresh_device_is_formatted_and_host_requests_are_served():
    hal = FakeHal()
    b = main.Board(hal)
    assert any("formatting" in m for m in hal.logs)
    b.node.boot(hal.ticks_us())
    host = hal.portlist[0]
    host.inbox += hostcodec.encode(T_H_WRITE, HOST_ID, 1, bytes([0]) + (3).to_bytes(4, "little") + bytes(range(256)) * 2, seq=7)
    host.inbox += hostcodec.encode(T_H_READ, HOST_ID, 1, bytes([0]) + (3).to_bytes(4, "little"), seq=8)
    for _ in range(4):
        b.step()
    r = replies(host)
    assert (r[0][0], r[0][1], r[0][2][0]) == (T_H_REPLY, 7, S_OK)
    assert r[1][1] == 8 and r[1][2][1:] == bytes(range(256)) * 2


def test_a_frame_cut_short_does_not_stall_the_port():
    hal = FakeHal()
    b = main.Board(hal)
    b.node.boot(hal.ticks_us())
    host = hal.portlist[0]
    whole = hostcodec.encode(T_H_WRITE, HOST_ID, 1, bytes([0]) + (1).to_bytes(4, "little") + bytes(512), seq=1)
    host.inbox += whole[:100]                 # the rest never comes
    b.step()
    hal.now += 150000                         # the line stays quiet
    b.step()
    host.inbox += hostcodec.encode(T_H_STATUS, HOST_ID, 1, b"", seq=2)
    b.step()
    r = replies(host)
    kinds = [(m, s) for m, s, _ in r]
    assert (T_ERROR, 0) in kinds              # the cut frame is reported as a bad frame
    assert (T_H_REPLY, 2) in kinds            # and the next request is answered at once
    assert b.rx_ports[0].d.abandoned == 1


def test_a_damaged_store_is_never_formatted_over():
    hal = FakeHal()
    main.Board(hal)                           # formats the blank device
    hal.disk.data[0:1024] = b"\x5a" * 1024    # both superblock copies damaged
    hal.logs.clear()
    import pytest
    from firmware.store import StoreError
    with pytest.raises(StoreError):
        main.Board(hal)
    assert any("refusing to format" in m for m in hal.logs)


# -- held write replies (commit wait, pacing) on the loop ------------------------------------------
class ClockedHal(FakeHal):
    """A HAL whose clock moves: every reading takes 5 us, every block write `write_us`; `waits`
    records every sleep the loop asked for."""

    def __init__(self, write_us=0):
        super().__init__()
        self.write_us = write_us
        self.waits = []
        disk = self.disk
        wr = disk.writeblocks

        def writeblocks(n, buf, offset=0):
            self.now += self.write_us
            return wr(n, buf, offset)
        disk.writeblocks = writeblocks

    def config(self):
        c = super().config()
        c["autostart"] = True             # a blank pair: DUPLEX without a copy, writes journaled
        return c

    def ticks_us(self):
        self.now += 5
        return self.now

    def wait(self, us):
        self.waits.append(us)
        self.now += us


def _warm_duplex_master(hal):
    from firmware.wire import CS_DUPLEX
    b = main.Board(hal)
    b.node.boot(hal.ticks_us())
    b.flush()
    assert b.store.sb.copy_state == CS_DUPLEX
    while not b.node.role.ready(hal.now):      # the only board of its site: master once warm
        b.step()
    b.step()
    return b


def _write(hal, b, tag):
    """Put a host write on the host port and step until all but its last bytes are read."""
    host = hal.portlist[0]
    host.inbox += hostcodec.encode(T_H_WRITE, HOST_ID, 1, bytes([0]) + (3).to_bytes(4, "little")
                                   + bytes(512), seq=tag)
    tail = host.inbox[-8:]
    del host.inbox[-8:]
    while host.inbox:
        b.step()
    host.inbox += tail


def test_a_commit_wait_the_durable_writes_outlasted_replies_in_the_same_loop_step():
    # a master that just became the group's time holds its replies for a cycle and some slots
    # (commit wait); journal data, journal header and volume at 30 ms each outlast that hold, so
    # nothing is left to wait: the reply leaves in the step that took the write
    hal = ClockedHal()
    b = _warm_duplex_master(hal)
    p = b.node.role
    _write(hal, b, 9)                         # its last bytes arrive in the next step
    hold = p.commit_delay(hal.now, p.seq_time(hal.now))
    assert 1000 < hold < 90000
    hal.write_us = 30000
    b.step()
    r = replies(hal.portlist[0])
    assert [(m, s, body[0]) for m, s, body in r] == [(T_H_REPLY, 9, S_OK)]
    assert p.commit_waits == 1                # it was held, and the hold was over


def test_a_reply_held_a_little_longer_is_not_left_to_an_oversleeping_wait():
    # a hold shorter than main._SPIN_US is waited for in the loop (as a board's sleep_us spins),
    # not in hal.wait, which on an OS sleeps past its timeout
    hal = ClockedHal()
    b = _warm_duplex_master(hal)
    p = b.node.role
    _write(hal, b, 11)
    # the write's last bytes arrive when the hold has half of _SPIN_US left
    hal.now += p.commit_delay(hal.now, p.seq_time(hal.now)) - main._SPIN_US // 2
    hal.waits.clear()
    slept = []
    for _ in range(400):
        slept = list(hal.waits)              # before the step that sends the reply
        b.step()
        if hal.portlist[0].sent:
            break
    r = replies(hal.portlist[0])
    assert [(m, s, body[0]) for m, s, body in r] == [(T_H_REPLY, 11, S_OK)]
    assert p.commit_waits == 1
    assert slept == [], "the loop slept while a reply was due within %d us" % main._SPIN_US


def test_a_due_held_reply_leaves_before_the_timers_do_their_work():
    # the hold ends while a bus cycle with a checkpoint is due too: the reply is written to the
    # host port before the cycle journals the checkpoint (its block writes)
    hal = ClockedHal()
    b = _warm_duplex_master(hal)
    p = b.node.role
    _write(hal, b, 13)
    b.step()                                  # journaled, held (a new master's hold)
    assert b.node.deferred and p.commit_waits == 1
    log = []
    host = hal.portlist[0]
    hw = host.write

    def host_write(frame):
        log.append("reply")
        hw(frame)
    host.write = host_write
    wr = hal.disk.writeblocks

    def writeblocks(n, buf, offset=0):
        log.append("block")
        return wr(n, buf, offset)
    hal.disk.writeblocks = writeblocks
    hal.now = max(b.node.reply_due, p.next_ckpt) + 1000   # both due at the next step
    b.step()
    assert "reply" in log and "block" in log, log
    assert log.index("reply") < log.index("block"), log
