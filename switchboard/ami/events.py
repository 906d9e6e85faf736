"""
Delivering manager events to subscribers.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from twisted.internet import defer
from twisted.logger import Logger

_WILDCARDS = "*?["


class Subscription:
    """
    A subscriber's callback for the events whose name matches C{pattern}
    (C{"*"}: every event; an exact name; or an fnmatch pattern such as
    C{"Originate*"}); names are compared ignoring case.
    """

    __slots__ = ("pattern", "callback", "_exact", "_glob")

    def __init__(self, pattern, callback):
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"event pattern must be a non-empty string, not {pattern!r}")
        if not callable(callback):
            raise TypeError(f"event callback {callback!r} is not callable")
        self.pattern = pattern
        self.callback = callback
        folded = pattern.lower()
        wild = any(c in pattern for c in _WILDCARDS)
        self._exact = None if wild else folded
        self._glob = folded if wild else None

    def matches(self, name):
        folded = name.lower()
        if self._exact is not None:
            return folded == self._exact
        return fnmatchcase(folded, self._glob)

    def __repr__(self):
        return f"<Subscription {self.pattern!r} {self.callback!r}>"


class Subscriptions:
    """
    The subscribers of one client. A callback's exception (or failed
    Deferred) is logged and affects neither other callbacks nor the link.
    """

    log = Logger()

    def __init__(self):
        self._subscriptions = []
        self._wanted = {}      # event name -> whether a subscription matches it

    def subscribe(self, pattern, callback):
        """Call C{callback(event)} for matching events; returns a token."""
        subscription = Subscription(pattern, callback)
        self._subscriptions.append(subscription)
        self._wanted = {}
        return subscription

    def unsubscribe(self, token):
        """Stop a subscription (unknown or already stopped tokens are ignored)."""
        try:
            self._subscriptions.remove(token)
        except ValueError:
            pass
        self._wanted = {}

    def wants(self, name):
        """Whether any subscription matches events named C{name}."""
        wanted = self._wanted.get(name)
        if wanted is None:
            if len(self._wanted) > 1000:   # names come from the wire: bounded
                self._wanted = {}
            wanted = self._wanted[name] = any(s.matches(name) for s in self._subscriptions)
        return wanted

    def __len__(self):
        return len(self._subscriptions)

    def dispatch(self, event):
        """Hand C{event} to every matching subscriber, in subscription order."""
        name = event.event or ""
        for subscription in list(self._subscriptions):
            if not subscription.matches(name):
                continue
            try:
                result = subscription.callback(event)
            except Exception:
                self.log.failure("AMI subscriber {subscription!r} failed on {name}",
                                 subscription=subscription, name=name)
                continue
            if isinstance(result, defer.Deferred):
                result.addErrback(
                    lambda f, s=subscription: self.log.failure(
                        "AMI subscriber {subscription!r} failed on {name}", f,
                        subscription=s, name=name))
