"""An emulated board to provision: the MicroPython unix port as a board's REPL on a pseudo-terminal.

    python -m host_tools.provision.unixboard --dir FLASH --port LINK --bus TTY --peer TTY
                                             [--name p0] [--heap 209936w] [--sd-blocks N]

What `arcopy provision` meets on a real RP2040 is a MicroPython REPL on a USB serial port, a
flash file system and an SD card. This process is that board for a rig file's `hal = "unix"`
boards (boards/unix/):
- the flash is the directory FLASH (the interpreter's working directory: mpremote's
  `fs cp x :main.py` lands there);
- the USB serial port is a pty whose slave LINK names (a symlink, as a board's stable
  /dev/serial/by-id name); the interpreter's stdin/stdout is a second pty, and this process
  moves bytes between the two (the unix port cannot create a pty, and the interpreter must
  see a terminal for its REPL);
- power: the interpreter runs `micropython -X heapsize=HEAP` in FLASH: with `-i main.py` when
  a main.py is there (as a board runs main.py at boot, the REPL after it), else the bare REPL.
  When it exits (the copy service failed, or `sys.exit()`: the installer's reset) the board
  boots again, as a Pico does after machine.reset();
- the wiring: FLASH/hw.json names its SD card (the image file FLASH/sd.img, N blocks, blank
  until the firmware formats it), its bus and peer ports (hub ptys) and its name; the board's
  main.py (boards/unix/boot_main.py) reads it, as rp2_hal.build() reads the Pico's pin map.
SIGTERM stops the interpreter and this process.
"""
import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
import tty

from host_tools.rig import manager as rigmgr


def _pty():
    m, s = os.openpty()
    tty.setraw(s)
    os.set_blocking(m, False)
    return m, s


def _write(fd, data):
    try:
        os.write(fd, data)
    except OSError:
        pass                       # nobody reads that side: dropped, as on a line


class UnixBoard:
    def __init__(self, flash, link, bus, peer, name="board", heap=rigmgr.PICO_HEAP,
                 sd_blocks=32768):
        self.flash = os.path.abspath(flash)
        os.makedirs(self.flash, exist_ok=True)
        img = os.path.join(self.flash, "sd.img")
        if not os.path.exists(img):
            from host_tools.rig.board import create_image
            create_image(img, sd_blocks)
        with open(os.path.join(self.flash, "hw.json"), "w") as f:
            json.dump({"name": name, "image": img, "bus_tty": bus, "peer_tty": peer}, f)
        self.heap = heap
        self.usb_m, self.usb_s = _pty()           # the tools' side
        self.con_m, self.con_s = _pty()           # the interpreter's stdin/stdout
        rigmgr.emulated._publish_link(os.ttyname(self.usb_s), link)
        self.link = link
        self.proc = None
        self.boots = 0
        self.stop = False

    def power_on(self):
        argv = [rigmgr.micropython_command(), "-X", "heapsize=%s" % self.heap]
        if os.path.exists(os.path.join(self.flash, "main.py")):
            argv += ["-i", "main.py"]
        self.proc = subprocess.Popen(argv, cwd=self.flash, stdin=self.con_s, stdout=self.con_s,
                                     stderr=self.con_s, start_new_session=True)
        self.boots += 1

    def run(self):
        signal.signal(signal.SIGTERM, lambda *a: setattr(self, "stop", True))
        self.power_on()
        while not self.stop:
            r, _, _ = select.select([self.usb_m, self.con_m], [], [], 0.05)
            for fd, other in ((self.usb_m, self.con_m), (self.con_m, self.usb_m)):
                if fd in r:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if data:
                        _write(other, data)
            if self.proc.poll() is not None:          # the board reset: boot again
                time.sleep(0.2)
                self.power_on()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.unlink(self.link)
        except OSError:
            pass


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.provision.unixboard",
                                 description="An emulated board: MicroPython's REPL on a pty, a "
                                             "directory as its flash.")
    ap.add_argument("--dir", required=True, help="the board's flash (a directory)")
    ap.add_argument("--port", required=True, help="symlink to create for its serial port")
    ap.add_argument("--bus", required=True, help="its site bus port (a hub pty)")
    ap.add_argument("--peer", required=True, help="its peer link port (a hub pty)")
    ap.add_argument("--name", default="board")
    ap.add_argument("--heap", default=rigmgr.PICO_HEAP)
    ap.add_argument("--sd-blocks", type=int, default=32768)
    a = ap.parse_args(argv)
    UnixBoard(a.dir, a.port, a.bus, a.peer, a.name, a.heap, a.sd_blocks).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
