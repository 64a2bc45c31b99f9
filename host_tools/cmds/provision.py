"""arcopy provision --rig RIG.toml: install the firmware and each board's config on real RP2040 boards."""
import argparse
import os
import sys

from host_tools.cmds.argtypes import positive_int

from host_tools.provision.installer import (RigFileError, ProvisionError, Provisioner, list_boards,
                                            parse_rig_file)


def add_arguments(parser):
    parser.add_argument("--rig", metavar="RIG.toml", help="the rig file (see boards/rig.sample.toml)")
    parser.add_argument("--bench", metavar="RIG.toml", dest="old_rig", help=argparse.SUPPRESS)
    parser.add_argument("--board", action="append", metavar="ID", help="only this board (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print every step, open no port")
    parser.add_argument("--force", action="store_true", help="copy every file even if the board has it")
    parser.add_argument("--sdcard", metavar="FILE", help="install this SD card driver file instead of "
                        "`mpremote mip install sdcard` (offline rigs)")
    parser.add_argument("--build-dir", default=None, help="where to build (default: build/ in the repository)")
    parser.add_argument("--dir", default=None, help="write the rig file for the other commands here "
                        "(default: $ARCOPY_RIG or <tmp>/arcopy-rig-<uid>)")
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                        help="provision up to N boards at once (default 1: one after the other)")
    parser.add_argument("--list", action="store_true", help="list connected USB serial ports and their "
                        "serial numbers, then exit")


def run(args):
    if args.list:
        rows = list_boards()
        if not rows:
            print("no USB serial ports found")
        for dev, sn, desc in rows:
            print("%-28s serial %-18s %s" % (dev, sn or "-", desc))
        return 0
    if args.old_rig and not args.rig:
        print("arcopy: warning: --bench is deprecated, use --rig", file=sys.stderr)
        args.rig = args.old_rig
    if not args.rig:
        print("error: --rig RIG.toml is required (see boards/rig.sample.toml)", file=sys.stderr)
        return 2
    try:
        rig = parse_rig_file(args.rig)
    except RigFileError as e:
        for line in e.lines():
            print(line, file=sys.stderr)
        print("error: %d problem(s) in %s: nothing was done" % (len(e.errors), args.rig), file=sys.stderr)
        return 1
    except (OSError, ProvisionError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    if args.sdcard and not os.path.isfile(args.sdcard):
        print("error: --sdcard %s: no such file" % args.sdcard, file=sys.stderr)
        return 1
    rig_dir = args.dir
    if rig_dir is None:
        from host_tools.rig import manager as rigmgr
        rig_dir = rigmgr.default_dir()
    for w in rig.get("warnings", ()):
        print("arcopy: warning: " + w, file=sys.stderr)
    p = Provisioner(rig, dry_run=args.dry_run, force=args.force, sdcard_file=args.sdcard,
                    build_dir=args.build_dir, rig_dir=os.path.abspath(rig_dir), jobs=args.jobs)
    from host_tools.cmds import interrupt_note
    interrupt_note("provisioning stopped: the board being installed may hold a partial install; "
                   "run the same `arcopy provision` again (it copies only what differs)")
    try:
        p.run(args.board)
    except ProvisionError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    if not args.dry_run:
        print("provisioned %d board(s); next: arcopy start-copy --dir %s" % (len(p.results), rig_dir))
    return 0
