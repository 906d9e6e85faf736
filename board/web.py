"""
The board's HTTP side, under C{/board/} on the server's HTTP port:

  GET  /board/               the page (static HTML, CSS, JS: package data, no build)
  GET  /board/login          the login form        POST /board/login
  POST /board/logout
  GET  /board/api/me         who is logged in, their CSRF token, the language and zone
  GET  /board/api/events     server-sent events: a snapshot of the open alarms, then
                             every change as it happens
  GET  /board/api/recent     the last alarms with their timelines
  GET  /board/api/staff      (admin) the staff and who is logged in now
  GET  /board/api/requests   the residents' requests to be called back (open, done)
  GET  /board/api/calls      the hotline's recent calls with their path
  GET  /board/api/requests/ID/recording   a voicemail's recording
  POST /board/api/requests/ID/done | call-back   (duty and admin; CSRF token)
  POST /board/api/alarms/ID/acknowledge | note | ring | call-back | close
                             (duty and admin; CSRF token)

Every page and action but the login refuses a request without a session
(the page sends the browser to the login; the API answers 401). Sessions
are a random token in a cookie (HttpOnly, SameSite=Strict); each POST
carries the session's CSRF token (the C{X-CSRF-Token} header, or the
login form's own token for the login). Everything is rendered on the
reactor thread but the password check, on a pool thread.
"""

from __future__ import annotations

import html
import json
import os
import re

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web import resource, server

from board import auth
from board import staff as staff_module

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
#: Static files anyone may fetch: the login page's style, nothing that says anything.
PUBLIC = {"board.css"}
COOKIE = b"sb_session"
LOGIN_COOKIE = b"sb_login"
MAX_BODY = 16 * 1024
#: A voicemail's recording served to the browser (a few minutes of 8 kHz audio).
RECORDING_LIMIT = 20 * 1024 * 1024
AUDIO = {".wav": "audio/wav", ".gsm": "audio/x-gsm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; media-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
ACTION = re.compile(r"^(\d{1,12})$")

LOGIN_TEXT = {
    "zh": {"title": "值班看板 · 登录", "name": "用户名", "password": "密码", "submit": "登录",
           "failed": "用户名或密码不对。", "locked": "尝试次数过多，请 {minutes} 分钟后再试。",
           "expired": "登录页面已过期，请重新登录。", "other": "English"},
    "en": {"title": "Duty board · log in", "name": "Name", "password": "Password",
           "submit": "Log in", "failed": "Wrong name or password.",
           "locked": "Too many attempts: try again in {minutes} minutes.",
           "expired": "The login page had expired: please log in again.", "other": "中文"},
}


def _static(name: str) -> bytes | None:
    if "/" in name or name.startswith(".") or os.path.splitext(name)[1] not in TYPES:
        return None
    try:
        with open(os.path.join(STATIC, name), "rb") as f:
            return f.read()
    except OSError:
        return None


class BoardResource(resource.Resource):
    """C{/board/...}: routes by path and method to the L{Board}'s pages and actions."""

    isLeaf = True
    log = Logger()

    def __init__(self, board):
        super().__init__()
        self.board = board

    # Plumbing ------------------------------------------------------------------

    def render(self, request):
        self._headers(request)
        path = [p.decode("utf-8", "replace") for p in request.postpath]
        if request.prepath and not path:  # /board: the page lives at /board/
            return self._redirect(request, b"/board/")
        method = request.method
        route = "/".join(path)
        if method in (b"GET", b"HEAD"):
            if route == "":
                return self.page(request)
            if route == "login":
                return self.login_form(request)
            if route.startswith("static/"):
                return self.static(request, route[len("static/"):])
            if route == "api/me":
                return self.me(request)
            if route == "api/events":
                return self.events(request)
            if route == "api/recent":
                return self.recent(request)
            if route == "api/staff":
                return self.staff(request)
            if route == "api/requests":
                return self.requests(request)
            if route == "api/calls":
                return self.calls(request)
            if len(path) == 4 and path[:2] == ["api", "requests"] and ACTION.match(path[2]) \
                    and path[3] == "recording":
                return self.recording(request, int(path[2]))
        elif method == b"POST":
            if route == "login":
                return self.login(request)
            if route == "logout":
                return self.logout(request)
            if len(path) == 4 and path[:2] == ["api", "alarms"] and ACTION.match(path[2]):
                return self.act(request, int(path[2]), path[3])
            if len(path) == 4 and path[:2] == ["api", "requests"] and ACTION.match(path[2]):
                return self.handle_request(request, int(path[2]), path[3])
        else:
            return self._json(request, 405, {"error": "method not allowed"})
        if self.board.session(request) is None:  # no telling what exists to strangers
            return self._json(request, 401, {"error": "log in first"})
        return self._json(request, 404, {"error": "no such page"})

    @staticmethod
    def _headers(request) -> None:
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        request.setHeader(b"Content-Security-Policy", CSP.encode("ascii"))

    @staticmethod
    def _json(request, code, body) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    @staticmethod
    def _redirect(request, to: bytes) -> bytes:
        request.setResponseCode(303)
        request.setHeader(b"Location", to)
        return b""

    def _later(self, request, d) -> int:
        """Finish C{request} with what C{d} fires with (code, body), unless it went away."""
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def done(result):
            if gone:
                return
            code, body = result
            if isinstance(body, bytes):
                request.setResponseCode(code)
                request.write(body)
            else:
                request.write(self._json(request, code, body))
            request.finish()

        def failed(failure):
            self.log.failure("board request {path}", failure, path=request.path)
            if not gone:
                request.write(self._json(request, 500, {"error": "server error"}))
                request.finish()

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def _member(self, request, role="viewer"):
        """The session if logged in with C{role} at least; else None and the reply set."""
        session = self.board.session(request)
        if session is None:
            return None, self._json(request, 401, {"error": "log in first"})
        if not session.member.may(role):
            return None, self._json(request, 403, {"error": f"needs the {role} role"})
        return session, None

    # Pages ----------------------------------------------------------------------

    def page(self, request):
        if self.board.session(request) is None:
            return self._redirect(request, b"/board/login")
        request.setHeader(b"Content-Type", TYPES[".html"].encode("ascii"))
        return _static("board.html")

    def static(self, request, name):
        if name not in PUBLIC and self.board.session(request) is None:
            return self._json(request, 401, {"error": "log in first"})
        body = _static(name)
        if body is None:
            return self._json(request, 404, {"error": "no such file"})
        request.setHeader(b"Content-Type", TYPES[os.path.splitext(name)[1]].encode("ascii"))
        return body

    def login_form(self, request, problem: str = "", code: int = 200, name: str = ""):
        lang = self.board.language(request)
        text = LOGIN_TEXT[lang]
        login_token = auth.token()
        self.board.cookie(request, LOGIN_COOKIE, login_token, max_age=3600)
        other = "en" if lang == "zh" else "zh"
        e = html.escape
        body = f"""<!doctype html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(text['title'])}</title><link rel="stylesheet" href="/board/static/board.css"></head>
<body class="login"><main><h1>{e(text['title'])}</h1>
{f'<p class="problem" role="alert">{e(problem)}</p>' if problem else ''}
<form method="post" action="/board/login?lang={lang}">
<input type="hidden" name="csrf" value="{e(login_token)}">
<label>{e(text['name'])}<input name="name" id="name" autocomplete="username" required value="{e(name)}"></label>
<label>{e(text['password'])}<input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="login">{e(text['submit'])}</button>
</form><p><a href="/board/login?lang={other}">{e(text['other'])}</a></p></main></body></html>
"""
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", TYPES[".html"].encode("ascii"))
        return body.encode("utf-8")

    def login(self, request):
        lang = self.board.language(request)
        text = LOGIN_TEXT[lang]
        form = _form(request)
        name = form.get("name", "")[:200]
        if not auth.same(form.get("csrf"), _cookie(request, LOGIN_COOKIE)):
            return self.login_form(request, text["expired"], 403, name)
        address = self.board.address(request)
        d = self.board.log_in(name, form.get("password", ""), address)

        def answered(result):
            session, locked = result
            if locked:
                minutes = max(1, round(locked / 60))
                return 429, self.login_form(request, text["locked"].format(minutes=minutes),
                                            429, name)
            if session is None:
                return 401, self.login_form(request, text["failed"], 401, name)
            self.board.cookie(request, COOKIE, session.token, max_age=int(self.board.lifetime))
            self.board.cookie(request, LOGIN_COOKIE, "", max_age=0)
            request.setHeader(b"Location", f"/board/?lang={lang}".encode("ascii"))
            return 303, b""

        return self._later(request, d.addCallback(answered))

    def logout(self, request):
        session, refused = self._member(request)
        if session is None:
            return refused
        if not self._csrf_ok(request, session):
            return self._json(request, 403, {"error": "CSRF token missing or wrong"})
        self.board.log_out(session)
        self.board.cookie(request, COOKIE, "", max_age=0)
        return self._redirect(request, b"/board/login")

    # The API --------------------------------------------------------------------------

    def me(self, request):
        session, refused = self._member(request)
        if session is None:
            return refused
        m = session.member
        return self._json(request, 200, {
            "name": m.name, "role": m.role, "csrf": session.csrf,
            "may_act": m.may("duty"), "language": self.board.language(request),
            "timezone": self.board.timezone, "expires": session.expires,
            "outcomes": list(self.board.outcomes())})

    def events(self, request):
        session, refused = self._member(request)
        if session is None:
            return refused
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"X-Accel-Buffering", b"no")  # nginx: do not hold the stream
        if not self.board.watch(request, session):
            return self._json(request, 503, {"error": "too many boards open"})
        return server.NOT_DONE_YET

    def recent(self, request):
        session, refused = self._member(request)
        if session is None:
            return refused
        try:
            limit = int(request.args.get(b"limit", [b"20"])[0])
        except ValueError:
            limit = 20
        d = self.board.recent(limit)
        return self._later(request, d.addCallback(lambda alarms: (200, {"alarms": alarms})))

    def calls(self, request):
        """The hotline's recent calls, newest first, with the path each took (viewers too)."""
        session, refused = self._member(request)
        if session is None:
            return refused
        desk = self.board.calls
        if desk is None:
            return self._json(request, 200, {"calls": []})
        try:
            limit = int(request.args.get(b"limit", [b"30"])[0])
        except ValueError:
            limit = 30
        d = desk.recent(limit)
        return self._later(request, d.addCallback(lambda calls: (200, {"calls": calls})))

    def staff(self, request):
        """Admin only: every staff member, their role, and whether they are logged in now."""
        session, refused = self._member(request, "admin")
        if session is None:
            return refused
        online = {m.id for m in self.board.sessions.members()}
        d = self.board.staff()
        d.addCallback(lambda members: (200, {"staff": [
            {"name": m.name, "role": m.role, "online": m.id in online} for m in members]}))
        return self._later(request, d)

    def requests(self, request):
        session, refused = self._member(request)
        if session is None:
            return refused
        desk = self.board.requests
        if desk is None:
            return self._json(request, 200, {"open": [], "done": [], "overdue": 0})
        return self._later(request, desk.snapshot().addCallback(lambda shot: (200, shot)))

    def recording(self, request, request_id):
        """A voicemail's recording, to listen to in the browser (viewers too)."""
        session, refused = self._member(request)
        if session is None:
            return refused
        desk = self.board.requests
        if desk is None:
            return self._json(request, 404, {"error": "no requests here"})
        d = desk.recording(request_id)

        def read(path):
            if not path or not os.path.isfile(path):
                return None
            with open(path, "rb") as f:
                return f.read(RECORDING_LIMIT + 1)

        def answer(body, path):
            if body is None:
                return 404, {"error": "no recording"}
            if len(body) > RECORDING_LIMIT:
                return 413, {"error": "recording too large"}
            kind = AUDIO.get(os.path.splitext(path)[1].lower(), "application/octet-stream")
            request.setHeader(b"Content-Type", kind.encode("ascii"))
            return 200, body

        d.addCallback(lambda path: self.board.off_reactor(read, path).addCallback(answer, path))
        d.addErrback(lambda f: f.trap(LookupError) and (404, {"error": "no such request"}))
        return self._later(request, d)

    def handle_request(self, request, request_id, action):
        session, body, refused = self._acting(request)
        if session is None:
            return refused
        desk = self.board.requests
        if desk is None:
            return self._json(request, 404, {"error": "no requests here"})
        who = session.member.name
        if action == "done":
            d = desk.done(request_id, who, str(body.get("note") or "").strip()[:2000])
        elif action == "call-back":
            phone = str(body.get("from") or "").strip()
            if not phone:
                return self._json(request, 400, {"error": "which phone to call back from?"})
            d = desk.call_back(request_id, who, phone[:64])
        else:
            return self._json(request, 404, {"error": f"no action {action!r}"})
        self.log.info("board: {who} {action} request {id}", who=who, action=action,
                      id=request_id)
        d.addCallback(lambda _: (200, {"ok": True}))
        d.addErrback(lambda f: f.trap(LookupError) and (404, {"error": "no such request"}))
        d.addErrback(lambda f: f.trap(ValueError) and (400, {"error": str(f.value)}))
        return self._later(request, d)

    def act(self, request, alarm_id, action):
        session, body, refused = self._acting(request)
        if session is None:
            return refused
        who = session.member.name
        desk = self.board.desk
        if desk is None:
            return self._json(request, 503, {"error": "the alarm is not running"})
        if action == "acknowledge":
            d = desk.acknowledge(alarm_id, who)
        elif action == "note":
            text = str(body.get("text") or "").strip()
            if not text:
                return self._json(request, 400, {"error": "the note is empty"})
            d = desk.note(alarm_id, who, text)
        elif action == "call-back":
            d = desk.call_back(alarm_id, who)
        elif action == "ring":
            number = str(body.get("number") or "").strip()
            if not number:
                return self._json(request, 400, {"error": "no number to ring"})
            d = defer.maybeDeferred(desk.ring, alarm_id, who, number)
            d.addErrback(lambda f: f.trap(ValueError) and (400, {"error": str(f.value)}))
        elif action == "close":
            outcome = body.get("outcome")
            if outcome not in desk.outcomes:
                return self._json(request, 400, {"error": "outcome: one of "
                                                 + ", ".join(desk.outcomes)})
            d = desk.close(alarm_id, who, outcome, str(body.get("text") or ""))
        else:
            return self._json(request, 404, {"error": f"no action {action!r}"})
        self.log.info("board: {who} {action} alarm {id}", who=who, action=action, id=alarm_id)
        d.addCallback(lambda done: done if isinstance(done, tuple) else (200, {"ok": True})
                      if done else (409, {"error": f"alarm {alarm_id} is not open"}))
        return self._later(request, d)

    def _acting(self, request):
        """
        C{(session, JSON body, None)} for a POST by duty staff or an admin
        with the session's CSRF token; else C{(None, None, the refusal)}.
        """
        session, refused = self._member(request, "duty")
        if session is None:
            return None, None, refused
        if not self._csrf_ok(request, session):
            return None, None, self._json(request, 403, {"error": "CSRF token missing or wrong"})
        body = _json_body(request)
        if body is None:
            return None, None, self._json(request, 400,
                                          {"error": "the body must be a JSON object"})
        return session, body, None

    def _csrf_ok(self, request, session) -> bool:
        given = request.getHeader(b"x-csrf-token")
        if given is None:
            given = _form(request).get("csrf")
        elif isinstance(given, bytes):
            given = given.decode("ascii", "replace")
        return auth.same(given, session.csrf)


def _cookie(request, name: bytes) -> str | None:
    value = request.getCookie(name)
    return value.decode("ascii", "replace") if value else None


def _form(request) -> dict:
    """The first value of each field of a form body (text)."""
    return {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
            for k, v in (request.args or {}).items() if v}


def _json_body(request) -> dict | None:
    content = request.content
    if content is None:
        return {}
    content.seek(0)
    raw = content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return None
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def password_check(reactor, password_hash, password) -> defer.Deferred:
    """L{staff_module.matches} on the reactor's thread pool (tens of ms of CPU)."""
    return threads.deferToThreadPool(reactor, reactor.getThreadPool(), staff_module.matches,
                                     password_hash, password)

