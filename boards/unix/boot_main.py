# main.py of an emulated arcopy board on the MicroPython unix port (boards/unix/unix_hal.py).
#
# Two ways in, one boot:
#   micropython -X heapsize=N boot_main.py CONFIG.json FWDIR HOST_FD HOST_TTY
#       a board of the emulated rig (`arcopy rig up --runtime micropython`): CONFIG is the
#       board's config file (firmware Config fields and HAL keys, as for a CPython board),
#       FWDIR the rig's precompiled firmware (firmware/*.mpy, unix_hal.mpy), HOST_FD the
#       inherited pty master of its host port and HOST_TTY that pty's slave device;
#   micropython -X heapsize=N -i main.py         (in the board's directory, its "flash")
#       a board installed by `arcopy provision` with hal = "unix": this file is its main.py,
#       the firmware is in fw/, config.json holds {"config": {...}} as on a Pico, and
#       hw.json the board's wiring (its SD card image, bus and peer devices: what the
#       emulated hardware is made of). The host port is the interpreter's stdin/stdout
#       (the REPL's port); one second of quiet, then Ctrl-C, gives the REPL back.
# The firmware's heap is what the interpreter was started with (-X heapsize): allocating
# past it fails with MemoryError, as on a Pico.
import sys


def _load(path):
    import json
    f = open(path)
    try:
        return json.load(f)
    finally:
        f.close()


def boot(conf, fw_dir):
    if fw_dir not in sys.path:
        sys.path.insert(0, fw_dir)
    import unix_hal
    hal = unix_hal.UnixHal(conf)
    from firmware import main as fw                  # firmware/main.py, unmodified
    import gc
    gc.collect()
    hal.code_bytes = gc.mem_alloc()                  # the code (and the HAL) before any board data
    board = fw.Board(hal)
    hal.board = board                                # for the heap figures it reports
    return hal, board


def start():
    args = sys.argv[1:]
    if args:                                         # a rig board
        conf = _load(args[0])
        fw_dir = args[1] if len(args) > 1 else "fw"
        if len(args) > 3:
            conf["host_fd"] = int(args[2])
            conf["host_tty"] = args[3]
    else:                                            # a provisioned board
        doc = _load("config.json")
        conf = dict(doc["config"])
        conf.update(_load("hw.json"))
        fw_dir = "fw"
    hal = None
    try:
        hal, board = boot(conf, fw_dir)
        hal.log("up (MicroPython %s)" % ".".join(str(x) for x in sys.implementation.version[:3]))
        board.run()
    except KeyboardInterrupt:
        if hal is not None:
            hal.close()
        print("\narcopy: copy service stopped; REPL. Log:")
        if hal is not None:
            for line in hal.logs:
                print("  " + line)
        if args:
            sys.exit(1)
    except Exception as e:
        print("arcopy: copy service failed:")
        sys.print_exception(e)
        sys.exit(1)


start()
