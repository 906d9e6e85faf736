"""
Exceptions raised by FastAGI sessions.

Every failure of an AGI command is one of these, so a handler can tell a
caller who went away (L{AGIHangup}) from a mistake in the command it sent
(L{AGICommandError}, L{AGIArgumentError}).
"""


class AGIError(Exception):
    """
    Base class of every FastAGI error.
    """


class AGIHangup(AGIError):
    """
    The channel is gone: the caller hung up, Asterisk refused a command on a
    dead channel (511), a channel command failed with C{result=-1}, or the
    connection to Asterisk was lost.

    For a handler this is the normal end of a call, not a fault.
    """


class AGIConnectionLost(AGIHangup):
    """
    The FastAGI connection closed (or was closed by the server: oversize line,
    idle timeout) while a command was pending or queued, or a command was
    issued after it closed.
    """


class AGITimeout(AGIConnectionLost):
    """
    Asterisk sent nothing for longer than the session's idle timeout while a
    reply was awaited; the server closed the connection.
    """


class AGICommandError(AGIError):
    """
    Asterisk rejected a command: C{510} (unknown command), C{520} (invalid
    syntax; C{message} holds the usage text Asterisk sent), another error
    code, or a C{200} reply that means failure for that command (for example
    C{EXEC} of an application that does not exist, C{result=-2}).

    @ivar code: the reply code (C{510}, C{520}, ... or C{200}).
    @ivar message: the text Asterisk sent, or a description of the failure.
    """

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


class AGIArgumentError(AGIError, ValueError):
    """
    A command argument cannot be sent safely: it contains CR, LF or NUL (which
    would end or truncate the command line and let the rest be read as another
    command), the command line would not fit Asterisk's command buffer, or an
    argument is malformed (an application name that is not a plain word...).
    Nothing was written.
    """
