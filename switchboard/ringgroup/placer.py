"""L{ICallPlacer} over the AMI client."""

from __future__ import annotations

from zope.interface import implementer

from switchboard.ringgroup.interfaces import ICallPlacer


@implementer(ICallPlacer)
class AMICallPlacer:
    """
    Places calls through C{client}, a L{switchboard.ami.AMIClient}: only the
    five things a ring group needs of it.
    """

    def __init__(self, client):
        self.client = client

    def originate(self, channel, *, context, exten, priority, variables, caller_id, timeout,
                  channel_id):
        return self.client.originate(channel, context=context, exten=exten, priority=priority,
                                     variables=variables, caller_id=caller_id, timeout=timeout,
                                     channel_id=channel_id)

    def hangup(self, channel):
        return self.client.hangup(channel)

    def channel_state(self, uniqueid):
        return self.client.channel_state(uniqueid)

    def can_place_calls(self) -> bool:
        return bool(self.client.connected)

    def when_connected(self):
        return self.client.when_connected()
