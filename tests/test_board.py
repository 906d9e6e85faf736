"""
The duty board over real HTTP (Twisted's Site on a StringTransport, a
task.Clock): staff accounts, logins, the lockout, sessions, CSRF, roles,
the live events, escaping, and the alarm's desk on a real coordinator.
"""

from __future__ import annotations

import json
import tempfile
from types import SimpleNamespace

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import server

import board.models  # noqa: F401  (declares the staff table before create_all)
from board import staff
from board.plugin import BoardSettings
from board.service import BoardService
from switchboard import duty
from switchboard.observe.web import root as observe_root
from tests.test_alarm_support import Rig, add_household, household, timeline
from tests import databases

pytestmark = pytest.mark.database

PASSWORD = "correct horse battery"


class Response:
    """What the server wrote back: status, headers (lower-case names, lists), body so far."""

    def __init__(self, raw: bytes):
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.code = int(lines[0].split()[1])
        self.headers: dict = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        if self.headers.get("transfer-encoding") == ["chunked"]:
            body = b""
            while rest:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size, 16)
                if n == 0:
                    break
                body, rest = body + rest[:n], rest[n + 2:]
            rest = body
        self.body = rest

    def header(self, name):
        return (self.headers.get(name.lower()) or [None])[0]

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode("utf-8")


class FakeServer:
    """A browser's view of the HTTP port: requests with a cookie jar."""

    def __init__(self, site, peer="192.0.2.7"):
        self.site = site
        self.peer = peer
        self.cookies: dict = {}

    def open(self, method, path, body=b"", headers=None, cookies=True):
        """Send one request; return (transport, channel) with the connection left open."""
        channel = self.site.buildProtocol(IPv4Address("TCP", self.peer, 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", self.peer, 40000),
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8573))
        channel.makeConnection(transport)
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:8573"]
        if cookies and self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body)
        return transport, channel

    def request(self, method, path, body=b"", headers=None, cookies=True) -> Response:
        transport, _ = self.open(method, path, body, headers, cookies)
        response = Response(transport.value())
        for cookie in response.headers.get("set-cookie", []):
            name, _, value = cookie.split(";")[0].partition("=")
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post_form(self, path, fields: dict, **kw):
        from urllib.parse import urlencode
        return self.request("POST", path, urlencode(fields).encode("utf-8"),
                            {"Content-Type": "application/x-www-form-urlencoded"}, **kw)

    def post_json(self, path, body: dict, csrf=None, **kw):
        headers = {"Content-Type": "application/json"}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return self.request("POST", path, json.dumps(body).encode("utf-8"), headers, **kw)

    def log_in(self, name, password=PASSWORD):
        form = self.get("/board/login")
        token = form.text().split('name="csrf" value="')[1].split('"')[0]
        return self.post_form("/board/login", {"csrf": token, "name": name,
                                               "password": password})

    def csrf(self):
        return self.get("/board/api/me").json()["csrf"]


class AlarmFeatureStandIn:
    """A running feature holding a desk, as the alarm feature does."""

    handlers: dict = {}

    def __init__(self, desk):
        self.desk = desk


def cheap_hashes(case):
    """argon2id at its lowest cost: the tests check logins, not the hash's strength."""
    from argon2 import PasswordHasher
    case.patch(staff, "hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


class Case(SynchronousTestCase):
    def setUp(self):
        cheap_hashes(self)
        self.tmp = tempfile.mkdtemp()
        self.rig = Rig(self.tmp)
        self.clock = self.rig.clock
        add_household(self.rig.db, 1)
        from alarm.desk import AlarmDesk
        self.desk = AlarmDesk(self.rig.coordinator, self.rig.sync)
        with self.rig.db.sessions.begin() as session:
            staff.add(session, "王芳", "duty", PASSWORD)
            staff.add(session, "viewer", "viewer", PASSWORD)
            staff.add(session, "boss", "admin", PASSWORD)
        self.board = BoardService(
            BoardSettings(), self.rig.sync, [AlarmFeatureStandIn(self.desk)], "Asia/Shanghai",
            reactor=self.clock,
            check_password=lambda h, p: defer.succeed(staff.matches(h, p)))
        self.board.timer = lambda: 0.0   # frames cost nothing: sent every batch
        self.board.start()
        self.addCleanup(self.board.stop)
        self.site = server.Site(observe_root(None, None, pages=self.board.pages), reactor=self.clock)
        self.browser = FakeServer(self.site)

    def raise_(self, snapshot=None, caller="87650001"):
        return self.successResultOf(self.rig.coordinator.raise_alarm(caller, snapshot))


class AnonymousTests(Case):
    def test_every_page_and_action_refuses_an_anonymous_request(self):
        alarm = self.raise_(household(1, 2))
        page = self.browser.get("/board/")
        self.assertEqual((page.code, page.header("location")), (303, "/board/login"))
        for path in ("/board/api/me", "/board/api/events", "/board/api/recent",
                     "/board/static/board.js", "/board/static/board.html", "/board/nothing"):
            self.assertEqual(self.browser.get(path).code, 401, path)
        for action in ("acknowledge", "note", "close"):
            r = self.browser.post_json(f"/board/api/alarms/{alarm.id}/{action}",
                                       {"outcome": "test", "text": "x"}, csrf="guess")
            self.assertEqual(r.code, 401, action)
        self.assertEqual(self.browser.post_form("/board/logout", {"csrf": "x"}).code, 401)
        self.assertTrue(alarm.active)
        self.assertNotIn("acknowledged", [k for k, _, _ in timeline(self.rig.db, alarm.id)])

    def test_a_made_up_cookie_is_anonymous(self):
        self.browser.cookies["sb_session"] = "made-up"
        self.assertEqual(self.browser.get("/board/api/me").code, 401)

    def test_the_login_page_and_its_style_are_public_and_the_rest_of_the_port_stays(self):
        form = self.browser.get("/board/login")
        self.assertEqual(form.code, 200)
        self.assertIn("值班看板", form.text())
        self.assertIn("English", form.text())
        self.assertIn("Log in", self.browser.get("/board/login?lang=en").text())
        self.assertEqual(self.browser.get("/board/static/board.css").code, 200)
        self.assertIn("default-src 'none'", form.header("content-security-policy"))


class LoginTests(Case):
    def test_a_good_login_sets_a_strict_httponly_cookie_and_me_says_who(self):
        r = self.browser.log_in("王芳")
        self.assertEqual((r.code, r.header("location")), (303, "/board/?lang=zh"))
        cookie = next(c for c in r.headers["set-cookie"] if c.startswith("sb_session="))
        flags = [f.strip().lower() for f in cookie.split(";")]
        self.assertIn("httponly", flags)
        self.assertIn("samesite=strict", flags)
        self.assertIn("path=/board", flags)
        me = self.browser.get("/board/api/me").json()
        self.assertEqual((me["name"], me["role"], me["may_act"], me["timezone"]),
                         ("王芳", "duty", True, "Asia/Shanghai"))
        self.assertGreaterEqual(len(me["csrf"]), 40)
        self.assertEqual(self.browser.get("/board/").code, 200)
        self.assertEqual(self.browser.get("/board/static/board.js").code, 200)

    def test_a_wrong_password_or_name_is_refused_alike(self):
        wrong = self.browser.log_in("王芳", "not the password at all")
        nobody = self.browser.log_in("nobody", PASSWORD)
        self.assertEqual((wrong.code, nobody.code), (401, 401))
        self.assertIn("用户名或密码不对", wrong.text())
        self.assertNotIn("sb_session", self.browser.cookies)

    def test_the_login_form_needs_its_own_token(self):
        self.browser.get("/board/login")
        r = self.browser.post_form("/board/login", {"csrf": "forged", "name": "王芳",
                                                    "password": PASSWORD})
        self.assertEqual(r.code, 403)
        self.assertNotIn("sb_session", self.browser.cookies)

    def test_lockout_after_five_failures_even_with_the_right_password_then_it_lifts(self):
        for _ in range(5):
            self.assertEqual(self.browser.log_in("王芳", "wrong password!!").code, 401 if _ < 4
                             else 429)
        locked = self.browser.log_in("王芳")
        self.assertEqual(locked.code, 429)
        self.assertIn("15 分钟", locked.text())
        self.clock.advance(15 * 60)
        self.assertEqual(self.browser.log_in("王芳").code, 303)

    def test_lockout_by_address_stops_a_guesser_trying_many_names(self):
        for i in range(5):
            self.browser.log_in(f"name{i}", "wrong password!!")
        self.assertEqual(self.browser.log_in("boss").code, 429)
        elsewhere = FakeServer(self.site, peer="192.0.2.8")
        self.assertEqual(elsewhere.log_in("boss").code, 303)

    def test_a_session_expires_and_logout_ends_it(self):
        self.browser.log_in("王芳")
        self.clock.advance(14 * 3600 - 1)
        csrf = self.browser.csrf()
        self.assertEqual(self.browser.post_form("/board/logout", {"csrf": "wrong"}).code, 403)
        out = self.browser.post_form("/board/logout", {"csrf": csrf})
        self.assertEqual((out.code, out.header("location")), (303, "/board/login"))
        self.assertEqual(self.browser.get("/board/api/me").code, 401)
        self.browser.log_in("王芳")
        self.clock.advance(14 * 3600)
        self.assertEqual(self.browser.get("/board/api/me").code, 401)

    def test_a_removed_staff_member_is_logged_out_at_the_next_look(self):
        self.browser.log_in("王芳")
        with self.rig.db.sessions.begin() as session:
            self.assertTrue(staff.remove(session, "王芳"))
        self.assertEqual(self.browser.get("/board/api/me").code, 200)
        self.clock.advance(60)   # the board reads the staff every minute
        self.assertEqual(self.browser.get("/board/api/me").code, 401)

    def test_an_echoed_name_is_escaped_on_the_login_page(self):
        r = self.browser.log_in("<script>alert(1)</script>", "wrong password!!")
        self.assertNotIn("<script>alert", r.text())
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", r.text())


class ActionTests(Case):
    def setUp(self):
        super().setUp()
        self.alarm = self.raise_(household(1, 2))

    def act(self, action, body, csrf=True):
        token = self.browser.csrf() if csrf else None
        return self.browser.post_json(f"/board/api/alarms/{self.alarm.id}/{action}", body,
                                      csrf=token)

    def test_acknowledge_note_and_close_land_on_the_timeline_attributed(self):
        self.browser.log_in("王芳")
        self.clock.advance(5)
        self.assertEqual(self.act("acknowledge", {}).code, 200)
        self.assertEqual(self.act("note", {"text": "已派保安\n上楼"}).code, 200)
        self.assertEqual(self.act("close", {"outcome": "false-alarm", "text": "孩子误按"}).code,
                         200)
        self.assertFalse(self.alarm.active)
        self.successResultOf(self.rig.recorder.flush())
        events = timeline(self.rig.db, self.alarm.id)
        self.assertIn(("acknowledged", "王芳", "handling it"), events)
        self.assertIn(("note", "王芳", "已派保安 上楼"), events)
        self.assertEqual(events[-1][0], "closed")
        self.assertEqual(events[-1][2], "false alarm: closed by 王芳: 孩子误按")
        # every leg still ringing was hung up
        self.assertTrue(all(leg.state == "cancelled" for leg in self.alarm.legs.values()))
        self.assertEqual(self.act("close", {"outcome": "test"}).code, 409)

    def test_without_the_csrf_token_nothing_is_done(self):
        self.browser.log_in("王芳")
        self.assertEqual(self.act("close", {"outcome": "test"}, csrf=False).code, 403)
        r = self.browser.post_json(f"/board/api/alarms/{self.alarm.id}/close",
                                   {"outcome": "test"}, csrf="x" * 43)
        self.assertEqual(r.code, 403)
        self.assertTrue(self.alarm.active)

    def test_a_viewer_sees_but_cannot_close_acknowledge_or_note(self):
        self.browser.log_in("viewer")
        me = self.browser.get("/board/api/me").json()
        self.assertFalse(me["may_act"])
        for action, body in (("close", {"outcome": "test"}), ("acknowledge", {}),
                             ("note", {"text": "x"})):
            self.assertEqual(self.act(action, body).code, 403, action)
        self.assertTrue(self.alarm.active)
        self.assertEqual(self.browser.get("/board/api/recent").code, 200)

    def test_an_admin_may_act(self):
        self.browser.log_in("boss")
        self.assertEqual(self.act("close", {"outcome": "test"}).code, 200)

    def test_bad_requests_are_refused_with_reasons(self):
        self.browser.log_in("王芳")
        self.assertEqual(self.act("close", {"outcome": "whatever"}).code, 400)
        self.assertEqual(self.act("note", {"text": "  "}).code, 400)
        self.assertEqual(self.act("explode", {}).code, 404)
        token = self.browser.csrf()
        r = self.browser.request("POST", f"/board/api/alarms/{self.alarm.id}/note",
                                 b"not json", {"X-CSRF-Token": token})
        self.assertEqual(r.code, 400)
        self.assertEqual(self.browser.post_json("/board/api/alarms/999/acknowledge", {},
                                                csrf=token).code, 409)
        self.assertTrue(self.alarm.active)


class EventTests(Case):
    def frames(self, transport):
        raw = Response(transport.value()).body.decode("utf-8")
        out = []
        for block in raw.split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines()
                         if ": " in line and not line.startswith(":"))
            if "event" in lines:
                out.append((lines["event"], json.loads(lines["data"])))
        return out

    def batch(self, transport):
        """The last frame of changes, once the board has sent what it gathered."""
        self.clock.advance(self.board.batch)
        kind, data = self.frames(transport)[-1]
        self.assertEqual(kind, "changes")
        return data

    def test_a_snapshot_then_every_change_as_it_happens(self):
        self.browser.log_in("王芳")
        transport, channel = self.browser.open("GET", "/board/api/events", cookies=True)
        (kind, first), = self.frames(transport)
        self.assertEqual((kind, first["alarms"]), ("snapshot", []))
        self.assertEqual(Response(transport.value()).header("content-type"),
                         "text/event-stream; charset=utf-8")
        snapshot = household(1, 2, notes="轮椅 <b>wheelchair</b>")
        snapshot.residents = "陈梅"
        alarm = self.raise_(snapshot, caller='"<script>x</script>" <87650001>')
        self.assertEqual(len(self.frames(transport)), 1)   # gathered, not sent yet
        data = self.batch(transport)
        self.assertEqual([e["kind"] for e in data["entries"]], ["opened", "ringing", "ringing"])
        view, = data["views"]
        self.assertEqual((view["id"], view["status"], view["residents"], view["notes"]),
                         (alarm.id, "open", "陈梅", "轮椅 <b>wheelchair</b>"))
        self.assertEqual(view["caller"], '"<script>x</script>" <87650001>')  # as data, not HTML
        self.assertEqual(view["next_stage"], {"name": "duty officer", "at": alarm.opened + 60})
        self.assertEqual([leg["state"] for leg in view["legs"]], ["ringing", "ringing"])
        # A neighbour answers and presses 1: the board hears both.
        leg = next(iter(alarm.legs.values()))
        self.successResultOf(self.rig.coordinator.answered(alarm.id, leg.id))
        self.assertEqual(self.batch(transport)["views"][0]["legs"][0]["state"], "answered")
        self.successResultOf(self.rig.coordinator.confirm(alarm.id, leg.id))
        last = self.batch(transport)["views"][0]
        self.assertEqual(last["legs"][0]["state"], "confirmed")
        self.assertEqual(last["status"], "confirmed")
        self.assertIsNone(last["next_stage"])
        # A second screen opening now gets the alarm in its snapshot.
        other, _ = self.browser.open("GET", "/board/api/events")
        self.assertEqual([a["id"] for a in self.frames(other)[0][1]["alarms"]], [alarm.id])

    def test_streams_are_kept_alive_and_closed_when_the_session_ends(self):
        self.browser.log_in("王芳")
        transport, channel = self.browser.open("GET", "/board/api/events")
        self.clock.advance(15)
        self.assertIn(b": keepalive", transport.value())
        self.assertEqual(len(self.board.watchers), 1)
        self.board.sessions.end(self.browser.cookies["sb_session"])
        self.clock.advance(15)
        self.assertEqual(len(self.board.watchers), 0)
        self.assertTrue(transport.value().endswith(b"0\r\n\r\n"))  # the stream finished

    def test_under_a_burst_frames_come_less_often_so_the_boards_take_a_tenth_of_the_reactor(
            self):
        self.browser.log_in("王芳")
        transport, _ = self.browser.open("GET", "/board/api/events")
        costs = iter([0.0, 0.03])   # the next frame took 30 ms
        self.board.timer = lambda: next(costs)
        self.raise_(household(1, 2))
        self.clock.advance(self.board.batch)
        self.assertEqual(len(self.frames(transport)), 2)
        add_household(self.rig.db, 2)
        self.raise_(household(2, 2, own=20), caller="87650020")
        self.clock.advance(0.299)
        self.assertEqual(len(self.frames(transport)), 2)   # 0.3 s after a 30 ms frame
        self.board.timer = lambda: 0.0
        self.clock.advance(0.001)
        self.assertEqual(len(self.frames(transport)), 3)

    def test_a_closed_connection_stops_being_written_to(self):
        self.browser.log_in("王芳")
        transport, channel = self.browser.open("GET", "/board/api/events")
        channel.connectionLost(Exception("gone"))
        self.assertEqual(len(self.board.watchers), 0)
        self.raise_(household(1, 2))   # nothing raises, nothing is gathered
        self.assertEqual(self.board._entries, [])

    def test_a_burst_reaches_fifty_watchers_in_one_frame_encoded_once(self):
        self.browser.log_in("王芳")
        streams = [self.browser.open("GET", "/board/api/events")[0] for _ in range(50)]
        import board.service
        encoded = []
        real = board.service.frame
        self.patch(board.service, "frame", lambda *a: encoded.append(a) or real(*a))
        for n in range(1, 6):
            add_household(self.rig.db, 10 + n)
            self.raise_(household(10 + n, 3, own=20 * n), caller=f"8765{20 * n:04d}")
        self.clock.advance(self.board.batch)
        (kind, data), = encoded
        self.assertEqual(len(data["entries"]), 5 * (1 + 3))   # each: opened, three legs ringing
        self.assertEqual(len(data["views"]), 5)
        for transport in streams:
            frames = self.frames(transport)
            self.assertEqual(len(frames), 2)
            self.assertEqual(frames[1][1]["entries"], data["entries"])


class DeskTests(Case):
    def test_the_desk_is_found_among_the_running_features(self):
        self.assertIs(duty.find([object(), AlarmFeatureStandIn(self.desk)]), self.desk)
        self.assertIsNone(duty.find([AlarmFeatureStandIn(None)]))
        from zope.interface.verify import verifyObject
        self.assertTrue(verifyObject(duty.IAlarmDesk, self.desk))

    def test_next_stage_counts_from_the_first_ring_of_an_unregistered_caller(self):
        alarm = self.raise_(None, caller="87659999")   # duty rung at once
        view = self.desk.view(alarm)
        self.assertEqual(view["next_stage"], {"name": "property security",
                                              "at": alarm.opened + 60})
        self.clock.advance(61)
        self.assertEqual(self.desk.view(alarm)["next_stage"]["name"], "outside")

    def test_recent_alarms_with_their_timelines(self):
        self.browser.log_in("viewer")
        alarm = self.raise_(household(1, 2))
        self.successResultOf(self.desk.acknowledge(alarm.id, "王芳"))
        self.successResultOf(self.desk.close(alarm.id, "王芳", "test"))
        self.successResultOf(self.rig.recorder.flush())
        recent = self.browser.get("/board/api/recent").json()["alarms"]
        self.assertEqual(recent[0]["id"], alarm.id)
        self.assertEqual(recent[0]["status"], "closed")
        kinds = [e["kind"] for e in recent[0]["timeline"]]
        self.assertEqual(kinds[0], "opened")
        self.assertIn("acknowledged", kinds)
        self.assertEqual(kinds[-1], "closed")
        self.assertEqual(recent[0]["opened"], alarm.opened)


class StaffTests(SynchronousTestCase):
    def setUp(self):
        cheap_hashes(self)
        from tests.test_alarm_support import database
        self.db = database(tempfile.mkdtemp())

    def test_passwords_are_hashed_with_argon2id_and_checked(self):
        with self.db.sessions.begin() as session:
            staff.add(session, "li", "viewer", PASSWORD)
        with self.db.session() as session:
            member, hashed = staff.lookup(session, "li")
        self.assertTrue(hashed.startswith("$argon2id$"))
        self.assertNotIn(PASSWORD, hashed)
        self.assertTrue(staff.matches(hashed, PASSWORD))
        self.assertFalse(staff.matches(hashed, PASSWORD + "!"))
        self.assertFalse(staff.matches(None, PASSWORD))
        self.assertTrue(member.may("viewer"))
        self.assertFalse(member.may("duty"))

    def test_refused_accounts(self):
        with self.db.sessions.begin() as session:
            for name, role, password in (("a b", "duty", PASSWORD), ("li", "god", PASSWORD),
                                         ("li", "duty", "short"), ("<li>", "duty", PASSWORD)):
                with self.assertRaises(staff.StaffError):
                    staff.add(session, name, role, password)

    def test_the_commands_never_take_the_password_as_an_argument(self):
        import io
        from board.cli import read_password
        from switchboard.cli import build_parser
        parser = build_parser()
        with self.assertRaises(SystemExit):
            parser.parse_args(["staff", "add", "li", "--role", "duty", "--password", "x"])
        self.assertEqual(read_password(True, io.StringIO(PASSWORD + "\nrest")), PASSWORD)

        class Terminal(io.StringIO):
            def isatty(self):
                return True

        asked = iter([PASSWORD, PASSWORD + "typo"])
        with self.assertRaises(staff.StaffError):
            read_password(False, Terminal(), ask=lambda prompt: next(asked))


class PageTests(SynchronousTestCase):
    def test_the_page_script_never_writes_html(self):
        from board.web import STATIC
        with open(f"{STATIC}/board.js", encoding="utf-8") as f:
            script = f.read()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            self.assertNotIn(sink, script)


class RingTests(Case):
    def test_duty_staff_ring_one_more_phone_into_the_responders_context(self):
        alarm = self.raise_(household(1, 2))
        self.browser.log_in("王芳")
        token = self.browser.csrf()
        placed = len(self.rig.ami.calls)
        r = self.browser.post_json(f"/board/api/alarms/{alarm.id}/ring",
                                   {"number": "0591-87650099"}, csrf=token)
        self.assertEqual(r.code, 200)
        call, = self.rig.ami.calls[placed:]
        self.assertEqual(call.channel, "PJSIP/87650099")
        self.assertEqual(call.variables["SWITCHBOARD_ALARM"], str(alarm.id))
        self.assertEqual(call.variables["SWITCHBOARD_STAGE"], "staff: 王芳")
        self.successResultOf(self.rig.recorder.flush())
        self.assertIn(("ringing", "+8659187650099", "staff: 王芳"), timeline(self.rig.db, alarm.id))
        refused = self.browser.post_json(f"/board/api/alarms/{alarm.id}/ring",
                                         {"number": "not a number"}, csrf=token)
        self.assertEqual(refused.code, 400)
        self.assertEqual(len(self.rig.ami.calls), placed + 1)

    def test_a_viewer_cannot_ring(self):
        alarm = self.raise_(household(1, 2))
        self.browser.log_in("viewer")
        placed = len(self.rig.ami.calls)
        r = self.browser.post_json(f"/board/api/alarms/{alarm.id}/ring",
                                   {"number": "87650099"}, csrf=self.browser.csrf())
        self.assertEqual((r.code, len(self.rig.ami.calls)), (403, placed))


class SettingsTests(SynchronousTestCase):
    def test_the_board_section_is_checked_with_locations(self):
        import os
        from switchboard import settings as settings_module
        from switchboard.yamlconf import ConfigError
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "s.yaml")
        with open(path, "w") as f:
            f.write("database: sqlite:///x.db\nnumbers: {region: CN, area_code: \"591\"}\n"
                    "board: {language: fr, session_hours: 0, lockout_attempts: two, nonsense: 1}\n")
        with self.assertRaises(ConfigError) as caught:
            settings_module.load(path)
        text = str(caught.exception)
        for key in ("board.language", "board.session_hours", "board.lockout_attempts",
                    "board.nonsense"):
            self.assertIn(key, text)
        self.assertIn("s.yaml:3:", text)
        with open(path, "w") as f:
            f.write("database: sqlite:///x.db\nnumbers: {region: CN, area_code: \"591\"}\n"
                    "board: {language: en, secure_cookies: true, trusted_proxies: [127.0.0.1]}\n")
        section = settings_module.load(path).section("board")
        self.assertEqual((section.language, section.secure_cookies, section.trusted_proxies,
                          section.session_hours), ("en", True, ("127.0.0.1",), 14.0))


class AdminTests(Case):
    def test_only_an_admin_sees_the_staff_and_who_is_logged_in(self):
        self.browser.log_in("王芳")
        self.assertEqual(self.browser.get("/board/api/staff").code, 403)
        admin = FakeServer(self.site, peer="192.0.2.9")
        admin.log_in("boss")
        staff_now = admin.get("/board/api/staff").json()["staff"]
        self.assertEqual([(m["name"], m["role"], m["online"]) for m in staff_now],
                         [("boss", "admin", True), ("viewer", "viewer", False),
                          ("王芳", "duty", True)])
        self.assertEqual(FakeServer(self.site).get("/board/api/staff").code, 401)


class RestartTests(Case):
    def test_who_was_handling_an_alarm_is_read_back_after_a_restart(self):
        alarm = self.raise_(household(1, 2))
        self.successResultOf(self.desk.acknowledge(alarm.id, "王芳"))
        at = self.clock.seconds()
        self.successResultOf(self.rig.recorder.flush())
        from alarm.desk import AlarmDesk
        again = AlarmDesk(self.rig.coordinator, self.rig.sync)   # a new process's desk
        self.assertIsNone(again.view(alarm)["acknowledged"])
        self.assertEqual(self.successResultOf(again.recover([alarm.id, 999])), 1)
        self.assertEqual(again.view(alarm)["acknowledged"], {"by": "王芳", "at": at})


class WiringTests(SynchronousTestCase):
    def test_the_server_serves_the_board_on_its_http_port_and_finds_the_alarm_desk(self):
        import os
        from dataclasses import replace
        from twisted.internet.testing import MemoryReactorClock
        from switchboard import settings as settings_module
        from switchboard.observe.service import ObserveService, pages
        from switchboard.service import build
        from tests.test_features import CONFIG
        folder = tempfile.mkdtemp()
        settings = replace(settings_module.load(CONFIG),
                           database=databases.url(folder, "db"))
        reactor = MemoryReactorClock()
        server = build(settings, reactor)
        self.addCleanup(server.database.close)
        running, = [f for f in server.features if isinstance(f, BoardService)]
        self.assertIs(pages(server)[b"board"], running.pages[b"board"])
        observe, = [s for s in server if isinstance(s, ObserveService)]
        observe.startService()
        self.addCleanup(observe.stopService)
        (_, site, *_), = [p for p in reactor.tcpServers if p[0] == settings.http.port]
        self.assertIs(site.resource.children[b"board"], running.pages[b"board"])
        running.start()
        self.addCleanup(running.stop)
        alarm, = [f for f in server.features if type(f).__name__ == "AlarmFeature"]
        self.assertIs(running.desk, alarm.desk)


class CallBackTests(Case):
    def setUp(self):
        super().setUp()

        class AMI:
            def __init__(self):
                self.asked = []

            def originate(self, channel, **kwargs):
                d = defer.Deferred()
                self.asked.append((channel, kwargs, d))
                return d

        self.desk.ami = self.ami = AMI()

    def test_the_caller_is_rung_back_into_the_alarms_room_and_the_outcome_recorded(self):
        from switchboard.ami import OriginateResult
        alarm = self.raise_(household(1, 2))
        self.browser.log_in("王芳")
        r = self.browser.post_json(f"/board/api/alarms/{alarm.id}/call-back", {},
                                   csrf=self.browser.csrf())
        self.assertEqual(r.code, 200)
        (channel, kwargs, d), = self.ami.asked
        self.assertEqual(channel, "PJSIP/87650001")
        self.assertEqual((kwargs["application"], kwargs["data"]),
                         ("ConfBridge", f"{alarm.room},alarm_bridge,alarm_caller,"
                                        "alarm_caller_menu"))
        self.assertEqual(kwargs["caller_id"], '"ALARM" <12345>')
        d.callback(OriginateResult("x", "busy", 5, "busy"))
        self.successResultOf(self.rig.recorder.flush())
        events = timeline(self.rig.db, alarm.id)
        self.assertIn(("calling-back", "王芳", "calling +8659187650001 back"), events)
        self.assertIn(("called-back", "+8659187650001", "busy"), events)

    def test_a_viewer_cannot_and_an_ended_alarm_is_not_called_back(self):
        alarm = self.raise_(household(1, 2))
        self.browser.log_in("viewer")
        r = self.browser.post_json(f"/board/api/alarms/{alarm.id}/call-back", {},
                                   csrf=self.browser.csrf())
        self.assertEqual(r.code, 403)
        self.successResultOf(self.rig.coordinator.close(alarm.id))
        self.assertFalse(self.successResultOf(self.desk.call_back(alarm.id, "王芳")))
        self.assertEqual(self.ami.asked, [])


class RequestsStandIn:
    """What the callback feature offers the board (IRequestDesk), in memory."""

    def __init__(self, recording):
        from switchboard.listeners import Listeners
        self.listeners = Listeners()
        self.rows = {7: {"id": 7, "kind": "voicemail", "caller": "<b>87650003</b>",
                         "office_label": "居委会", "requested_at": "2026-12-02T01:00:00+00:00",
                         "overdue": True, "recording": recording, "called_back_at": None}}
        self.done_calls, self.calls = [], []

    def snapshot(self):
        return defer.succeed({"open": list(self.rows.values()), "done": [], "overdue": 1})

    def watch(self, listener):
        self.listeners.add(listener)
        return lambda: self.listeners.remove(listener)

    def done(self, request_id, who, note):
        if request_id not in self.rows:
            return defer.fail(LookupError("no request"))
        self.done_calls.append((request_id, who, note))
        self.listeners(request_id, "done")
        return defer.succeed(None)

    def call_back(self, request_id, who, from_phone):
        if from_phone == "nonsense":
            return defer.fail(ValueError("--from 'nonsense': not a phone number or channel"))
        self.calls.append((request_id, who, from_phone))
        return defer.succeed(True)

    def recording(self, request_id):
        row = self.rows.get(request_id)
        return defer.succeed(row["recording"]) if row else defer.fail(LookupError("no"))


class RequestTests(Case):
    def setUp(self):
        super().setUp()
        import os
        self.wav = os.path.join(self.tmp, "msg0000.wav")
        with open(self.wav, "wb") as f:
            f.write(b"RIFF....WAVEfmt ")
        self.requests = RequestsStandIn(self.wav)
        self.board.stop()
        self.board.services.append(AlarmFeatureStandIn(None))
        self.board.services[-1].requests = self.requests
        self.board.start()
        self.board.off_reactor = lambda f, *a: defer.succeed(f(*a))

    def test_the_callback_offers_the_interface_and_only_what_provides_it_is_found(self):
        from zope.interface.verify import verifyObject
        from callback.desk import RequestDesk
        self.assertTrue(verifyObject(duty.IRequestDesk, RequestDesk(None, None, None)))
        self.assertIs(self.board.requests, None)  # the stand-in does not declare it...

    def test_requests_are_listed_heard_done_and_called_back_by_duty_staff(self):
        from zope.interface import alsoProvides
        alsoProvides(self.requests, duty.IRequestDesk)
        self.board.stop()
        self.board.start()
        self.assertIs(self.board.requests, self.requests)
        self.assertEqual(self.browser.get("/board/api/requests").code, 401)
        self.assertEqual(self.browser.get("/board/api/requests/7/recording").code, 401)
        self.browser.log_in("viewer")
        listed = self.browser.get("/board/api/requests").json()
        self.assertEqual(listed["open"][0]["caller"], "<b>87650003</b>")   # data, not HTML
        audio = self.browser.get("/board/api/requests/7/recording")
        self.assertEqual((audio.code, audio.header("content-type"), audio.body),
                         (200, "audio/wav", b"RIFF....WAVEfmt "))
        self.assertEqual(self.browser.get("/board/api/requests/8/recording").code, 404)
        token = self.browser.csrf()
        self.assertEqual(self.browser.post_json("/board/api/requests/7/done", {"note": "x"},
                                                csrf=token).code, 403)   # a viewer
        duty_staff = FakeServer(self.site, peer="192.0.2.10")
        duty_staff.log_in("王芳")
        stream, _ = duty_staff.open("GET", "/board/api/events")
        token = duty_staff.csrf()
        self.assertEqual(duty_staff.post_json("/board/api/requests/7/done", {"note": "已回电"}).code,
                         403)   # no CSRF token
        r = duty_staff.post_json("/board/api/requests/7/done", {"note": "已回电"}, csrf=token)
        self.assertEqual(r.code, 200)
        self.assertEqual(self.requests.done_calls, [(7, "王芳", "已回电")])
        self.assertIn(b"event: requests", stream.value())
        self.assertEqual(duty_staff.post_json("/board/api/requests/9/done", {}, csrf=token).code,
                         404)
        r = duty_staff.post_json("/board/api/requests/7/call-back", {"from": "87650190"},
                                 csrf=token)
        self.assertEqual(r.code, 200)
        self.assertEqual(self.requests.calls, [(7, "王芳", "87650190")])
        self.assertEqual(duty_staff.post_json("/board/api/requests/7/call-back",
                                              {"from": "nonsense"}, csrf=token).code, 400)
        self.assertEqual(duty_staff.post_json("/board/api/requests/7/call-back", {},
                                              csrf=token).code, 400)


class RequestDeskTests(SynchronousTestCase):
    def test_the_callbacks_desk_over_real_requests(self):
        from datetime import datetime, timezone
        import callback.models  # noqa: F401
        from callback.desk import RequestDesk
        from callback.requests import Requests
        from tests.test_alarm_support import DIALER, SyncDatabase, database
        from switchboard.ami import OriginateResult
        db = database(tempfile.mkdtemp())
        requests = Requests(SyncDatabase(db))
        self.successResultOf(requests.add("87650003", "1.1", datetime.now(timezone.utc)))

        class AMI:
            asked = []

            def originate(self, channel, **kwargs):
                self.asked.append((channel, kwargs))
                return defer.succeed(OriginateResult("x", "answered", 4, "answered"))

        desk = RequestDesk(requests, AMI(), DIALER)
        heard = []
        stop = desk.watch(lambda request_id, what: heard.append((request_id, what)))
        shot = self.successResultOf(desk.snapshot())
        request_id = shot["open"][0]["id"]
        self.assertTrue(self.successResultOf(desk.call_back(request_id, "王芳", "87650190")))
        (channel, kwargs), = AMI.asked
        self.assertEqual((channel, kwargs["application"]), ("PJSIP/87650190", "Dial"))
        self.assertIn("PJSIP/87650003", kwargs["data"])
        self.successResultOf(desk.done(request_id, "王芳", "已回电"))
        done = self.successResultOf(desk.snapshot())["done"][0]
        self.assertEqual((done["done_by"], done["note"]), ("王芳", "已回电"))
        self.assertIsNotNone(done["called_back_at"])
        self.assertEqual([w for _, w in heard], ["called back", "done"])
        self.assertIsNone(self.successResultOf(desk.recording(request_id)))
        self.failureResultOf(desk.done(999, "王芳", ""), LookupError)
        stop()


class CallDeskStandIn:
    """The hotline's calls as the board reads them (L{duty.ICallDesk})."""

    def __init__(self):
        self.listeners = []
        self.calls = [{"id": 2, "caller": "+8659187650003", "hotline": "12345",
                       "started": "2026-12-03T01:02:03+00:00", "answered": None,
                       "ended": "2026-12-03T01:03:00+00:00", "outcome": "voicemail",
                       "destination": "<img src=x onerror=alert(1)>",
                       "path": ["menu main: pressed 1", "committee: voicemail"]}]

    def recent(self, limit):
        return defer.succeed(self.calls[:limit])

    def watch(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)


class CallTests(Case):
    def test_recent_hotline_calls_with_their_path_live_and_as_data(self):
        from zope.interface import alsoProvides
        desk = CallDeskStandIn()
        alsoProvides(desk, duty.ICallDesk)
        self.board.stop()
        self.board.services.append(AlarmFeatureStandIn(None))
        self.board.services[-1].calls = desk
        self.board.start()
        self.assertIs(self.board.calls, desk)
        self.assertEqual(self.browser.get("/board/api/calls").code, 401)
        self.browser.log_in("viewer")
        listed = self.browser.get("/board/api/calls?limit=5").json()
        self.assertEqual(listed["calls"][0]["path"], ["menu main: pressed 1", "committee: voicemail"])
        self.assertEqual(listed["calls"][0]["destination"], "<img src=x onerror=alert(1)>")
        stream, _ = self.browser.open("GET", "/board/api/events")
        desk.listeners[0]("1764723723.7")        # a call recorded as it ended
        self.assertIn(b"event: calls", stream.value())
        self.board.stop()
        self.assertEqual(desk.listeners, [])


class CallDeskTests(SynchronousTestCase):
    def test_the_hotlines_desk_reads_the_call_log_newest_first(self):
        from datetime import datetime, timezone

        from switchboard import migrations
        from switchboard.calllog import CallRecord
        from switchboard.hotline.desk import CallDesk
        from zope.interface.verify import verifyObject
        from tests.test_hotline_support import SyncDatabase
        db = SyncDatabase(databases.url(tempfile.mkdtemp(), "calls"))
        self.addCleanup(db.close)
        migrations.upgrade(db.engine)
        with db.sessions.begin() as session:
            for n in range(3):
                session.add(CallRecord(uniqueid=f"u{n}", caller=f"+865918765000{n}",
                                       hotline="12345", path=json.dumps([f"step {n}"]),
                                       outcome="answered", destination="committee",
                                       started=datetime(2026, 12, 3, 1, n, tzinfo=timezone.utc)))
        desk = CallDesk(SimpleCallLog(), db)
        self.assertTrue(verifyObject(duty.ICallDesk, desk))
        calls = self.successResultOf(desk.recent(2))
        self.assertEqual([c["caller"] for c in calls], ["+8659187650002", "+8659187650001"])
        self.assertEqual(calls[0]["path"], ["step 2"])
        self.assertEqual(calls[0]["started"], "2026-12-03T01:02:00+00:00")
        self.assertEqual(len(self.successResultOf(desk.recent(10 ** 6))), 3)
        heard = []
        stop = desk.watch(heard.append)
        # The call with record 9 ends: told at once, its row rewritten a moment later.
        from switchboard.calllog import Call
        with db.sessions.begin() as session:
            session.add(CallRecord(id=9, uniqueid="u9", caller="+8659187650009", hotline="12345",
                                   path="[]", outcome="in progress",
                                   started=datetime(2026, 12, 3, 1, 9, tzinfo=timezone.utc)))
        ended = Call(started=datetime(2026, 12, 3, 1, 9, tzinfo=timezone.utc), uniqueid="u9",
                     caller="+8659187650009", path=["menu main: pressed 1", "committee"],
                     destination="committee", outcome="voicemail", record_id=9,
                     ended=datetime(2026, 12, 3, 1, 10, tzinfo=timezone.utc))
        desk.call_log.listeners(ended)
        stop()
        desk.call_log.listeners(Call(started=ended.started, uniqueid="u10"))
        self.assertEqual(heard, ["u9"])
        newest = self.successResultOf(desk.recent(1))[0]
        self.assertEqual((newest["id"], newest["outcome"], newest["path"], newest["ended"]),
                         (9, "voicemail", ["menu main: pressed 1", "committee"],
                          "2026-12-03T01:10:00+00:00"))


class SimpleCallLog:
    def __init__(self):
        from switchboard.listeners import Listeners
        self.listeners = Listeners()
