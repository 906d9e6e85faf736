"""
The community hotline: the FastAGI handler that serves calls on the routing
in force (L{handler}) and the staff commands C{check}, C{route} and
C{calls} (L{cli}).
"""

from switchboard.hotline.handler import HotlineHandler

__all__ = ["HotlineHandler"]
