"""Make the flat firmware modules importable from CPython host tools.

On a board the firmware files sit flat in the filesystem and import each other by
bare name (``import wire``); on the host we put ``firmware/`` on ``sys.path``.
"""
import os
import sys

FIRMWARE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
if FIRMWARE_DIR not in sys.path:
    sys.path.insert(0, FIRMWARE_DIR)
