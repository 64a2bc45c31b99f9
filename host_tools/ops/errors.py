"""The one exception of the operator procedures: an operation that cannot go on."""


class OpError(Exception):
    """An operator procedure that cannot go on (a board refused, a wait timed out)."""
