"""The deterministic simulator: one seed derives every fault; fakes for links, bus, disks and clocks."""
