"""arcopy set-policy freeze|continue: what the secondaries do when a pair is lost (C_SET_POLICY)."""
# arcopy set-policy freeze|continue: what the secondaries do when a pair is lost
# (C_SET_POLICY to every secondary): freeze holds the whole group at the newest cut the lost
# pair also has (the disaster-recovery policy); continue lets the other pairs go on applying.
from host_tools.cmds import add_dir, run_on_rig


def add_arguments(parser):
    parser.add_argument("policy", choices=("freeze", "continue"), help="freeze or continue")
    add_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb
    from host_tools.rig import session

    def set_policy(rig, t, prog):
        pairs = session.pairs(rig)
        res = ops.pairs.set_policy(t, [pairs[i][1] for i in sorted(pairs)], args.policy)
        return pairs, res, pairverb.explain(t, res)
    out = run_on_rig(args, set_policy)
    if out is None:
        return 1
    rig, (pairs, res, why), _ = out
    return pairverb.report(args, rig, pairs, "SET_POLICY(%s)" % args.policy, res, why,
                           {"policy": args.policy})
