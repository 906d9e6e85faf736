"""
Whether the server is ready for calls, for systemd's checks and load
balancers (C{/healthz}).
"""

from __future__ import annotations

#: A lag monitor silent this many of its intervals means the reactor is not turning.
SILENT_INTERVALS = 10


class Health:
    """
    Ready (HTTP 200) when the reactor turns (the lag monitor ran lately)
    and the FastAGI port is open: Asterisk's calls are served. The AMI link
    and the database are said in the body but do not make it unready: a
    #9 is served without either (the dialplan's native ring-all, the local
    journal), and a load balancer taking the server out for them would
    take the one thing that still works.

    @param listening: C{listening()} -> whether the FastAGI port is open.
    @param lag: a L{ReactorLag}.
    @param ami: an AMI client (its C{connected}), or L{None}.
    @param writers: journal name -> L{WriteBehind} (C{pending()}, C{failures}).
    """

    def __init__(self, listening, lag, ami=None, writers=None):
        self.listening = listening
        self.lag = lag
        self.ami = ami
        self.writers = writers if writers is not None else {}

    def check(self) -> tuple[bool, dict]:
        """C{(ready, what the body says)}."""
        problems = []
        since = self.lag.since_tick()
        turning = self.lag.running and (
            since is None or since <= SILENT_INTERVALS * self.lag.interval)
        if not turning:
            problems.append("the reactor is not turning")
        listening = bool(self.listening())
        if not listening:
            problems.append("the FastAGI port is not open")
        failing = {name: w.failures for name, w in self.writers.items() if w.failures}
        body = {
            "status": "ok" if not problems else "unavailable",
            "fastagi": "listening" if listening else "closed",
            "ami": ("connected" if self.ami.connected else "disconnected")
            if self.ami is not None else "none",
            "database": "refusing writes" if failing else "ok",
            "journal_pending": {name: w.pending() for name, w in sorted(self.writers.items())},
            "reactor_lag_seconds": round(self.lag.last, 4),
        }
        if problems:
            body["problems"] = problems
        return not problems, body
