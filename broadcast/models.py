"""
The broadcast's tables: a campaign, one delivery per household it is for,
one attempt per call placed. A campaign and its deliveries are written
before any call is placed, and each attempt before its call: a server that
restarts mid-campaign knows who heard it and calls no one of them again.

Times are naive UTC datetimes (L{switchboard.community.models.utc}).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switchboard.community import models as community  # noqa: F401  (household_id's table)
from switchboard.storage import Base

# Campaign.status
SCHEDULED = "scheduled"   # written; starts at start_at
RUNNING = "running"
PAUSED = "paused"
CANCELLED = "cancelled"
DONE = "done"             # every delivery heard or given up
FAILED = "failed"         # could not run at all (no sound to play): note says why
ACTIVE = (SCHEDULED, RUNNING, PAUSED)

# Campaign.channel: how the notice goes
VOICE = "voice"           # a call, the notice played, 1 = heard
TEXT = "text"             # a text message (switchboard.texting: SIP MESSAGE)
CHANNELS = (VOICE, TEXT)

# Campaign.priority
NORMAL = "normal"         # not called in quiet hours
URGENT = "urgent"         # called at any hour
PRIORITIES = (NORMAL, URGENT)

# Delivery.state
PENDING = "pending"       # to be called (again) at next_at
CALLING = "calling"       # a call is placed or up
HEARD = "heard"           # the resident pressed 1
SENT = "sent"             # a text notice handed on (no read receipt over SIP)
GAVE_UP = "failed"        # every attempt allowed ended without a 1: outcome says the last
DROPPED = "cancelled"     # the campaign was cancelled before it was heard

# Attempt.outcome: what one call came to. The first five count as attempts
# (a delivery is called again at most `retries` times); the others do not.
HEARD_IT = "heard"
UNCONFIRMED = "unconfirmed"   # answered, no 1 (an answering machine, a hang-up)
BUSY = "busy"
NO_ANSWER = "no-answer"
CALL_FAILED = "failed"
SENT_IT = "sent"              # a text taken for sending
COUNTED = (HEARD_IT, UNCONFIRMED, BUSY, NO_ANSWER, CALL_FAILED, SENT_IT)
YIELDED = "yielded"           # hung up or not started: a #9 alarm needed the line
NOT_PLACED = "not-placed"     # Asterisk could not place it (no AMI link...)
INTERRUPTED = "interrupted"   # the server stopped while it was up
STOPPED = "cancelled"         # the campaign was cancelled while it was up


class Campaign(Base):
    """One notice sent to a set of households."""

    __tablename__ = "broadcast_campaign"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="")
    #: A recording (Asterisk sound name) given instead of the text's rendering.
    recording: Mapped[str | None] = mapped_column(String(200), nullable=True)
    priority: Mapped[str] = mapped_column(String(10), default=NORMAL)
    channel: Mapped[str] = mapped_column(String(8), default=VOICE, server_default=VOICE)
    status: Mapped[str] = mapped_column(String(12), default=SCHEDULED)
    #: The --to as staff gave it.
    target: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    start_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    note: Mapped[str] = mapped_column(String(300), default="")

    deliveries: Mapped[list["Delivery"]] = relationship(
        back_populates="campaign", order_by="Delivery.id", cascade="all, delete-orphan")


class Delivery(Base):
    """The notice to one household of a campaign."""

    __tablename__ = "broadcast_delivery"
    __table_args__ = (Index("ix_broadcast_delivery_due", "campaign_id", "state", "next_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("broadcast_campaign.id", ondelete="CASCADE"))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("alarm_household.id", ondelete="SET NULL"), nullable=True)
    #: The landline called (E.164) and the address, as they were when it was sent.
    number: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(300), default="")
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    #: Calls that counted (see Attempt.outcome).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The last call's outcome (why it was not heard, for the report).
    outcome: Mapped[str] = mapped_column(String(16), default="")
    next_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heard_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    campaign: Mapped[Campaign] = relationship(back_populates="deliveries")
    calls: Mapped[list["Attempt"]] = relationship(
        back_populates="delivery", order_by="Attempt.id", cascade="all, delete-orphan")


class Attempt(Base):
    """One call placed for a delivery; C{leg} is the call's channel id."""

    __tablename__ = "broadcast_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("broadcast_delivery.id", ondelete="CASCADE"), index=True)
    leg: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: Times the notice was played again (2 pressed, or no key).
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(String(200), default="")

    delivery: Mapped[Delivery] = relationship(back_populates="calls")
