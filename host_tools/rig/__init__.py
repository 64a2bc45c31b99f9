"""The emulated rig: board processes, the hub that wires them, the rig file."""
