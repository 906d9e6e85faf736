"""
The FastAGI server: which peers may connect, and which handler runs a call.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterable, MutableMapping

from twisted.internet import defer
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from switchboard.agi.errors import AGIHangup
from switchboard.agi.protocol import FastAGIProtocol

#: Channel variable telling the dialplan how the call went (see the brief's
#: convention): handlers set C{OK}; the server sets these two.
RESULT_VARIABLE = "SWITCHBOARD_RESULT"
RESULT_ERROR = "ERROR"
RESULT_NOSCRIPT = "NOSCRIPT"


class PeerAllowlist:
    """
    The IP addresses and networks allowed to connect.

    Entries are addresses (C{"127.0.0.1"}, C{"::1"}) or networks
    (C{"10.1.0.0/16"}). A peer seen as an IPv4-mapped IPv6 address
    (C{::ffff:127.0.0.1}, on a dual-stack socket) is checked as IPv4.
    """

    def __init__(self, entries: Iterable[str]):
        if isinstance(entries, str):
            entries = [entries]
        self._networks = []
        for entry in entries:
            try:
                network = ipaddress.ip_network(str(entry).strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"FastAGI allow: {entry!r} is not an IP address or network "
                    "(e.g. 127.0.0.1, ::1, 10.1.0.0/16)"
                ) from None
            if network.version == 6 and network.prefixlen == 128:
                mapped = network.network_address.ipv4_mapped
                if mapped is not None:
                    network = ipaddress.ip_network(mapped)
            self._networks.append(network)
        self._verdicts = {}  # host -> allowed: Asterisk connects from few addresses

    def __repr__(self) -> str:
        return f"PeerAllowlist({[str(n) for n in self._networks]!r})"

    def allows(self, address) -> bool:
        """
        Whether C{address} (a Twisted C{IPv4Address}/C{IPv6Address}) may
        connect. Anything without an IP host (a UNIX socket) is refused.
        """
        host = getattr(address, "host", None)
        if not isinstance(host, str):
            return False
        verdict = self._verdicts.get(host)
        if verdict is None:
            if len(self._verdicts) >= 1024:
                self._verdicts.clear()
            verdict = self._verdicts[host] = self._check(host)
        return verdict

    def _check(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self._networks)


class FastAGIFactory(ServerFactory):
    """
    Serves FastAGI: each connection from an allowed peer becomes an
    L{AGISession} handed to C{handlers[session.script]}.

    A handler is C{callable(session)} returning a Deferred (or a value, or
    raising). When it finishes (and its commands are answered) the
    connection is closed and Asterisk goes on with the dialplan. A handler
    that fails with L{AGIHangup} ended normally (the caller went away). Any
    other failure is logged with the script and channel, and
    C{SWITCHBOARD_RESULT=ERROR} is set on the channel if it is still there;
    a script with no handler gets C{SWITCHBOARD_RESULT=NOSCRIPT}.

    @ivar handlers: script name -> handler; may be changed at any time.
    """

    protocol = FastAGIProtocol
    log = Logger()
    noisy = False  # every call opens a connection: no start/stop lines for each

    def __init__(
        self,
        handlers: MutableMapping[str, Callable],
        *,
        allow=("127.0.0.1", "::1"),
        idle_timeout=300.0,
        clock=None,
        max_line=8192,
        max_env_lines=200,
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.handlers = handlers
        self.allowlist = PeerAllowlist(allow)
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.max_line = max_line
        self.max_env_lines = max_env_lines

    def allowed(self, address) -> bool:
        """Whether a connection from C{address} is served."""
        return self.allowlist.allows(address)

    def dispatch(self, session) -> defer.Deferred:
        """
        Run the handler for C{session}. The Deferred fires (never fails)
        when the handler and the server's own follow-up commands are done.
        """
        handler = self.handlers.get(session.script)
        if handler is None:
            self.log.error(
                "FastAGI: no handler for script {script!r} (channel {channel}, "
                "caller {callerid}); known: {known}",
                script=session.script,
                channel=session.channel,
                callerid=session.env.get("callerid", "?"),
                known=", ".join(sorted(map(str, self.handlers))) or "none",
            )
            return self._setResult(session, RESULT_NOSCRIPT)
        d = defer.maybeDeferred(handler, session)
        d.addCallbacks(lambda _: None, lambda f: self._failed(session, f))
        return d

    def _failed(self, session, failure):
        if failure.check(AGIHangup):
            self.log.info(
                "FastAGI {script} on {channel} ended: {why}",
                script=session.script,
                channel=session.channel,
                why=failure.getErrorMessage(),
            )
            return None
        self.log.failure(
            "FastAGI handler {script} failed on channel {channel}",
            failure,
            script=session.script,
            channel=session.channel,
        )
        return self._setResult(session, RESULT_ERROR)

    def _setResult(self, session, value) -> defer.Deferred:
        """Set C{SWITCHBOARD_RESULT}, if the channel can still be reached."""
        if session.hungup:
            return defer.succeed(None)
        d = session.set_variable(RESULT_VARIABLE, value)

        def unset(failure):
            self.log.info(
                "FastAGI {script} on {channel}: could not set {name}={value}: {why}",
                script=session.script,
                channel=session.channel,
                name=RESULT_VARIABLE,
                value=value,
                why=failure.getErrorMessage(),
            )

        return d.addErrback(unset)
