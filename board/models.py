"""The board's table: staff accounts (the password as an argon2 hash, never itself)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.storage import Base

#: Roles, each allowed what the one before is and more: a viewer sees the
#: board; duty staff act on alarms; an admin also manages (accounts, later
#: settings) from the board.
ROLES = ("viewer", "duty", "admin")


class Staff(Base):
    """One person who may log in to the board."""

    __tablename__ = "board_staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: argon2id, in its PHC string form (parameters and salt included).
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
