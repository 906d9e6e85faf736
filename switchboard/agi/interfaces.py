"""
What a feature's FastAGI handler may rely on in the session it is given.

L{IAGISession} names the part of L{switchboard.agi.session.AGISession}
that the features' handlers use (the hotline, the alarm, the callback, and
the ring groups that borrow a caller's line). A handler written against it
runs on the real session and on the tests' fake alike: both are checked
against it (C{tests/test_agi_interfaces.py}). The full command set, with
every AGI command Asterisk documents, is L{switchboard.agi.commands.AGICommands}.

Every command returns a Deferred. A command on the caller's channel fails
with L{switchboard.agi.errors.AGIHangup} once the caller has hung up.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IAGISession(Interface):
    """One FastAGI call, as a handler sees it."""

    env = Attribute(
        "The AGI environment, agi_ prefix stripped: env['channel'], env['callerid'], "
        "env['uniqueid'], env['extension'], env['dnid']...")
    hungup = Attribute("True once the caller hung up or the session ended.")

    def answer():
        """ANSWER. Fires with None."""

    def hangup():
        """HANGUP the caller's channel. Fires with None."""

    def stream_file(name, escape_digits=""):
        """Play a sound file; fires with the digit that stopped it, or ''."""

    def stream_file_result(name, escape_digits="", offset=0):
        """
        Play a sound file; fires with a L{switchboard.agi.reply.Playback}
        (its digit, endpos, and C{failed} for a file Asterisk could not play).
        """

    def get_data(prompt, timeout_ms=None, max_digits=None):
        """Play C{prompt} and read digits; fires with them ('' for none)."""

    def get_option(prompt, escape_digits, timeout_ms=None):
        """Play C{prompt}, then wait for one of C{escape_digits}; fires with it or ''."""

    def wait_for_digit(timeout_ms):
        """Wait for a key; fires with the digit, or '' on timeout."""

    def say_digits(digits, escape_digits=""):
        """Say C{digits} one by one; fires with the digit that stopped it, or ''."""

    def say_number(number, escape_digits=""):
        """Say a whole number; fires with the digit that stopped it, or ''."""

    def set_variable(name, value):
        """Set a channel variable. Fires with None."""

    def get_variable(name):
        """Read a channel variable or function; fires with its value, or None when unset."""

    def exec_(app, *args):
        """Run a dialplan application; fires with its result (an int)."""
