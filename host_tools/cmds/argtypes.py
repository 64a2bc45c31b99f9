"""Argument types for the commands' parsers: numbers checked where they are parsed (usage error, exit 2)."""
import argparse


def _number(kind, text, lo, lo_ok, what):
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not %s" % (text, what))
    if v != v or v < lo or (v == lo and not lo_ok):       # NaN, or below the bound
        raise argparse.ArgumentTypeError("%r is not %s" % (text, what))
    return v


def positive_int(text):
    return _number(int, text, 0, False, "a whole number above 0")


def nonneg_int(text):
    return _number(int, text, 0, True, "a whole number >= 0")


def positive_float(text):
    return _number(float, text, 0.0, False, "a number above 0")
