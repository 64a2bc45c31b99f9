"""Perf: measured figures (printed, optionally JSON), never tests."""
