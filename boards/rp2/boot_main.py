# main.py of an arcopy board (installed from boards/rp2/boot_main.py by `arcopy provision`).
#
# MicroPython runs this file after boot.py on every hard reset (not after a soft
# reset from mpremote's raw REPL). Layout on the board's flash:
#   /main.py          this file (source, so it can be read and edited at the REPL)
#   /config.json      {"board": ..., "site": ..., "config": {firmware Config fields}}
#   /fw/*.mpy         firmware (precompiled), rp2_hal, pico; /fw/manifest.json
#   /lib/sdcard.mpy   micropython-lib's SD card driver
#
# Sequence: (1) GP22 (pico.ESCAPE_PIN) held low -> the copy service is skipped and
# the REPL stays free; (2) load /config.json; (3) build the rp2 HAL; (4) mount the
# store on the SD card (format it on first boot), then run the firmware's board loop
# with the USB port as a binary host port (Ctrl-C off).
#
# Back to the REPL while the service runs: stop sending, wait one second, press
# Ctrl-C (`arcopy provision` does the same before it talks to mpremote). After an
# unexpected error the board prints it, waits RESTART_DELAY_MS with Ctrl-C working,
# then resets.
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FW_DIR = "/fw"
CONFIG_PATH = "/config.json"


def load_config(path: str = CONFIG_PATH) -> dict:
    import json
    f = open(path)
    try:
        conf = json.load(f)
    finally:
        f.close()
    if not isinstance(conf, dict) or not isinstance(conf.get("config"), dict):
        raise ValueError("%s: no 'config' table" % path)
    return conf


def escape_held(machine: "Any", board: "Any", sleep_ms: "Any") -> bool:
    """True when the escape pin reads low five times in a row (a fitted jumper)."""
    Pin = machine.Pin
    p = Pin(board.ESCAPE_PIN, Pin.IN, Pin.PULL_UP)
    sleep_ms(1)
    for _ in range(5):
        if p.value():
            return False
        sleep_ms(2)
    return True


def boot(config_path: str = CONFIG_PATH, machine: "Any" = None, **build_kw: "Any") -> "Any":
    """Escape check, config, HAL, Board (not started). None when the escape pin is held.
    build_kw (clock, host, idle, sdcard) go to rp2_hal.build; tests use them."""
    import pico
    import rp2_hal
    if machine is None:
        import machine as _machine
        machine = _machine
    clock = build_kw.get("clock")
    if clock is None:
        import time
        clock = time
    if escape_held(machine, pico, clock.sleep_ms):
        print("arcopy: GP%d is held low: copy service skipped, the REPL is yours" % pico.ESCAPE_PIN)
        return None
    conf = load_config(config_path)
    hal = rp2_hal.build(conf, pico, machine=machine, **build_kw)
    from firmware import main as fw                                   # firmware/main.py (in /fw, ahead of /)
    return hal, fw.Board(hal)


def serve(hal: "Any", board: "Any") -> None:
    """Run the copy service until the host-port escape (KeyboardInterrupt) or an error."""
    hal.open()
    try:
        board.run()
    finally:
        hal.close()


def _show_log(hal: "Any") -> None:
    if hal is not None:
        for line in hal.logs:
            print("  " + line)


def start() -> None:
    import time
    if FW_DIR not in sys.path:
        sys.path.insert(0, FW_DIR)
    hal = None
    try:
        got = boot()
        if got is None:
            return
        hal, board = got
        serve(hal, board)
    except KeyboardInterrupt:
        print("\narcopy: copy service stopped; REPL. machine.reset() starts it again. Log:")
        _show_log(hal)
        return
    except Exception as e:
        print("\narcopy: copy service failed:")
        sys.print_exception(e)
        _show_log(hal)
        import pico
        print("arcopy: resetting in %d ms (Ctrl-C to stay in the REPL)" % pico.RESTART_DELAY_MS)
        try:
            time.sleep_ms(pico.RESTART_DELAY_MS)
        except KeyboardInterrupt:
            return
        import machine
        machine.reset()


if __name__ == "__main__":
    start()
