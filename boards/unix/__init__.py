# The emulated board on the MicroPython unix port: its HAL (unix_hal.py) and main.py (boot_main.py).
