"""
Several Asterisk servers: one AMI link (and one bulk session) to each, by name.

A FastAGI session says which Asterisk it came from through the query of its
AGI URL, C{asterisk=NAME}: the dialplan's C{switchboard-agi} calls pass
C{${SWITCHBOARD_ASTERISK}}, a global each Asterisk sets to its own name
(C{name} of its entry in switchboard.yaml's C{asterisks:}). That is chosen
over the peer's address: Asterisk connects to FastAGI from whatever source
address its host picks (the same one for two servers behind one NAT or on
one host), while a name in its own dialplan is what its administrator
wrote. A session without a known name is placed by the peer's address when
it is one server's AMI host (not loopback), else on the main (first)
server, and that is logged once per name: with one server configured, it is
always that one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger

#: The FastAGI query parameter naming the Asterisk a session came from.
QUERY_PARAMETER = "asterisk"


@dataclass
class AsteriskServer:
    """One Asterisk: its name, its AMI client, its bulk session and how it dials."""

    name: str
    ami: object          # switchboard.ami.AMIClient (events: the alarm's three)
    bulk_ami: object     # a second session (AstDB's read-back), or C{ami}
    dialer: object = None  # switchboard.dialing.Dialer with this server's trunks
    host: str = ""


class AsteriskServers:
    """
    The Asterisk servers the switchboard talks to, the main one first (it
    places the calls nothing ties to a server: texts, staff's callbacks,
    broadcasts).
    """

    log = Logger()

    def __init__(self, servers):
        self.servers = list(servers)
        if not self.servers:
            raise ValueError("at least one Asterisk server")
        self._by_name = {s.name: s for s in self.servers}
        self._warned: set = set()

    @property
    def main(self) -> AsteriskServer:
        return self.servers[0]

    def __iter__(self):
        return iter(self.servers)

    def __len__(self) -> int:
        return len(self.servers)

    def get(self, name) -> AsteriskServer | None:
        return self._by_name.get(str(name or ""))

    def for_session(self, session) -> AsteriskServer:
        """The server C{session} (a FastAGI session) came from (see the module's docstring)."""
        if len(self.servers) == 1:
            return self.main
        name = str(getattr(session, "query", {}).get(QUERY_PARAMETER, "") or "")
        server = self._by_name.get(name)
        if server is not None:
            return server
        server = self._by_peer(getattr(session, "peer", None))
        if name not in self._warned and len(self._warned) < 100:
            self._warned.add(name)  # once a name (bounded: whatever a session sends)
            self.log.warn("a FastAGI session names Asterisk {name!r}, which is not configured "
                          "(SWITCHBOARD_ASTERISK in its dialplan): its calls are placed on "
                          "{server}", name=name, server=(server or self.main).name)
        return server or self.main

    def _by_peer(self, peer) -> AsteriskServer | None:
        host = getattr(peer, "host", None)
        try:
            if host is None or ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            return None
        matches = [s for s in self.servers if s.host == host]
        return matches[0] if len(matches) == 1 else None

    # Every server at once ----------------------------------------------------------

    def subscribe(self, event, callback) -> None:
        """C{callback(event)} for C{event} on every server's link."""
        for server in self.servers:
            server.ami.subscribe(event, callback)

    def room_size(self, room) -> defer.Deferred:
        """
        The channels in ConfBridge C{room} over every server linked now (a room
        lives on the server its caller is on; after a restart nobody knows
        which): fails only when no server could be asked.
        """
        asked = [s.ami.room_size(room) for s in self.servers if s.ami.connected]
        if not asked:
            return defer.fail(RuntimeError("no Asterisk server is linked"))
        d = defer.DeferredList(asked, consumeErrors=True)

        def added(results):
            sizes = [size for ok, size in results if ok]
            if not sizes:
                return results[0][1]  # the first failure
            return sum(sizes)

        return d.addCallback(added)

    def kick(self, room) -> defer.Deferred:
        """Everyone out of ConfBridge C{room}, on whichever server holds it."""
        sent = [s.ami.send_action("ConfbridgeKick", [("Conference", room), ("Channel", "all")])
                for s in self.servers if s.ami.connected]
        return defer.DeferredList(sent, consumeErrors=True)
