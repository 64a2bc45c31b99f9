"""Board support for the RP2040 (Raspberry Pi Pico): pin map, HAL, boot file."""
