"""
The FastAGI server: which peers may connect, and which handler runs a call.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections import Counter, OrderedDict
from types import CoroutineType
from typing import Callable, Iterable, MutableMapping

from twisted.internet import defer
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from switchboard.agi.commands import _nothing
from switchboard.agi.errors import AGIHangup
from switchboard.agi.protocol import FastAGIProtocol, _describe
from switchboard.agi.session import drive
from switchboard.text import printable

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


#: The query parameter of the AGI URL that carries the shared key:
#: C{AGI(${SWITCHBOARD_AGI}/alarm?key=${SWITCHBOARD_KEY})}.
KEY_PARAMETER = "key"
_KEY_IN_URL = re.compile(r"([?&])key=[^&]*&?")


def without_key(text: str) -> str:
    """C{text} (an AGI URL or script) with its C{key=} parameter removed."""
    return _KEY_IN_URL.sub(lambda m: m.group(1), text).rstrip("?&")


class Throttle:
    """
    At most one log line a minute per subject (a peer's address, a
    reason): a flood of refused connections must not flood the log.
    L{allow} says whether to log now and how many were kept quiet since.
    """

    def __init__(self, clock, interval: float = 60.0, size: int = 1024):
        self.clock = clock
        self.interval = interval
        self.size = size
        self._last = OrderedDict()  # subject -> [time logged, quiet since]

    def allow(self, subject):
        """C{(log_now, suppressed)}: whether to log, and how many were not."""
        now = self.clock.seconds()
        entry = self._last.get(subject)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False, 0
        suppressed = entry[1] if entry is not None else 0
        self._last[subject] = [now, 0]
        self._last.move_to_end(subject)
        while len(self._last) > self.size:
            self._last.popitem(last=False)
        return True, suppressed


class FastAGIFactory(ServerFactory):
    """
    Serves FastAGI: each connection from an allowed peer becomes an
    L{AGISession} handed to C{handlers[session.script]}.

    A handler is C{callable(session)} returning a Deferred (or a value, or
    raising), or an C{async def} (its coroutine is run by L{drive}). When
    it finishes (and its commands are answered) the connection is closed
    and Asterisk goes on with the dialplan. A handler that fails with
    L{AGIHangup} ended normally (the caller went away). Any other failure is logged with the script and channel, and
    C{SWITCHBOARD_RESULT=ERROR} is set on the channel if it is still there;
    a script with no handler gets C{SWITCHBOARD_RESULT=NOSCRIPT}.

    Who may talk to it: a peer on the allowlist, and, when C{key} is set,
    only a session whose AGI URL carries C{?key=KEY} (compared in constant
    time; the parameter is removed from the session's C{query} and
    environment, and never logged). A session without the right key, or
    whose environment lacks C{agi_network_script} or C{agi_channel}, gets
    nothing run: the connection is closed with C{SWITCHBOARD_RESULT} unset,
    so the dialplan serves the call natively.

    Limits: at most C{max_sessions} connections in all and
    C{max_peer_sessions} from one address; the whole environment must
    arrive within C{env_timeout} seconds of the connect. A connection over
    a limit closes the oldest connection (of that address, for the
    per-address limit) still sending its environment, and is refused only
    when there is none: Asterisk sends its environment at once, so idle
    connections cannot keep its calls out. Refusals are logged at most
    once a minute per address and reason.

    @ivar handlers: script name -> handler; may be changed at any time.
    @ivar refused: reason -> connections or sessions refused
        (C{allowlist}, C{limit}, C{environment}, C{key}) or closed to make
        room (C{evicted}).
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
        key=None,
        env_timeout=10.0,
        max_sessions=2000,
        max_peer_sessions=1000,
    ):
        if clock is None:
            from twisted.internet import reactor as clock
        self.handlers = handlers
        self.allowlist = PeerAllowlist(allow)
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.max_line = max_line
        self.max_env_lines = max_env_lines
        self._key = key.encode("utf-8") if isinstance(key, str) else key
        self.env_timeout = env_timeout
        self.max_sessions = max_sessions
        self.max_peer_sessions = max_peer_sessions
        self.throttle = Throttle(clock)
        self._open = 0
        self._per_peer = {}  # host -> open connections
        self._pending = OrderedDict()  # connections still sending the environment, oldest first
        self.refused = Counter()

    @property
    def sessions(self) -> int:
        """Connections open now (counted in by L{admit})."""
        return self._open

    def allowed(self, address) -> bool:
        """Whether a connection from C{address} is served."""
        return self.allowlist.allows(address)

    def warn(self, subject: str, peer, message: str, **fields):
        """Log C{message} at most once a minute per (C{subject}, peer address)."""
        host = getattr(peer, "host", str(peer))
        now, suppressed = self.throttle.allow((subject, host))
        if now:
            more = f" ({suppressed} more not logged)" if suppressed else ""
            self.log.warn(message + more, peer=_describe(peer), **fields)

    def refuse(self, reason: str, peer, message: str, **fields):
        """Count a refusal for C{reason}, and L{warn} about it."""
        self.refused[reason] += 1
        self.warn(reason, peer, message, **fields)

    # Connection limits

    def admit(self, protocol) -> bool:
        """
        Count a new connection in; L{False} (and logged) when it is over
        the limits and no connection still sending its environment can
        make room.
        """
        host = getattr(protocol.peer, "host", None)
        if self._open >= self.max_sessions:
            self._evict(lambda p: True, "the connection limit is reached")
        if self._per_peer.get(host, 0) >= self.max_peer_sessions:
            self._evict(lambda p: getattr(p.peer, "host", None) == host,
                        "the limit of connections from this address is reached")
        if self._open >= self.max_sessions or \
                self._per_peer.get(host, 0) >= self.max_peer_sessions:
            self.refuse("limit", protocol.peer,
                      "refused FastAGI connection from {peer}: {open} sessions running "
                      "(limits: {total} in all, {each} per address)",
                      open=self._open, total=self.max_sessions, each=self.max_peer_sessions)
            return False
        self._open += 1
        self._per_peer[host] = self._per_peer.get(host, 0) + 1
        self._pending[protocol] = None
        return True

    def _evict(self, which, why):
        """Close the oldest connection still sending its environment that C{which} accepts."""
        oldest = next((p for p in self._pending if which(p)), None)
        if oldest is not None:
            self.refused["evicted"] += 1
            self.release(oldest)  # its place is free now, whenever its close completes
            oldest.evict(f"{why}: closing the oldest connection still sending its environment")

    def environmentDone(self, protocol) -> None:
        """C{protocol} has sent its whole environment."""
        self._pending.pop(protocol, None)

    def release(self, protocol) -> None:
        """An admitted connection has closed (or is being closed); counted once."""
        if not protocol.counted:
            return
        protocol.counted = False
        host = getattr(protocol.peer, "host", None)
        self._pending.pop(protocol, None)
        self._open -= 1
        left = self._per_peer.get(host, 1) - 1
        if left > 0:
            self._per_peer[host] = left
        else:
            self._per_peer.pop(host, None)

    # Who may run a handler

    def authorize(self, session) -> bool:
        """
        Whether C{session} may run: its environment is Asterisk's, and it
        carries the key (if one is set). Removes the key from the session.
        """
        given = session.query.pop(KEY_PARAMETER, None)
        for name in ("network_script", "request"):
            if KEY_PARAMETER + "=" in session.env.get(name, ""):
                session.env[name] = without_key(session.env[name])
        missing = [f"agi_{k}" for k in ("network_script", "channel") if k not in session.env]
        if missing:
            self.refuse("environment", session.peer,
                      "refused FastAGI session from {peer}: environment without {missing}",
                      missing=" and ".join(missing))
            return False
        if self._key is None:
            return True
        if given is None or not hmac.compare_digest(given.encode("utf-8"), self._key):
            self.refuse("key", session.peer,
                      "refused FastAGI session from {peer} (script {script}, channel "
                      "{channel}, caller {callerid}): {why}; nothing run, the dialplan "
                      "serves the call natively",
                      script=printable(session.script), channel=session.channel,
                      callerid=session.env.get("callerid", "?"),
                      why="wrong key" if given is not None else "no key")
            return False
        return True

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
        try:
            result = handler(session)
        except BaseException:
            d = defer.fail()
        else:
            if isinstance(result, defer.Deferred):
                d = result
            elif type(result) is CoroutineType:
                d = drive(result)  # an async def handler
            elif isinstance(result, Failure):
                d = defer.fail(result)
            else:
                d = defer.succeed(result)
        d.addCallbacks(_nothing, self._failed, errbackArgs=(session,))
        return d

    def _failed(self, failure, session):
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
