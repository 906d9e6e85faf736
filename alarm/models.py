"""
Tables of the #9 alarm, declared on L{switchboard.storage.Base}: the alarms
and their timelines. The households they are raised for are the community
registry's (L{switchboard.community.models}).

Numbers are stored in E.164; times as naive UTC datetimes
(L{switchboard.community.models.utc}).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switchboard.community import models as community  # noqa: F401  (alarm.household_id's table)
from switchboard.storage import Base

# Alarm.status values. An alarm is open until closed_at is set.
OPEN = "open"
CONFIRMED = "confirmed"
CANCELLED = "cancelled"
CLOSED = "closed"
# Handed to the dialplan's own ring-all (no AMI link to place calls with):
# closed here at once; what happened next is in Asterisk's log.
NATIVE = "native"
ENDED = (CANCELLED, CLOSED, NATIVE)


class Alarm(Base):
    """One #9 alarm; its story is in L{AlarmEvent}."""

    __tablename__ = "alarm"
    __table_args__ = (Index("ix_alarm_open", "closed_at"), Index("ix_alarm_owner", "owner"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("alarm_household.id", ondelete="SET NULL"), nullable=True)
    caller_raw: Mapped[str] = mapped_column(String(80), default="")
    caller_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # The address as it was when the alarm was raised.
    address: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    room: Mapped[str] = mapped_column(String(80), default="")
    outcome: Mapped[str] = mapped_column(String(200), default="")
    # The switchboard instance holding the open alarm, and until when its
    # lease runs (renewed every second; see switchboard.leases).
    owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The Asterisk server the caller is on (settings' asterisks: name), where
    # its calls are placed; None: the only one.
    asterisk: Mapped[str | None] = mapped_column(String(40), nullable=True)

    events: Mapped[list["AlarmEvent"]] = relationship(
        back_populates="alarm", order_by="AlarmEvent.id", cascade="all, delete-orphan")


class AlarmEvent(Base):
    """One timestamped step of an alarm: a leg rang, answered, confirmed, a stage began..."""

    __tablename__ = "alarm_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarm.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(24))
    leg: Mapped[str | None] = mapped_column(String(80), nullable=True)
    number: Mapped[str | None] = mapped_column(String(80), nullable=True)
    detail: Mapped[str] = mapped_column(String(300), default="")

    alarm: Mapped[Alarm] = relationship(back_populates="events")
