"""
Tables of the #9 alarm, declared on L{switchboard.storage.Base}.

Numbers are stored in E.164. Times are stored as naive UTC datetimes (what
every SQL dialect keeps faithfully); L{utc} and L{from_utc} convert.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

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


def utc(seconds: float) -> datetime:
    """A naive UTC datetime for a POSIX time (what the tables store)."""
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)


def now_utc() -> datetime:
    """The current time as a naive UTC datetime."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def from_utc(stored: datetime | None, tz) -> datetime | None:
    """A stored naive UTC datetime in the time zone C{tz}."""
    if stored is None:
        return None
    return stored.replace(tzinfo=timezone.utc).astimezone(tz)


class Household(Base):
    """A home that can raise a #9 alarm."""

    __tablename__ = "alarm_household"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community: Mapped[str] = mapped_column(String(100), default="")
    building: Mapped[str] = mapped_column(String(20), default="")
    unit: Mapped[str] = mapped_column(String(20), default="")
    room: Mapped[str] = mapped_column(String(20), default="")
    residents: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    # Bumped on every change so a running server can refresh just this one.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=lambda: now_utc())

    numbers: Mapped[list["HouseholdNumber"]] = relationship(
        back_populates="household", order_by="HouseholdNumber.position",
        cascade="all, delete-orphan")
    neighbours: Mapped[list["Neighbour"]] = relationship(
        back_populates="household", order_by="Neighbour.position",
        cascade="all, delete-orphan")

    @property
    def address(self) -> str:
        return format_address(self.community, self.building, self.unit, self.room)


def format_address(community: str, building: str, unit: str, room: str) -> str:
    """C{Community, building 3, unit 1, room 501} with empty parts left out."""
    parts = [community] if community else []
    for label, value in (("building", building), ("unit", unit), ("room", room)):
        if value:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


class HouseholdNumber(Base):
    """A landline a household calls from (E.164); a number belongs to one household."""

    __tablename__ = "alarm_household_number"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("alarm_household.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=1)

    household: Mapped[Household] = relationship(back_populates="numbers")


class Neighbour(Base):
    """One phone of a household's ring group, in ring-group order (1..max)."""

    __tablename__ = "alarm_neighbour"
    __table_args__ = (
        UniqueConstraint("household_id", "position"),
        UniqueConstraint("household_id", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("alarm_household.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100), default="")

    household: Mapped[Household] = relationship(back_populates="neighbours")


class RegistryVersion(Base):
    """
    One row whose C{version} every registry change increments, so a server
    in another process notices CLI edits with one cheap query.
    """

    __tablename__ = "alarm_registry_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Alarm(Base):
    """One #9 alarm; its story is in L{AlarmEvent}."""

    __tablename__ = "alarm"
    __table_args__ = (Index("ix_alarm_open", "closed_at"),)

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
