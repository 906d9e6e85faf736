"""
Staff accounts: adding, listing and removing them (the C{switchboard staff}
commands), and checking a password (the board's login, on the database's
thread pool: an argon2 check takes tens of milliseconds, which the reactor
serving calls must not spend).

Passwords are hashed with argon2id (argon2-cffi's defaults; its PHC string
keeps the parameters and salt, so a hash made with other parameters is
still checked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from board.models import ROLES, Staff

NAME = re.compile(r"^[^\s\x00-\x1f\x7f<>&\"']{1,64}$")
#: Fewer characters than this is refused: staff passwords guard residents' data.
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

#: argon2-cffi's defaults (argon2id, 64 MiB, 3 passes): ~50 ms a check on one core.
hasher = PasswordHasher()
_dummies: dict = {}


def _dummy() -> str:
    """
    A hash checked against when the name is unknown, so that a wrong name
    takes as long as a wrong password (no telling which names exist).
    """
    if id(hasher) not in _dummies:
        _dummies.clear()
        _dummies[id(hasher)] = hasher.hash("no such staff member, no such password")
    return _dummies[id(hasher)]


def now_utc() -> datetime:
    """The current time as a naive UTC datetime (what the tables store)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class StaffError(Exception):
    """A refused account operation; the message says why."""


@dataclass(frozen=True)
class Member:
    """A staff member as the board knows them once logged in."""

    id: int
    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether this member has C{role} or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise StaffError(f"name {name!r}: 1 to 64 characters, no spaces, quotes, < > or &")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise StaffError(f"password: at most {MAX_PASSWORD} characters")
    return password


def add(session, name: str, role: str, password: str) -> Member:
    """Add a staff member (C{session} commits); refuses a name taken or a weak password."""
    name = check_name(name)
    if role not in ROLES:
        raise StaffError(f"role {role!r}: one of {', '.join(ROLES)}")
    check_password(password)
    if session.execute(select(Staff.id).where(Staff.name == name)).first() is not None:
        raise StaffError(f"{name!r} already exists (remove it first to change it)")
    row = Staff(name=name, role=role, password_hash=hasher.hash(password), created_at=now_utc())
    session.add(row)
    session.flush()
    return Member(row.id, row.name, row.role)


def remove(session, name: str) -> bool:
    row = session.execute(select(Staff).where(Staff.name == name)).scalar_one_or_none()
    if row is None:
        return False
    session.delete(row)
    return True


def members(session) -> list:
    """Every staff member with when they were added, by name."""
    return [(Member(r.id, r.name, r.role), r.created_at)
            for r in session.execute(select(Staff).order_by(Staff.name)).scalars()]


def find(session, member_id: int) -> Member | None:
    row = session.get(Staff, member_id)
    return None if row is None else Member(row.id, row.name, row.role)


def lookup(session, name: str):
    """C{(member, password hash)} of the staff member called C{name}, or None."""
    row = session.execute(select(Staff).where(Staff.name == (name or "").strip())
                          ).scalar_one_or_none()
    return None if row is None else (Member(row.id, row.name, row.role), row.password_hash)


def matches(password_hash: str | None, password: str) -> bool:
    """
    Whether C{password} is the one C{password_hash} was made from (None: an
    unknown name, checked against a dummy hash so that it costs the same).
    CPU only (tens of milliseconds): run it off the reactor thread.
    """
    try:
        return hasher.verify(password_hash or _dummy(), (password or "")[:MAX_PASSWORD]) \
            and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
