"""arcopy host tools: the CLI, operator procedures, transports, the emulated rig, the simulator, checks and perf."""
