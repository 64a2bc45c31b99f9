"""Consistency checking: workloads, self-describing payloads, the checker."""
