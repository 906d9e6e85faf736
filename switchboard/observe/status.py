"""
The service's state for the duty board's health lights and
C{switchboard status}: the AMI link, AstDB's copy of the registry, the
database, the configuration files' loads (the last refused one with its
located errors), and the routing at a glance.

Everything here is state the parts keep anyway, read when asked, on the
reactor thread (no locks, no I/O): a snapshot costs well under a
millisecond. The routing glance (~0.1 ms a department) is worked out once
and kept until the next opening or closing, the next midnight or another
routing, whichever comes first: a few times a day, not on every look.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from switchboard.routing.glance import glance
from switchboard.routing.router import local_time

OK = "ok"
FAILING = "failing"
UNKNOWN = "unknown"


def _iso(seconds, tz=None):
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz or timezone.utc).isoformat()


class AMIState:
    """The AMI link: up or down since when, logins, losses (from the client's callbacks)."""

    def __init__(self, ami, clock):
        self.ami = ami
        self.clock = clock
        self.since = clock.seconds()
        self.logins = 0
        self.losses = 0
        ami.on_connect(self._up)
        ami.on_disconnect(self._down)

    def _up(self, _):
        self.logins += 1
        self.since = self.clock.seconds()

    def _down(self, _):
        self.losses += 1
        self.since = self.clock.seconds()

    def snapshot(self, tz=None) -> dict:
        up = bool(self.ami.connected)
        return {"state": "connected" if up else "disconnected", "light": OK if up else FAILING,
                "since": _iso(self.since, tz), "logins": self.logins,
                "reconnects": max(0, self.logins - 1), "disconnects": self.losses}


class Status:
    """
    What the health lights show. L{watch_ami}, L{watch_astdb},
    L{watch_writer}, L{watch_routing} and L{watch_loads} connect the parts
    (L{switchboard.observe.service.attach} finds them); L{snapshot} is the
    page's JSON.

    @param clock: provides C{seconds()} (the reactor).
    @param tz: the community's time zone: times are shown in it.
    """

    def __init__(self, clock, tz=None):
        self.clock = clock
        self.tz = tz
        self.ami = None
        self.asterisks: list = []   # (name, AMIState) of each server, when several
        self.astdb: list = []
        self.writers: dict = {}
        self.routing: list = []
        self.loads: list = []
        self._glances: dict = {}  # id(store) -> (routing, valid until (seconds), entries)

    def watch_ami(self, ami) -> None:
        self.ami = AMIState(ami, self.clock)

    def watch_asterisks(self, servers) -> None:
        """Several Asterisk servers (L{switchboard.ami.servers.AsteriskServers}): each link."""
        self.asterisks = [(server.name, self.ami if server.ami is getattr(self.ami, "ami", None)
                           else AMIState(server.ami, self.clock)) for server in servers]

    def watch_astdb(self, sync) -> None:
        """An AstDB copy kept in step (C{stale}, C{synced_at}, C{failed_at}, C{failure})."""
        self.astdb.append(sync)

    def watch_writer(self, name, writer) -> None:
        self.writers[name] = writer

    def watch_routing(self, store) -> None:
        """A L{RoutingStore}: its loads (L{watch_loads}) and today's routing at a glance."""
        self.routing.append(store)
        self.watch_loads(store.loads)

    def watch_loads(self, record) -> None:
        """A L{switchboard.reloads.LoadRecord} of a configuration file."""
        if record not in self.loads:
            self.loads.append(record)

    # -------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """
        C{{"at", "lights": {"ami", "astdb", "database", "config"}: "ok" |
        "failing" | "unknown", "ami", "astdb", "database", "files",
        "departments"}} (README, "Status"); plain JSON values.
        """
        now = self.clock.seconds()
        ami = self.ami.snapshot(self.tz) if self.ami is not None else {"state": "none",
                                                                        "light": UNKNOWN}
        if self.asterisks:
            # One light for them all: failing when any link is down (its
            # callers' alarms are rung natively meanwhile).
            ami = dict(ami, asterisks=[dict(state.snapshot(self.tz), name=name)
                                       for name, state in self.asterisks])
            down = [a["name"] for a in ami["asterisks"] if a["light"] == FAILING]
            if down:
                ami["light"] = FAILING
                ami["state"] = f"{len(down)} of {len(ami['asterisks'])} disconnected"
        astdb = self._astdb()
        database = self._database()
        files = [self._file(record) for record in self.loads]
        config_light = (FAILING if any(f["refused"] for f in files)
                        else OK if files else UNKNOWN)
        return {
            "at": _iso(now, self.tz),
            "lights": {"ami": ami["light"], "astdb": astdb["light"],
                       "database": database["light"], "config": config_light},
            "ami": ami, "astdb": astdb, "database": database, "files": files,
            "departments": self._departments(now),
        }

    def _astdb(self) -> dict:
        if not self.astdb:
            return {"state": "none", "light": UNKNOWN}
        sync = self.astdb[0]
        synced, failed = sync.synced_at, sync.failed_at
        failing = failed is not None and (synced is None or failed > synced)
        if failing:
            state, light = "failing", FAILING
        elif not sync.stale:
            state, light = "in step", OK
        elif synced is None:
            state, light = "not yet synced", UNKNOWN
        else:
            state, light = "syncing", OK
        return {"state": state, "light": light, "last_sync": _iso(synced, self.tz),
                "last_failure": _iso(failed, self.tz),
                "failure": sync.failure if failing else None}

    def _database(self) -> dict:
        journals = {name: {"pending": w.pending(), "failures_in_a_row": w.failures}
                    for name, w in sorted(self.writers.items())}
        failing = any(j["failures_in_a_row"] for j in journals.values())
        light = FAILING if failing else OK if journals else UNKNOWN
        return {"state": "refusing writes" if failing else "ok" if journals else "none",
                "light": light, "journals": journals,
                "queued": sum(j["pending"] for j in journals.values())}

    def _file(self, record) -> dict:
        shot = record.snapshot()
        last = max((t for t in (shot["last_in_force"], shot["last_unchanged"]) if t is not None),
                   default=None)
        return dict(shot, what=record.what, last_reload=_iso(last, self.tz),
                    last_in_force=_iso(shot["last_in_force"], self.tz),
                    last_unchanged=_iso(shot["last_unchanged"], self.tz),
                    last_refused=_iso(shot["last_refused"], self.tz))

    def _departments(self, now) -> list:
        entries = []
        for store in self.routing:
            routing = store.current
            if routing is None:
                continue
            kept = self._glances.get(id(store))
            if kept is None or kept[0] is not routing or now >= kept[1]:
                kept = self._glance(routing, now)
                self._glances[id(store)] = kept
            entries.extend(kept[2])
        return [dict(entry) for entry in entries]

    def _glance(self, routing, now):
        """C{(routing, seconds until which it holds, entries)}."""
        local = local_time(routing, datetime.fromtimestamp(now, timezone.utc), self.tz)
        entries = glance(routing, local)
        midnight = datetime.combine(local.date() + timedelta(days=1), time(0),
                                    tzinfo=local.tzinfo)
        until = min([midnight.timestamp()] + [
            datetime.fromisoformat(e["next_change"]).timestamp() for e in entries
            if e["next_change"]])
        return routing, until, entries
