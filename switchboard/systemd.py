"""
Telling systemd how the server is (the C{sd_notify} protocol): C{READY=1}
once it serves, C{WATCHDOG=1} while its reactor turns, C{STOPPING=1} when
it stops. With C{WatchdogSec=} in the unit (C{config/systemd/}), a server
whose reactor stalls (a hang, a deadlock, a C{SIGSTOP}) stops sending
C{WATCHDOG=1} and is killed and started again within seconds: its open
FastAGI sessions close with it, and Asterisk rings the #9 callers'
neighbours natively (res_agi has no read timeout of its own).

The protocol is one datagram per message to the AF_UNIX socket named in
C{NOTIFY_SOCKET} (a leading C{@} is the abstract namespace); outside
systemd there is no such variable and every call does nothing.
"""

from __future__ import annotations

import os
import socket

from twisted.internet import task
from twisted.logger import Logger


class Notifier:
    """Sends C{sd_notify} messages to C{address}, or nowhere if it is None."""

    log = Logger()

    def __init__(self, address: str | None):
        self.address = address
        self._socket = None

    @classmethod
    def from_environment(cls, environ=os.environ) -> "Notifier":
        """The notifier systemd asked for (C{NOTIFY_SOCKET}), if any."""
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send C{state} (e.g. C{"READY=1"}); return whether it was sent."""
        if self.address is None:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(state.encode("utf-8"), address)
        except OSError as e:
            # systemd gone or restarting: nothing to tell, nothing to stop for.
            self.log.warn("sd_notify {state} to {address} failed: {error}", state=state,
                          address=self.address, error=e)
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ=os.environ, pid: int | None = None) -> float | None:
    """
    Seconds between two C{WATCHDOG=1}: half of C{WATCHDOG_USEC}, as
    C{sd_watchdog_enabled(3)} advises; None when systemd expects none (no
    C{WATCHDOG_USEC}, or C{WATCHDOG_PID} names another process).
    """
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    watched = environ.get("WATCHDOG_PID")
    if watched and int(watched) != (os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(usec)
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Watchdog:
    """
    C{WATCHDOG=1} every C{interval} seconds from a L{task.LoopingCall} on
    C{clock}: sent only while the reactor turns, which is what systemd is
    to watch. A stalled reactor sends nothing and systemd kills it.
    """

    def __init__(self, notifier: Notifier, interval: float | None, *, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.notifier = notifier
        self.interval = interval
        self._loop = task.LoopingCall(notifier.notify, "WATCHDOG=1")
        self._loop.clock = clock

    def start(self) -> None:
        if self.interval and self.notifier.enabled and not self._loop.running:
            self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
