"""
C{python -m switchboard.routing.child}: parse one routing file (or another
configuration file, with the request's C{loader}) for a running server (see
L{switchboard.routing.parsing.ChildProcessParser}).

Reads a pickled request on stdin, writes C{("loaded", Routing)} or
C{("refused", ConfigError)} pickled on stdout, and exits 0; anything
else (a crash, a limit reached) is a non-zero exit with the reason on
stderr.
"""

from __future__ import annotations

import os
import pickle
import resource
import sys


def _limit(kind, value):
    if value:
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, hard))


def _idle_priority():
    """
    Run only on CPU time nothing else wants: live calls come first. (A
    lowered nice value is not enough: woken for each reply, the server
    still waits behind the parser on a shared core.)
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def main() -> int:
    request = pickle.loads(sys.stdin.buffer.read())
    if request.get("idle"):
        _idle_priority()
    _limit(resource.RLIMIT_AS, request.get("memory_limit"))
    _limit(resource.RLIMIT_CPU, request.get("cpu_limit"))
    # Only the checks are imported here: no Twisted, a quicker start.
    import importlib

    from switchboard.yamlconf import ConfigError

    module, _, function = request.get(
        "loader", "switchboard.routing.schema:load_bytes").partition(":")
    load_bytes = getattr(importlib.import_module(module), function)
    try:
        answer = ("loaded", load_bytes(request["raw"], request["path"],
                                       request["numbers"], request["trunks"]))
    except ConfigError as e:
        answer = ("refused", e)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
