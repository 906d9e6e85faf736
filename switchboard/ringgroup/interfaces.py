"""
What a ring group needs of Asterisk (L{ICallPlacer}), and of the feature
that owns it (L{IRingListener}).
"""

from __future__ import annotations

from zope.interface import Interface


class ICallPlacer(Interface):
    """
    The narrow door from a ring group to Asterisk. Its real implementation,
    L{switchboard.ringgroup.placer.AMICallPlacer}, adapts the AMI client;
    tests use L{switchboard.ringgroup.testing.FakeCallPlacer}.
    """

    def originate(channel, *, context, exten, priority, variables, caller_id, timeout,
                  channel_id):
        """
        Place a call to C{channel} (a dial string) that runs C{context},
        C{exten}, C{priority} once answered, under the unique id
        C{channel_id}. Returns a Deferred firing with the call's
        L{switchboard.ami.OriginateResult} (C{outcome}, C{reason},
        C{message}, C{channel}), or failing with
        L{switchboard.ami.AMINotConnected} / C{AMIConnectionLost} /
        C{AMITimeout} (no link, lost in flight: the call may be up) or
        C{AMIArgumentError} (a dial string that can never be called).
        """

    def hangup(channel):
        """Hang up C{channel} (a name or a unique id); Deferred."""

    def channel_state(uniqueid):
        """
        Deferred firing with the state of the channel C{uniqueid}
        (C{"Ring"}, C{"Up"}...), or L{None} if there is no such channel.
        """

    def can_place_calls():
        """Whether calls can be placed now (the link to Asterisk is up)."""

    def when_connected():
        """Deferred fired once calls can be placed (at once if they can)."""


class IRingListener(Interface):
    """
    The owner of a ring group (a feature): what the group's legs carry, and
    what it is told. Called on the reactor; must not block.
    """

    def wanted(group):
        """
        Whether C{group}'s phones should still ring: when not, nothing is
        rung again (no retries, no next party) and C{not_placed} is not called.
        """

    def variables(leg):
        """The channel variables (a dict, in order) of C{leg}'s call."""

    def noted(leg, kind, detail):
        """
        Something worth writing down about C{leg}: C{kind} is a leg state
        (C{"ringing"} when placed, followed or placed another way, then
        C{"answered"}, an outcome, C{"cancelled"}...) or L{RETRY}
        (C{leg} is about to be rung again). Quiet retries of calls not
        placed are not noted.
        """

    def ended(leg, retried):
        """
        C{leg}'s fate (its C{state}): it ended and will not ring again;
        C{retried} says whether the group rings the same party again (a new
        leg, noted when placed). A leg given up that is answered after all
        (a late answer) is live again, and its next fate is told too.
        """

    def not_placed(leg, link_down):
        """
        C{leg}'s call could not be placed (C{link_down}: no AMI link, or lost
        in flight; otherwise Asterisk refused it). It is tried again shortly
        under its own channel id; not an outcome.
        """
