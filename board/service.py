"""
The board as a part of the running server (L{switchboard.features.IFeatureService}):
its sessions, its watchers, and the alarm desk it shows, found among the
running features (L{switchboard.duty.find}). Its pages are served on the
server's HTTP port (C{pages}: L{switchboard.observe}).
"""

from __future__ import annotations

import time

from twisted.internet import defer, task, threads
from twisted.logger import Logger
from zope.interface import implementer

from board import auth
from board import staff as staff_module
from board.events import Watchers, frame
from board.web import COOKIE, BoardResource, password_check
from switchboard import duty
from switchboard.features import IFeatureService


@implementer(IFeatureService)
class BoardService:
    """
    @param section: the board's settings (L{board.plugin.BoardSettings}).
    @param services: the running features (complete by L{start}).
    @param timezone: the community's time zone (an IANA name): the page shows times in it.
    @param check_password: C{check_password(hash, password)} -> Deferred bool
        (default: argon2 on the reactor's thread pool).
    """

    log = Logger()
    handlers: dict = {}
    watched = ()
    #: Seconds of changes sent together (the page is live within this)...
    batch = 0.05
    #: ... or longer under a burst: the boards take at most this share of
    #: the reactor (a frame that took 15 ms is followed by one 150 ms later).
    share = 0.1
    #: What the cost of a frame is measured with (real time, whatever the clock).
    timer = staticmethod(time.perf_counter)

    def __init__(self, section, database, services, timezone, *, reactor=None,
                 check_password=None):
        if reactor is None:
            from twisted.internet import reactor
        self.section = section
        self.database = database
        self.services = services
        self.timezone = timezone
        self.reactor = reactor
        self.lifetime = section.session_hours * 3600.0
        self.sessions = auth.Sessions(reactor, self.lifetime)
        self.lockout = auth.Lockout(reactor, attempts=section.lockout_attempts,
                                    window=section.lockout_minutes * 60.0,
                                    duration=section.lockout_minutes * 60.0)
        self.watchers = Watchers(reactor, self._alive)
        self.check_password = check_password or (
            lambda h, p: password_check(reactor, h, p))
        self.desk = None
        self.requests = None   # the residents' requests (IRequestDesk), if a feature has them
        self.calls = None      # the hotline's recent calls (ICallDesk), if it runs
        self._unwatch = None
        self._unwatch_requests = None
        self._unwatch_calls = None
        self._entries: list = []
        self._flush = None
        self._cost = 0.0   # seconds the last frame took
        self._staff = task.LoopingCall(self.refresh_staff)
        self._staff.clock = reactor
        self.pages = {b"board": BoardResource(self)}

    # The running part -------------------------------------------------------------

    def start(self):
        self.requests = duty.find(self.services, duty.IRequestDesk)
        if self.requests is not None:
            self._unwatch_requests = self.requests.watch(self._request_changed)
        self.calls = duty.find(self.services, duty.ICallDesk)
        if self.calls is not None:
            self._unwatch_calls = self.calls.watch(self._call_ended)
        self.desk = duty.find(self.services)
        if self.desk is None:
            self.log.warn("board: no #9 alarm running: the board shows no alarms")
        else:
            self._unwatch = self.desk.watch(self._changed)
        self.watchers.start()
        self._staff.start(60.0, now=False)

    def stop(self):
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._unwatch_requests is not None:
            self._unwatch_requests()
            self._unwatch_requests = None
        if self._unwatch_calls is not None:
            self._unwatch_calls()
            self._unwatch_calls = None
        if self._staff.running:
            self._staff.stop()
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
        self.watchers.stop()

    def reload(self, path=None):
        return None

    def ami_connected(self):
        return None

    def _changed(self, entry) -> None:
        """
        On the #9's path: only noted. The boards get the changes of the
        last C{batch} seconds in one frame, each alarm's view built once
        (a burst of alarms costs the reactor one encoding per batch, not
        one per change).
        """
        if not self.watchers:
            return
        self._entries.append(entry)
        if self._flush is None:
            self._flush = self.reactor.callLater(max(self.batch, self._cost / self.share),
                                                 self.flush)

    def _request_changed(self, request_id, what) -> None:
        """A request came, was done or called back: the boards read the list again."""
        if self.watchers:
            self.watchers.send(frame("requests", {"id": request_id, "what": what}))

    def _call_ended(self, _call) -> None:
        """A hotline call was recorded: the boards read the recent calls again."""
        if self.watchers:
            self.watchers.send(frame("calls", {}))

    def flush(self) -> None:
        self._flush = None
        entries, self._entries = self._entries, []
        if not entries or not self.watchers:
            return
        begun = self.timer()
        ids = list(dict.fromkeys(e["alarm_id"] for e in entries))
        views = [v for v in (self.desk.alarm_view(i) for i in ids) if v is not None]
        self.watchers.send(frame("changes", {"now": self.reactor.seconds(), "entries": entries,
                                             "views": views}))
        self._cost = self.timer() - begun

    def staff(self) -> defer.Deferred:
        """Every staff member (L{staff_module.Member}), by name, read on the database's pool."""
        return self.database.run(lambda session: [m for m, _ in staff_module.members(session)])

    def refresh_staff(self) -> defer.Deferred:
        """End the sessions of staff removed (or whose role changed) since they logged in."""
        def compare(members):
            now = {m.id: m for m in members}
            for member in self.sessions.members():
                if now.get(member.id) != member:
                    n = self.sessions.end_member(member.id)
                    self.log.info("board: {name} removed or changed: {n} session(s) ended",
                                  name=member.name, n=n)

        d = self.staff().addCallback(compare)
        d.addErrback(lambda f: self.log.failure("board: reading the staff", f))
        return d

    # What the pages ask ------------------------------------------------------------

    def session(self, request):
        value = request.getCookie(COOKIE)
        return self.sessions.get(value.decode("ascii", "replace")) if value else None

    def _alive(self, session) -> bool:
        return self.sessions.get(session.token) is session

    def language(self, request) -> str:
        asked = request.args.get(b"lang", [b""])[0].decode("ascii", "replace")
        return asked if asked in ("zh", "en") else self.section.language

    def address(self, request) -> str:
        """The client's address: the proxy's last X-Forwarded-For hop if it is trusted."""
        peer = request.getClientAddress()
        host = getattr(peer, "host", "") or ""
        if host in self.section.trusted_proxies:
            forwarded = request.getHeader(b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[-1].strip()
        return host

    def cookie(self, request, name: bytes, value: str, max_age: int) -> None:
        secure = self.section.secure_cookies or request.isSecure()
        request.addCookie(name, value.encode("ascii"), path=b"/board", max_age=str(max_age),
                          httpOnly=True, secure=secure, sameSite="strict")

    def log_in(self, name, password, address) -> defer.Deferred:
        """Fire with C{(session or None, seconds locked out)}."""
        locked = self.lockout.locked(name, address)
        if locked:
            return defer.succeed((None, locked))
        d = self.database.run(lambda s: staff_module.lookup(s, name))

        def check(found):
            member, password_hash = found if found is not None else (None, None)
            return self.check_password(password_hash, password).addCallback(
                lambda ok: (member, ok))

        def decided(result):
            member, ok = result
            if not ok or member is None:
                self.lockout.failed(name, address)
                self.log.warn("board: failed login for {name!r} from {address}",
                              name=name[:64], address=address)
                return None, self.lockout.locked(name, address)
            self.lockout.succeeded(name, address)
            self.log.info("board: {name} logged in from {address}", name=member.name,
                          address=address)
            return self.sessions.start(member), 0.0

        return d.addCallback(check).addCallback(decided)

    def log_out(self, session) -> None:
        self.sessions.end(session.token)

    def watch(self, request, session) -> bool:
        alarms = self.desk.open_alarms() if self.desk is not None else []
        first = frame("snapshot", {"now": self.reactor.seconds(), "alarms": alarms})
        return self.watchers.add(request, session, first)

    def off_reactor(self, f, *args) -> defer.Deferred:
        """C{f(*args)} on the reactor's thread pool (file reads)."""
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args)

    def recent(self, limit) -> defer.Deferred:
        if self.desk is None:
            return defer.succeed([])
        return self.desk.recent(limit)

    def outcomes(self) -> tuple:
        return self.desk.outcomes if self.desk is not None else duty.OUTCOMES
