"""
Exceptions of the Asterisk Manager Interface client.

A caller can tell an action Asterisk refused (L{AMIActionError}) from a link
that is down (L{AMINotConnected}, L{AMIConnectionLost}) and from an answer
that never came (L{AMITimeout}).
"""


class AMIError(Exception):
    """
    Base class of every AMI error.
    """


class AMINotConnected(AMIError):
    """
    The client is not connected and logged in: the action was not sent.
    Nothing is queued for a later connection.
    """


class AMIConnectionLost(AMIError):
    """
    The connection closed while the action (or an originate's outcome) was
    awaited. The action may or may not have been carried out by Asterisk; it
    is never sent again by the client.
    """


class AMITimeout(AMIError):
    """
    No answer came within the action's timeout. A late answer is ignored.
    """


class AMIActionError(AMIError):
    """
    Asterisk answered C{Response: Error}.

    @ivar message: the C{Message} header Asterisk sent (for example
        C{"Permission denied"}), or a description.
    @ivar response: the whole response L{Message} (for C{Command}, its
        C{Output} headers hold the command's output), or L{None}.
    """

    def __init__(self, message, response=None):
        super().__init__(message)
        self.message = message
        self.response = response

    def __str__(self) -> str:
        return self.message


class AMILoginError(AMIActionError):
    """
    Asterisk refused the login (wrong user name or secret, or an address
    the manager user does not permit).
    """


class AMIArgumentError(AMIError, ValueError):
    """
    An action cannot be sent safely: a header name or value contains CR,
    LF or NUL (which would end the header and let the rest be read as other
    headers or another action), a header name is not a plain word, or an
    argument is malformed. Nothing was written.
    """
