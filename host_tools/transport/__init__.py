"""Transports: how host tools reach a board's host port (serial line, simulator)."""
