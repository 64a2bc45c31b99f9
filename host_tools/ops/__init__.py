"""Operator procedures, written once over a transport: run by the CLI and the simulator."""
