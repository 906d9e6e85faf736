"""The callback's table: one row per C{*0} request."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.storage import Base


class CallbackRequest(Base):
    """A resident asked to be called back."""

    __tablename__ = "callback_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The caller ID as Asterisk presented it (E.164 when it could be read so).
    caller: Mapped[str] = mapped_column(String(64))
    #: Asterisk's unique id of the call, to find it in the CDRs.
    uniqueid: Mapped[Optional[str]] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
