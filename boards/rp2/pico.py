# Board definition: Raspberry Pi Pico (RP2040) as one arcopy disk subsystem.
#
# Data only: pin numbers, peripheral ids and sizing constants. Nothing here touches
# hardware; boards/rp2/rp2_hal.py's build() reads these names (and per-board overrides
# from config.json's "pins" table) and creates the machine objects.
#
#   peripheral            RP2040 unit   GPIO (physical pin)      wired to
#   site bus (RS-485)     UART0         GP0 TX (1)               transceiver DI
#                                       GP1 RX (2)               transceiver RO (pull-up)
#                                       GP2 (4)                  transceiver DE + /RE (tied)
#   peer link             UART1         GP4 TX (6)               counterpart's GP5
#                                       GP5 RX (7)               counterpart's GP4
#   microSD (SPI mode)    SPI1          GP10 SCK (14)            card CLK
#                                       GP11 MOSI (15)           card DI / CMD
#                                       GP12 MISO (16)           card DO / DAT0 (pull-up)
#                                       GP13 (17)                card CS / DAT3
#   service escape        -             GP22 (29)                jumper to GND (28) = skip
#   host port             USB CDC       micro-USB                the PC (arcopy, mpremote)
#
# Why these choices:
# - The RP2040 has exactly two hardware UARTs. The site bus and the peer link each
#   need one (both carry timing-sensitive traffic that must not depend on software
#   bit-banging), so the host port is the USB CDC serial port MicroPython already
#   provides: full-speed USB, no extra adapter, flow-controlled by USB itself, and
#   each board shows up on the PC under its own USB serial number (the flash chip's
#   unique id), which is how `arcopy provision` finds a board.
# - UART0 on GP0/GP1 and UART1 on GP4/GP5 are the first legal pin pairs for each
#   unit; SPI1 on GP10..GP13 keeps the SD card on the other side of the board, away
#   from the serial lines, and leaves SPI0 free.
# - GP22 sits next to a ground pin (physical 28/29), so a single jumper cap is the
#   escape: fitted at reset, the copy service does not start and the REPL stays free.

NAME = "pico"

# site bus: UART0 through a half-duplex RS-485 transceiver (MAX3485 class)
BUS_UART = 0
BUS_TX = 0
BUS_RX = 1
BUS_DE = 2          # drives DE and /RE together: high = transmit, low = receive

# peer link: UART1, point to point (3.3 V TTL on a bench; an RS-422 pair for distance)
PEER_UART = 1
PEER_TX = 4
PEER_RX = 5

# microSD card on SPI1, driven by micropython-lib's `sdcard` module
SD_SPI = 1
SD_SCK = 10
SD_MOSI = 11
SD_MISO = 12
SD_CS = 13
SD_INIT_BAUD = 400000       # the driver starts the card slowly itself, then switches to:
SD_BAUD = 10000000          # 10 MHz: safe on breakout boards with 10-15 cm of wire

# held low at reset (jumper GP22 to GND): boot_main skips the copy service
ESCAPE_PIN = 22

# on-board LED: blinks while the copy service runs ("LED" also names the Pico W's LED)
LED = "LED"

# Physical header pin of each GPIO used above (Pico pinout), for the wiring table.
PHYSICAL = {0: 1, 1: 2, 2: 4, 4: 6, 5: 7, 10: 14, 11: 15, 12: 16, 13: 17, 22: 29}

# UART buffer sizing. The UART interrupt moves received bytes into the RX ring while
# Python is busy; the ring must hold everything that can arrive during the longest
# stretch between two reads by the board loop. That stretch is bounded by one loop
# step: an SD card may hold a single block write busy for up to 250 ms (the SD
# specification's write timeout for standard-capacity cards), and a journal append
# or an apply is a short run of such writes. We size for MAX_LOOP_LATENCY_US:
#     rxbuf = baud / 10 (bytes per second, 8N1) * MAX_LOOP_LATENCY_US / 1e6
# clamped to RXBUF_MIN..RXBUF_MAX (the rp2 port's limit is 32766). At 115200 baud
# that is 2880 bytes; from 1 310 400 baud up the cap applies. If a step does take
# longer (a long apply), the peer link recovers by NAK and retransmission and the
# bus by its every-cycle state re-send: an overrun costs throughput, never data.
MAX_LOOP_LATENCY_US = 250000
RXBUF_MIN = 256
RXBUF_MAX = 32766
# TX rings. Bus frames are small control messages (beacon, COPY_ACTIVE, checkpoint,
# release, ...: 20 + at most 12 bytes), so 512 bytes take any one of them, or a
# master's whole cycle, in a single write; a longer frame would still go out whole
# with DE held (the port finishes the write). The peer link's ring is sized like its
# RX ring but never below one maximal frame plus margin, because the port hands the
# UART whole frames only when they fit (rp2_hal.PeerPort), so writes never block.
BUS_TXBUF = 512

# Host-port escape back to the REPL: after at least this much silence from the PC,
# a chunk made only of Ctrl-C (and CR/LF, Ctrl-A/B/D) bytes stops the copy service.
ESCAPE_QUIET_US = 1000000

# After an unexpected exception the board prints it, waits this long (Ctrl-C works
# again by then) and resets; everything acknowledged is already on the SD card.
RESTART_DELAY_MS = 5000
