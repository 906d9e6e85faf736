"""
Hotline routing: the staff-edited routing file, checked into immutable
objects (L{schema}, L{model}), opening hours (L{schedule}), pure routing
decisions (L{router}) and the routing in force with its reloads (L{store}).
"""

from switchboard.routing.model import Destination, Hotline, Menu, Routing
from switchboard.routing.router import Decision, MenuWalk, Step, plan, route
from switchboard.routing.schema import load, loads, validate


def __getattr__(name):
    # The store needs Twisted; the child process that parses for it does not.
    if name == "RoutingStore":
        from switchboard.routing.store import RoutingStore
        return RoutingStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Decision", "Destination", "Hotline", "Menu", "MenuWalk", "Routing", "RoutingStore",
           "Step", "load", "loads", "plan", "route", "validate"]
