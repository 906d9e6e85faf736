"""
The callback's table: one row per request that a resident be called back.

Two kinds, one table: a C{*0} on the home line (C{kind = "callback"}), and
a voicemail left at an office through the hotline (C{kind = "voicemail"}:
the office's mailbox, the recording and Asterisk's message id come with
it). Both are the same thing for the staff: someone to call back, then
mark done with a note.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.storage import Base

CALLBACK = "callback"
VOICEMAIL = "voicemail"
KINDS = (CALLBACK, VOICEMAIL)


class CallbackRequest(Base):
    """A resident asked to be called back (times in UTC)."""

    __tablename__ = "callback_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The caller ID as Asterisk presented it (E.164 when it could be read so).
    caller: Mapped[str] = mapped_column(String(64))
    #: Asterisk's unique id of the call, to find it in the CDRs.
    uniqueid: Mapped[Optional[str]] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: C{callback} (*0) or C{voicemail} (a message left at an office).
    kind: Mapped[str] = mapped_column(String(16), default=CALLBACK, server_default=CALLBACK)
    #: The office's mailbox (C{box@context}) for a voicemail.
    office: Mapped[Optional[str]] = mapped_column(String(80))
    #: The recording, as a path on this host, for a voicemail.
    recording: Mapped[Optional[str]] = mapped_column(String(400))
    #: Asterisk's C{msg_id} of the voicemail: a message becomes one request only.
    message_id: Mapped[Optional[str]] = mapped_column(String(64), index=True, unique=True)
    #: When staff marked it done, who (their login or user name), and their note.
    done_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[Optional[str]] = mapped_column(String(64))
    note: Mapped[Optional[str]] = mapped_column(Text)
    #: The last call back placed (the staff phone answered), and from which phone.
    called_back_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    called_back_from: Mapped[Optional[str]] = mapped_column(String(64))
