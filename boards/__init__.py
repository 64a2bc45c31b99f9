"""Board support: what runs on a real board besides the firmware (rp2/: the RP2040 Pico)."""
