"""
The session a handler is given: the real L{AGISession} and the tests'
fake (L{tests.support.agi.FakeSession}) provide L{IAGISession}, with the
signatures it declares.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.exceptions import BrokenMethodImplementation, Invalid

from switchboard.agi import AGISession, IAGISession
from tests import test_alarm_support, test_hotline_support
from tests.support.agi import FakeSession
from tests.support.verify import methods, verify_class, verify_object

ENV = {"channel": "PJSIP/87650001-00000001", "callerid": "87650001",
       "network_script": "hotline"}


class RealSessionTests(SynchronousTestCase):
    def test_the_class_provides_the_interface(self):
        self.assertTrue(IAGISession.implementedBy(AGISession))
        self.assertTrue(verify_class(IAGISession, AGISession))

    def test_a_session_provides_the_interface(self):
        self.assertTrue(verify_object(IAGISession, AGISession(ENV)))

    def test_the_interface_names_what_handlers_use(self):
        self.assertEqual(methods(IAGISession), [
            "answer", "exec_", "get_data", "get_option", "get_variable", "hangup",
            "say_digits", "say_number", "set_variable", "stream_file", "stream_file_result",
            "wait_for_digit"])


class FakeSessionTests(SynchronousTestCase):
    def test_the_fake_provides_the_interface(self):
        self.assertTrue(verify_class(IAGISession, FakeSession))
        self.assertTrue(verify_object(IAGISession, FakeSession({})))

    def test_every_feature_tests_with_the_one_fake(self):
        self.assertIs(test_alarm_support.FakeSession, FakeSession)
        self.assertIsInstance(test_hotline_support.FakeSession(), FakeSession)

    def test_the_fake_offers_no_command_the_real_session_lacks(self):
        # Beyond the interface, the fake's commands are the real ones' names.
        commands = {name for name in vars(FakeSession)
                    if not name.startswith("_") and callable(vars(FakeSession)[name])}
        own = {"named", "caller_hangs_up"}  # the script, not commands
        self.assertEqual(sorted(commands - own - set(dir(AGISession))), [])


class VerificationTests(SynchronousTestCase):
    """The check fails for what does not match (it is not a formality)."""

    def test_a_missing_method(self):
        @implementer(IAGISession)
        class NoGetData(FakeSession):
            get_data = None

        self.assertRaises(Invalid, verify_class, IAGISession, NoGetData)

    def test_a_signature_seen_through_a_decorator(self):
        # AGISession's commands are wrapped as (*args, **kwargs): the check
        # must still see a parameter missing underneath.
        import functools

        def wrapped(method):
            @functools.wraps(method)
            def wrapper(*args, **kwargs):
                return method(*args, **kwargs)
            return wrapper

        @implementer(IAGISession)
        class NoEscapeDigits(AGISession):
            @wrapped
            def say_digits(self, digits):
                return None

        self.assertRaises(BrokenMethodImplementation, verify_class, IAGISession, NoEscapeDigits)

    def test_a_missing_attribute(self):
        session = FakeSession({})
        del session.env
        self.assertRaises(Invalid, verify_object, IAGISession, session)
