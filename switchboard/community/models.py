"""
The community registry's tables: households, the landlines they call from,
their neighbours (a household's ring group), residents' mobiles (for text
notices) and the registry's version.

Shared domain: any feature that calls residents reads them (the #9 alarm
rings a household's neighbours, a broadcast calls households' landlines);
none owns them. The table names keep the C{alarm_} prefix they were born
with, so databases made before the registry moved keep working unchanged
(the core's migration C{core_0002} creates them where they are missing).

Numbers are stored in E.164. Times are stored as naive UTC datetimes (what
every SQL dialect keeps faithfully); L{utc} and L{from_utc} convert.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switchboard.storage import Base


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
    """A home of the community: its address, who lives there, its landlines."""

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
    mobiles: Mapped[list["Mobile"]] = relationship(
        back_populates="household", order_by="Mobile.position",
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


class Mobile(Base):
    """
    A resident's mobile (E.164, a Chinese mobile), registered for text
    notices. Private: shown and logged masked
    (L{switchboard.community.mobiles.mask}). One phone may be registered by
    several households (a daughter's for her parents' two homes).
    """

    __tablename__ = "community_mobile"
    __table_args__ = (UniqueConstraint("household_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("alarm_household.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=1)
    number: Mapped[str] = mapped_column(String(20))
    #: Whose it is (a resident of the household), for the report.
    name: Mapped[str] = mapped_column(String(100), default="")

    household: Mapped[Household] = relationship(back_populates="mobiles")


class RegistryVersion(Base):
    """
    One row whose C{version} every registry change increments, so a server
    in another process notices CLI edits with one cheap query.
    """

    __tablename__ = "alarm_registry_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
