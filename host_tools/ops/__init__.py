"""The operator's procedures, written once over host_tools.transport.Transport (rig or simulator alike).

    ops.status      STATUS by field name, per-pair rows and the status table
    ops.command     host commands as an operator sends them (retried while the board is busy)
    ops.copy        start copy and wait until the pairs are duplex (progress)
    ops.pairs       suspend and resume
    ops.failover    recover the secondaries to the newest released cut
    ops.failback    reverse the pairs after a failover, copying back only what changed
    ops.verify      read the recovered volumes back and judge them with the checker
    ops.drill       the disaster drill's steps: lose the primary site, fail over, verify

Pairs are given as {pair index: (primary name, secondary name)} by their current roles.
Nothing here knows whether the boards are real, emulated or simulated: the rig's glue
(host_tools/rig/session.py) and the simulator's drills (host_tools/sim/) pass a transport.
"""
from host_tools.ops.errors import OpError  # noqa: F401
from host_tools.ops import status  # noqa: F401
from host_tools.ops import command  # noqa: F401
from host_tools.ops import copy  # noqa: F401
from host_tools.ops import pairs  # noqa: F401
from host_tools.ops import failover  # noqa: F401
from host_tools.ops import failback  # noqa: F401
from host_tools.ops import verify  # noqa: F401
from host_tools.ops import drill  # noqa: F401
