"""
What the broadcast writes and reads, each a function of a session in one
transaction: the CLI runs them directly (L{run}), the server on the
database's pool (C{Database.run(partial(f, ...))}), never on the reactor.

A delivery moves C{pending} -> C{calling} (with its attempt row, before the
call is placed) -> C{heard}, C{failed} (given up) or back to C{pending}
(called again later); C{cancelled} when its campaign is. Only a delivery
that is C{calling} is settled by a call's outcome, so a late outcome never
undoes a C{heard}.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from broadcast.models import (
    ACTIVE,
    CALLING,
    CANCELLED,
    COUNTED,
    DONE,
    DROPPED,
    GAVE_UP,
    HEARD,
    HEARD_IT,
    INTERRUPTED,
    PAUSED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SENT,
    SENT_IT,
    VOICE,
    Attempt,
    Campaign,
    Delivery,
)


class CampaignError(Exception):
    """A change staff asked for that cannot be made; the message says why."""


def run(database, work, *args, **kwargs):
    """C{work(session, *args, **kwargs)} in one transaction, here and now (the CLI)."""
    with database.sessions.begin() as session:
        return work(session, *args, **kwargs)


# Staff -------------------------------------------------------------------------------

def create(session, *, text, recording, priority, target, targets, start_at, now,
           channel=VOICE) -> int:
    """A campaign and a pending delivery for each of C{targets} (L{Target}); its id."""
    campaign = Campaign(text=text, recording=recording, priority=priority, status=SCHEDULED,
                        target=target[:300], created_at=now, start_at=start_at, note="",
                        channel=channel)
    session.add(campaign)
    session.flush()
    session.execute(Delivery.__table__.insert(), [
        {"campaign_id": campaign.id, "household_id": t.household_id, "number": t.number,
         "address": t.address[:300], "state": PENDING, "attempts": 0, "outcome": "",
         "next_at": start_at} for t in targets])
    return campaign.id


_ACTIONS = {"pause": ((SCHEDULED, RUNNING), PAUSED),
            "resume": ((PAUSED,), RUNNING),
            "cancel": (ACTIVE, CANCELLED)}


def change(session, campaign_id, action, now) -> str:
    """
    Pause, resume or cancel campaign C{campaign_id}; its new status. A
    cancel gives up its pending deliveries at once (a running server hangs
    up its calls within a second). L{CampaignError} when it cannot.
    """
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign {campaign_id}")
    allowed, status = _ACTIONS[action]
    if campaign.status not in allowed:
        raise CampaignError(f"campaign {campaign_id} is {campaign.status}: cannot {action} it")
    if action == "resume" and campaign.started_at is None:
        status = SCHEDULED
    campaign.status = status
    if action == "cancel":
        campaign.finished_at = now
        session.execute(update(Delivery).where(Delivery.campaign_id == campaign_id,
                                               Delivery.state == PENDING)
                        .values(state=DROPPED, outcome=campaign.status))
    return status


@dataclass(frozen=True)
class Progress:
    id: int
    status: str
    priority: str
    text: str
    total: int
    heard: int        # voice: pressed 1; text: sent
    failed: int
    cancelled: int
    pending: int
    calling: int
    created_at: datetime
    start_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    note: str

    @property
    def done(self) -> int:
        """Deliveries settled: heard, given up or cancelled."""
        return self.heard + self.failed + self.cancelled

    def rate(self, now) -> float | None:
        """Deliveries settled a minute since it started (None before any)."""
        if self.started_at is None or self.done == 0:
            return None
        minutes = ((self.finished_at or now) - self.started_at).total_seconds() / 60
        return self.done / minutes if minutes > 0 else None

    def time_left(self, now) -> timedelta | None:
        rate = self.rate(now)
        left = self.pending + self.calling
        if not left:
            return timedelta(0)
        return timedelta(minutes=left / rate) if rate else None


def progress(session, campaign_ids=None) -> list[Progress]:
    """Each campaign's counts (the latest 20 without C{campaign_ids}), newest first."""
    query = select(Campaign).order_by(Campaign.id.desc())
    if campaign_ids is not None:
        query = query.where(Campaign.id.in_(list(campaign_ids)))
    else:
        query = query.limit(20)
    campaigns = session.execute(query).scalars().all()
    counts: dict = {}
    if campaigns:
        for cid, state, n in session.execute(
                select(Delivery.campaign_id, Delivery.state, func.count())
                .where(Delivery.campaign_id.in_([c.id for c in campaigns]))
                .group_by(Delivery.campaign_id, Delivery.state)):
            counts.setdefault(cid, {})[state] = n
    out = []
    for c in campaigns:
        n = counts.get(c.id, {})
        out.append(Progress(
            c.id, c.status, c.priority, c.text, sum(n.values()), n.get(HEARD, 0) + n.get(SENT, 0),
            n.get(GAVE_UP, 0), n.get(DROPPED, 0), n.get(PENDING, 0), n.get(CALLING, 0),
            c.created_at, c.start_at, c.started_at, c.finished_at, c.note))
    return out


@dataclass(frozen=True)
class ReportRow:
    household_id: int | None
    address: str
    number: str
    heard: bool       # pressed 1 (voice), or the text was sent
    why: str          # what the last call came to, for one not heard
    attempts: int
    calls: int        # every call placed, those that did not count included
    heard_at: datetime | None
    last_call_at: datetime | None


def report(session, campaign_id) -> tuple[Campaign, list[ReportRow]]:
    """Who heard campaign C{campaign_id}, who did not and why, by household."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign {campaign_id}")
    calls = {d: (n, last) for d, n, last in session.execute(
        select(Attempt.delivery_id, func.count(), func.max(Attempt.started_at))
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .where(Delivery.campaign_id == campaign_id).group_by(Attempt.delivery_id))}
    rows = []
    for d in session.execute(select(Delivery).where(Delivery.campaign_id == campaign_id)
                             .order_by(Delivery.id)).scalars():
        n, last = calls.get(d.id, (0, None))
        reached = d.state in (HEARD, SENT)
        why = "" if reached else _why(d)
        rows.append(ReportRow(d.household_id, d.address, d.number, reached, why,
                              d.attempts, n, d.heard_at, last))
    return campaign, rows


def _why(delivery) -> str:
    if delivery.state == PENDING:
        return f"not yet ({delivery.outcome} before)" if delivery.outcome else "not called yet"
    if delivery.state == CALLING:
        return "being called"
    if delivery.state == DROPPED:
        return "cancelled" + (f" ({delivery.outcome} before)" if delivery.outcome
                              and delivery.outcome != CANCELLED else "")
    return delivery.outcome or delivery.state


# The server ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Active:
    """A campaign the server follows."""

    id: int
    status: str
    priority: str
    text: str
    recording: str | None
    start_at: datetime
    channel: str = VOICE


def active(session) -> list[Active]:
    """The campaigns not ended (scheduled, running, paused), oldest first."""
    return [Active(c.id, c.status, c.priority, c.text, c.recording, c.start_at, c.channel)
            for c in session.execute(select(Campaign).where(Campaign.status.in_(ACTIVE))
                                     .order_by(Campaign.id)).scalars()]


def start(session, campaign_id, now) -> bool:
    """A scheduled campaign runs (not one paused or cancelled meanwhile)."""
    result = session.execute(update(Campaign).where(Campaign.id == campaign_id,
                                                    Campaign.status == SCHEDULED)
                             .values(status=RUNNING, started_at=now))
    return result.rowcount == 1


def fail(session, campaign_id, note, now) -> None:
    """A campaign that cannot run (nothing to play): failed, its deliveries dropped."""
    session.execute(update(Campaign).where(Campaign.id == campaign_id)
                    .values(status="failed", note=note[:300], finished_at=now))
    session.execute(update(Delivery).where(Delivery.campaign_id == campaign_id,
                                           Delivery.state == PENDING)
                    .values(state=DROPPED, outcome="failed"))


@dataclass(frozen=True)
class Due:
    id: int
    campaign_id: int
    number: str


def due(session, campaign_ids, now, limit) -> list[Due]:
    """Up to C{limit} pending deliveries due by C{now}, campaign by campaign in the order given."""
    out = []
    for cid in campaign_ids:
        if len(out) >= limit:
            break
        out += [Due(i, cid, n) for i, n in session.execute(
            select(Delivery.id, Delivery.number)
            .where(Delivery.campaign_id == cid, Delivery.state == PENDING,
                   Delivery.next_at <= now)
            .order_by(Delivery.next_at, Delivery.id).limit(limit - len(out)))]
    return out


def begin(session, deliveries, now) -> dict:
    """
    For each of C{deliveries} (ids): the delivery is C{calling} and its
    attempt written, if it is still pending and its campaign running (not
    cancelled or paused meanwhile). Returns delivery id -> attempt id, for
    those only. The attempt's C{leg} is the prefix of its call's channel id.
    """
    started = {}
    for delivery_id in deliveries:
        moved = session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.state == PENDING,
                                   Delivery.campaign_id.in_(
                                       select(Campaign.id).where(Campaign.status == RUNNING)))
            .values(state=CALLING))
        if moved.rowcount != 1:
            continue
        attempt = Attempt(delivery_id=delivery_id, leg="", started_at=now, repeats=0,
                          detail="")
        session.add(attempt)
        session.flush()
        attempt.leg = f"bcast-{attempt.id}"
        started[delivery_id] = attempt.id
    return started


def finish(session, attempt_id, delivery_id, outcome, now, *, retries, retry_after,
           again_after=10.0, repeats=0, detail="") -> str | None:
    """
    Attempt C{attempt_id} came to C{outcome}; settle its delivery if it is
    still C{calling}: heard, called again (C{retry_after} seconds later
    while it has calls left; C{again_after} for a call that did not count),
    or given up. Returns the delivery's new state (None: left as it was).
    """
    # A 1 pressed wins over what a restart wrote meanwhile (interrupted, pending).
    attempt = Attempt.id == attempt_id
    open_ = attempt if outcome == HEARD_IT else (attempt & Attempt.outcome.is_(None))
    session.execute(update(Attempt).where(open_).values(
        outcome=outcome, ended_at=now, repeats=repeats, detail=detail[:200]))
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or not (delivery.state == CALLING or
                                (outcome == HEARD_IT and delivery.state == PENDING)):
        return None
    campaign = session.get(Campaign, delivery.campaign_id)
    if outcome == HEARD_IT:
        delivery.state, delivery.outcome, delivery.heard_at = HEARD, HEARD_IT, now
        return HEARD
    if outcome == SENT_IT:
        delivery.state, delivery.outcome, delivery.heard_at = SENT, SENT_IT, now
        delivery.attempts += 1
        return SENT
    if outcome in COUNTED:
        delivery.attempts += 1
        delivery.outcome = outcome
        if delivery.attempts > retries:
            delivery.state = GAVE_UP
            return GAVE_UP
        delay = retry_after
    else:
        delay = again_after
    if campaign is None or campaign.status == CANCELLED:
        delivery.state = DROPPED
        return DROPPED
    delivery.state = PENDING
    delivery.next_at = now + timedelta(seconds=delay)
    return PENDING


def finish_if_done(session, campaign_id, now) -> bool:
    """A running campaign with nothing pending or calling is done."""
    left = session.execute(select(func.count()).select_from(Delivery).where(
        Delivery.campaign_id == campaign_id,
        Delivery.state.in_((PENDING, CALLING)))).scalar_one()
    if left:
        return False
    result = session.execute(update(Campaign).where(Campaign.id == campaign_id,
                                                    Campaign.status == RUNNING)
                             .values(status=DONE, finished_at=now))
    return result.rowcount == 1


def recover(session, now, hold) -> int:
    """
    At start: calls that were up when the server stopped are over for it
    (attempts C{interrupted}, not counted); their deliveries are pending
    again, C{hold} seconds from now (the call may still be ringing).
    """
    session.execute(update(Attempt).where(Attempt.outcome.is_(None))
                    .values(outcome=INTERRUPTED, ended_at=now))
    result = session.execute(update(Delivery).where(Delivery.state == CALLING)
                             .values(state=PENDING, next_at=now + timedelta(seconds=hold)))
    return result.rowcount
