"""Accounts, sessions and which agency may see which report.

Three tables on the shared ``metadata`` (an Alembic migration creates them; tests may use ``metadata.create_all(engine,
tables=USER_TABLES)``, a no-op once migrated):

* ``users``: one row per account, in exactly one agency, with one role. The password is stored only as an argon2id hash; the
  TOTP secret is stored sealed with the data key (``store.crypto``), bound to the username. Failed
  logins are kept as a JSON list of the times of the consecutive failures still inside the lockout window.
* ``sessions``: the id is the SHA-256 (hex) of the session token; the token itself is never stored, so a copy of the database
  cannot be replayed as a login. The CSRF token is likewise stored only as its SHA-256.
* ``report_agency``: the only thing that decides which agency may see a report. No row, no access.

``UserRepository`` and ``ReportAccessRepository`` hold the SQL; the rules (how many failures, how long a lock) are passed in by
``tiptriage.server.auth``, so policy stays out of the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from types import TracebackType
from typing import Any, Final, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tiptriage.store.crypto import Cipher, aad, cipher_of
from tiptriage.store.db import DriverSQL, DriverTransaction, driver_sql
from tiptriage.store.rls import scoped
from tiptriage.store.schema import assessments, cases, metadata, reports
from tiptriage.store.times import aware as _aware


class Role(StrEnum):
    ANALYST = "analyst"
    INVESTIGATOR = "investigator"
    SUPERVISOR = "supervisor"
    AGENCY_ADMIN = "agency_admin"
    AUDITOR = "auditor"
    SYSTEM_ADMIN = "system_admin"


ROLES: Final = tuple(r.value for r in Role)
VIA: Final = ("routed", "deconfliction")

_role_list = ", ".join(f"'{r}'" for r in ROLES)
_via_list = ", ".join(f"'{v}'" for v in VIA)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(128), nullable=False, unique=True),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id, PHC string format
    sa.Column("totp_secret", sa.Text, nullable=False),  # base32, sealed (store.crypto)
    sa.Column("last_totp_step", sa.BigInteger),  # the last TOTP time step accepted: a code is good once
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("disabled_reason", sa.String(64)),  # inactive | administrator | ...
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    sa.Column("failed_logins", sa.Text, nullable=False, default="[]"),  # JSON list of ISO times of consecutive failures
    sa.Column("locked_until", sa.DateTime(timezone=True)),
    sa.Column("last_login_at", sa.DateTime(timezone=True)),
    sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),  # last login, creation or re-enabling
    sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f"role IN ({_role_list})", name="ck_users_role"),
)
sa.Index("ix_users_agency", users.c.agency_id)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 hex of the token; the token is never stored
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),  # the login: re-authentication counts from here
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),  # the idle lock counts from here
    sa.Column("csrf_token_hash", sa.String(64), nullable=False),
    sa.Column("source_address", sa.String(64)),
)
sa.Index("ix_sessions_user", sessions.c.user_id)

report_agency = sa.Table(
    "report_agency",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("agency_id", sa.String(64), primary_key=True),
    sa.Column("via", sa.String(16), nullable=False),  # routed | deconfliction
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    # the queue's sort keys, copied from the assessment and the report (store.queue_keys keeps them current), so that one
    # agency's page is an index range instead of a sort of all its reports (migration 0011); NULL tier: not assessed yet
    sa.Column("tier", sa.Integer),
    sa.Column("score", sa.Integer),
    sa.Column("received_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(f"via IN ({_via_list})", name="ck_report_agency_via"),
)
sa.Index("ix_report_agency_agency", report_agency.c.agency_id)
sa.Index("ix_report_agency_queue", report_agency.c.agency_id, report_agency.c.tier, report_agency.c.score.desc(),
         report_agency.c.received_at, report_agency.c.report_id)

# How many of each agency's assessed access rows have each (tier, score): the queue's total is their sum and a deep page
# starts at the group whose running sum passes the offset, instead of counting and skipping the agency's rows on every page.
# Kept by triggers on report_agency (migration 0012), since several places write that table directly; a group emptied keeps
# its row at zero rather than being deleted, so a concurrent writer's upsert never races a delete. Left out of USER_TABLES:
# created without its triggers it would stay empty.
report_agency_counts = sa.Table(
    "report_agency_counts",
    metadata,
    sa.Column("agency_id", sa.String(64), primary_key=True),
    sa.Column("tier", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("score", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
)

USER_TABLES: Final = (users, sessions, report_agency)


def _need(dt: datetime | None) -> datetime:
    out = _aware(dt)
    assert out is not None
    return out


def _times(text: str | None) -> list[datetime]:
    try:
        values = json.loads(text or "[]")
    except ValueError:
        return []
    return [_need(datetime.fromisoformat(v)) for v in values if isinstance(v, str)]


@dataclass(frozen=True)
class User:
    id: int
    username: str
    agency_id: str
    role: Role
    password_hash: str = field(repr=False)
    totp_secret: str = field(repr=False)
    last_totp_step: int | None
    disabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failed_logins: list[datetime]
    locked_until: datetime | None
    last_login_at: datetime | None
    last_activity_at: datetime  # the last login, the creation or the re-enabling: what the inactivity rule counts from
    password_changed_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Session:
    id: str  # the token's SHA-256
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    csrf_token_hash: str = field(repr=False)
    source_address: str | None


def totp_context(username: str) -> bytes:
    return aad("users", "totp_secret", username)


def _user(row: Mapping[Any, Any], cipher: Cipher) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        agency_id=row["agency_id"],
        role=Role(row["role"]),
        password_hash=row["password_hash"],
        totp_secret=cipher.open_text(row["totp_secret"], totp_context(row["username"])),
        last_totp_step=row["last_totp_step"],
        disabled=bool(row["disabled"]),
        disabled_reason=row["disabled_reason"],
        disabled_at=_aware(row["disabled_at"]),
        failed_logins=_times(row["failed_logins"]),
        locked_until=_aware(row["locked_until"]),
        last_login_at=_aware(row["last_login_at"]),
        last_activity_at=_need(row["last_activity_at"]),
        password_changed_at=_need(row["password_changed_at"]),
        created_at=_need(row["created_at"]),
    )


def _session(row: sa.RowMapping) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        created_at=_need(row["created_at"]),
        last_seen_at=_need(row["last_seen_at"]),
        csrf_token_hash=row["csrf_token_hash"],
        source_address=row["source_address"],
    )


@dataclass(frozen=True)
class FailureOutcome:
    failures: int  # consecutive failures inside the window, this one included
    locked_until: datetime | None  # set when this failure locked the account


class UserRepository:
    """Accounts and sessions. Every method is one transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.cipher = cipher_of(engine)

    # -- accounts ----------------------------------------------------------------------------------

    def create(self, username: str, agency_id: str, role: Role, password_hash: str, totp_secret: str, now: datetime) -> User:
        with self.engine.begin() as conn:
            new_id = conn.execute(
                users.insert().values(
                    username=username, agency_id=agency_id, role=Role(role).value, password_hash=password_hash,
                    totp_secret=self.cipher.seal_text(totp_secret, totp_context(username)), disabled=False, failed_logins="[]", last_activity_at=now, password_changed_at=now, created_at=now,
                ).returning(users.c.id)
            ).scalar_one()
        user = self.get(int(new_id))
        assert user is not None
        return user

    def get(self, user_id: int) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().one_or_none()
        return _user(row, self.cipher) if row is not None else None

    def by_username(self, username: str) -> User | None:
        """The account, read before anyone is signed in. On PostgreSQL the row-level-security role sees no account until its
        transaction is bound to an agency: the owner's function gives the username's agency and nothing else (migration
        0013), and the row is then read under the users policy, bound to that agency."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                agency = conn.execute(_USER_AGENCY, {"username": username}).scalar_one_or_none()
                if agency is None:
                    return None
                scoped(conn, str(agency))
            row = conn.execute(sa.select(users).where(users.c.username == username)).mappings().one_or_none()
        return _user(row, self.cipher) if row is not None else None

    def in_agency(self, agency_id: str) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users).where(users.c.agency_id == agency_id).order_by(users.c.username)).mappings()
            return [_user(r, self.cipher) for r in rows]

    @staticmethod
    def _lock_row(conn: sa.Connection, user_id: int) -> sa.RowMapping | None:
        """Read a user's row for a read-modify-write. A no-op update first takes the write lock (SQLite: the database's,
        PostgreSQL: the row's), so two failures at once are both counted."""
        conn.execute(users.update().where(users.c.id == user_id).values(failed_logins=users.c.failed_logins))
        return conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().one_or_none()

    def record_failure(self, user_id: int, now: datetime, window: timedelta, limit: int, lock_for: timedelta) -> FailureOutcome:
        """Count a failed login. Failures older than ``window`` drop out; the ``limit``-th inside it locks the account
        until ``now + lock_for`` and starts the count again."""
        with self.engine.begin() as conn:
            row = self._lock_row(conn, user_id)
            if row is None:
                return FailureOutcome(0, None)
            recent = [t for t in _times(row["failed_logins"]) if now - t < window] + [now]
            if len(recent) >= limit:
                until = now + lock_for
                conn.execute(users.update().where(users.c.id == user_id).values(failed_logins="[]", locked_until=until))
                return FailureOutcome(len(recent), until)
            text = json.dumps([t.astimezone(UTC).isoformat() for t in recent])
            conn.execute(users.update().where(users.c.id == user_id).values(failed_logins=text))
            return FailureOutcome(len(recent), None)

    def record_success(self, user_id: int, now: datetime, totp_step: int, new_password_hash: str | None = None) -> bool:
        """A good login: the failure count and any expired lock are cleared, the TOTP step is used up. Returns False,
        changing nothing, when that step (or a later one) was already used: the same code twice is a replay."""
        values: dict[str, Any] = {"failed_logins": "[]", "locked_until": None, "last_login_at": now, "last_activity_at": now,
                                  "last_totp_step": totp_step}
        if new_password_hash is not None:
            values["password_hash"] = new_password_hash
        with self.engine.begin() as conn:
            done = conn.execute(
                users.update()
                .where(users.c.id == user_id, sa.or_(users.c.last_totp_step.is_(None), users.c.last_totp_step < totp_step))
                .values(**values)
            )
            return done.rowcount == 1

    def set_password(self, user_id: int, password_hash: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash, password_changed_at=now))

    def disable(self, user_id: int, reason: str, now: datetime) -> int:
        """Disable an account and end all its sessions, in one transaction. Returns how many sessions were ended."""
        with self.engine.begin() as conn:
            conn.execute(users.update().where(users.c.id == user_id).values(disabled=True, disabled_reason=reason[:64], disabled_at=now))
            return conn.execute(sessions.delete().where(sessions.c.user_id == user_id)).rowcount

    def enable(self, user_id: int, now: datetime) -> None:
        """Re-enable an account (an administrator's decision): the failure count and lock start afresh, and the inactivity
        rule counts from now, so the account is not disabled again at once."""
        with self.engine.begin() as conn:
            conn.execute(
                users.update().where(users.c.id == user_id).values(
                    disabled=False, disabled_reason=None, disabled_at=None, failed_logins="[]", locked_until=None, last_activity_at=now,
                )
            )

    def unlock(self, user_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(users.update().where(users.c.id == user_id).values(failed_logins="[]", locked_until=None))

    def inactive_since(self, cutoff: datetime) -> list[User]:
        """Enabled accounts whose last login (or creation, or re-enabling) is before ``cutoff``."""
        with self.engine.connect() as conn:
            q = sa.select(users).where(users.c.disabled.is_(False), users.c.last_activity_at < cutoff).order_by(users.c.id)
            return [_user(r, self.cipher) for r in conn.execute(q).mappings()]

    # -- sessions ----------------------------------------------------------------------------------

    def create_session(self, session_id: str, user_id: int, now: datetime, csrf_token_hash: str, source_address: str | None) -> Session:
        source = (source_address or "")[:64] or None
        with self.engine.begin() as conn:
            conn.execute(sessions.insert().values(id=session_id, user_id=user_id, created_at=now, last_seen_at=now,
                                                  csrf_token_hash=csrf_token_hash, source_address=source))
        return Session(session_id, user_id, now, now, csrf_token_hash, source)

    def session(self, session_id: str) -> Session | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).mappings().one_or_none()
        return _session(row) if row is not None else None

    def touch(self, session_id: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(last_seen_at=now))

    def end_session(self, session_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(sessions.delete().where(sessions.c.id == session_id)).rowcount == 1

    def end_sessions(self, user_id: int, keep: str | None = None) -> int:
        """End every session of a user (but ``keep``, if given). Returns how many were ended."""
        with self.engine.begin() as conn:
            q = sessions.delete().where(sessions.c.user_id == user_id)
            if keep is not None:
                q = q.where(sessions.c.id != keep)
            return conn.execute(q).rowcount

    def sessions_of(self, user_id: int) -> list[Session]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(sessions).where(sessions.c.user_id == user_id).order_by(sessions.c.created_at)).mappings()
            return [_session(r) for r in rows]

    def end_stale_sessions(self, idle_before: datetime, created_before: datetime) -> int:
        """Housekeeping: delete sessions past the idle lock or the re-authentication limit (they are refused anyway)."""
        with self.engine.begin() as conn:
            q = sessions.delete().where(sa.or_(sessions.c.last_seen_at < idle_before, sessions.c.created_at < created_before))
            return conn.execute(q).rowcount


class ReportAccessRepository:
    """Which agency may see which report (``report_agency``), and the queue as one agency sees it."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def assign(self, report_id: str, agency_id: str, via: str, now: datetime) -> None:
        """Let ``agency_id`` see the report (a no-op when it already may). Under row-level security the application role may
        only share a report its own agency holds, by deconfliction (``store.rls``); it cannot see the other agency's row, so
        the insert skips an existing one itself rather than looking first, and the keys are refreshed either way (the
        driver reports no row count for a skipped insert, and a refresh of one report's rows writes what they hold)."""
        if via not in VIA:
            raise ValueError(f"via must be one of {', '.join(VIA)}, not {via!r}")
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        with self.engine.begin() as conn:
            conn.execute(insert(report_agency).values(report_id=report_id, agency_id=agency_id, via=via, assigned_at=now).on_conflict_do_nothing())
            from tiptriage.store import queue_keys  # queue_keys reads this module's table

            queue_keys.refresh(conn, [report_id])

    def revoke(self, report_id: str, agency_id: str) -> bool:
        with self.engine.begin() as conn:
            q = report_agency.delete().where(report_agency.c.report_id == report_id, report_agency.c.agency_id == agency_id)
            return conn.execute(q).rowcount == 1

    def via(self, report_id: str, agency_id: str) -> str | None:
        """How ``agency_id`` came to see the report, or None when it may not see it (whether or not the report exists)."""
        with self.engine.connect() as conn:
            q = sa.select(report_agency.c.via).where(report_agency.c.report_id == report_id, report_agency.c.agency_id == agency_id)
            found = conn.execute(q).scalar_one_or_none()
        return str(found) if found is not None else None

    def readable_report(self, report_id: str, agency_id: str) -> tuple[str | None, str | None]:
        """How ``agency_id`` came to see the report (None: it may not, whether or not the report exists) and the report's
        canonical JSON, decrypted (None: not stored), in one query.

        The JSON is the text the store sealed: ``Report.model_dump_json(exclude_none=True)`` of the validated model
        (``store.report_row``), so it is the API's report document as it stands; sending it as read saves parsing it into the
        model and writing it out again, which gave back the same text."""
        with self.engine.connect() as conn:
            row = conn.execute(_READABLE_REPORT, {"report_id": report_id, "agency": agency_id}).first()
        return _readable(row, report_id, self.cipher)

    @property
    def cipher(self) -> Cipher:
        return cipher_of(self.engine)

    def agencies_of(self, report_id: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            q = sa.select(report_agency.c.agency_id, report_agency.c.via).where(report_agency.c.report_id == report_id)
            return {r[0]: r[1] for r in conn.execute(q)}

    def queue(self, agency_id: str, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One agency's assessed reports, most urgent first (tier, score descending, received, report id: the order of
        ``AssessmentRepository.queue``), and how many there are in all. Each row has the fields of the API's queue item:
        report_id, tier, score, incident_type, received_at, reasons (the reason of every rule that fired, in order),
        policy_version, via.

        The order and the count come from the agency's own access rows, which carry copies of the sort keys
        (``store.queue_keys``; NULL tier: not assessed yet): a page is a range of ``ix_report_agency_queue`` starting at the
        (tier, score) group the offset falls in, and the count a sum of the agency's few ``report_agency_counts`` rows, instead
        of joining and sorting every report the agency sees (a third of a second at 100,000 reports for each page) or counting
        and skipping its access rows. Count, page and the page's columns are one statement, one round trip, in one snapshot. A page past the
        end comes back empty, with the total."""
        params = {"agency": agency_id, "limit": limit, "offset": offset}
        with self.engine.connect() as conn:
            rows = conn.execute(_QUEUE, params).all()
            if not rows:
                return [], int(conn.execute(_ASSESSED_TOTAL, params).scalar_one())
        return _queue_items(rows), int(rows[0][0])


def _queue_items(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    # the stored reasons (assessments.reasons, a few hundred bytes a report), not the fired rules they come from: parsing
    # a page's fired JSON (about 90 kB at 100,000 reports) was a sixth of the service's CPU under the load benchmark
    return [{"report_id": rid, "tier": tier, "score": score, "incident_type": incident, "received_at": _aware(received),
             "reasons": orjson.loads(reasons), "policy_version": version, "via": via}
            for _total, rid, tier, score, incident, received, reasons, version, via in rows]


def _readable(row: Sequence[Any] | None, report_id: str, cipher: Cipher) -> tuple[str | None, str | None]:
    if row is None:
        return None, None
    via, sealed = row
    # the context is the one the store seals a report's JSON with (store.repository._report_context)
    text = cipher.open_text(sealed, aad("reports", "data", report_id)) if sealed is not None else None
    return str(via), text


_READABLE_REPORT: Final = (
    sa.select(report_agency.c.via, reports.c.data)
    .select_from(report_agency.outerjoin(reports, reports.c.id == report_agency.c.report_id))
    .where(report_agency.c.report_id == sa.bindparam("report_id", type_=sa.String),
           report_agency.c.agency_id == sa.bindparam("agency", type_=sa.String))
)

def _counted_total(agency: sa.ColumnElement[str], tier: sa.ColumnElement[int] | None = None) -> sa.ScalarSelect[Any]:
    """How many of the agency's access rows are assessed (of ``tier``, when given): the sum of its few count rows."""
    c = report_agency_counts
    q = sa.select(sa.func.coalesce(sa.func.sum(c.c.n), 0)).where(c.c.agency_id == agency)
    if tier is not None:
        q = q.where(c.c.tier == tier)
    return q.scalar_subquery()


def _page_from_counts(agency: sa.ColumnElement[str], tier: sa.ColumnElement[int] | None, limit: sa.ColumnElement[int],
                      offset: sa.ColumnElement[int]) -> sa.Subquery:
    """The page's access rows (report_id, tier, score, received_at, via; unordered: order by the queue keys) without skipping
    ``offset`` rows of the index: the running sum of the agency's counts in queue order names the (tier, score) group the
    offset falls in and how many rows come before it; the page is then read from that group's first row, as two index ranges
    (the rest of its tier from its score down, and the later tiers), skipping only the rows of the group before the offset.
    Two ranges because the index orders score descending within an ascending tier, which no one row comparison spans."""
    c, ra = report_agency_counts, report_agency
    upto = sa.func.sum(c.c.n).over(order_by=(c.c.tier, c.c.score.desc()), rows=(None, 0))
    groups = sa.select(c.c.tier, c.c.score, c.c.n, upto.label("upto")).where(c.c.agency_id == agency)
    if tier is not None:
        groups = groups.where(c.c.tier == tier)
    g = groups.subquery("groups")
    start = (sa.select(g.c.tier, g.c.score, (g.c.upto - g.c.n).label("before")).where(g.c.upto > offset)
             .order_by(g.c.tier, g.c.score.desc()).limit(1).cte("start"))
    start_tier = sa.select(start.c.tier).scalar_subquery()
    start_score = sa.select(start.c.score).scalar_subquery()
    # offset >= total: no group, so no rows; the skip is then 0, an integer OFFSET rather than NULL (SQLite refuses NULL)
    skip = offset - sa.func.coalesce(sa.select(start.c.before).scalar_subquery(), offset)
    cols = (ra.c.report_id, ra.c.tier, ra.c.score, ra.c.received_at, ra.c.via)
    keys = (ra.c.tier, ra.c.score.desc(), ra.c.received_at, ra.c.report_id)
    # the skip is taken inside the first range, which holds the whole group and so more rows than the skip: each range then
    # gives at most ``limit`` rows to the merge in queue order, not ``limit`` plus the skip to a sort
    same_tier = (sa.select(*cols).where(ra.c.agency_id == agency, ra.c.tier == start_tier, ra.c.score <= start_score)
                 .order_by(*keys).limit(limit).offset(skip).subquery("same_tier"))
    arms: list[sa.Select[Any]] = [sa.select(*same_tier.c)]
    if tier is None:
        later = (sa.select(*cols).where(ra.c.agency_id == agency, ra.c.tier > start_tier)
                 .order_by(*keys).limit(limit).subquery("later"))
        arms.append(sa.select(*later.c))
    both = sa.union_all(*arms).subquery("both") if len(arms) > 1 else arms[0].subquery("both")
    return (sa.select(*both.c).order_by(both.c.tier, both.c.score.desc(), both.c.received_at, both.c.report_id)
            .limit(limit).subquery("page"))


# Built once: a statement object keeps its cache key, so each execution finds its compiled SQL without walking the tree again
_ASSESSED_TOTAL: Final = sa.select(_counted_total(sa.bindparam("agency", type_=sa.String)))

def _queue_statement() -> sa.Select[Any]:
    """The queue's one statement: the page of access rows from the agency's counts and the queue index (its own columns only,
    ``_page_from_counts``; ``via`` is one of them, so the access rows are not looked up again), joined to the page's
    assessments and reports, with the total on every row."""
    agency = sa.bindparam("agency", type_=sa.String)
    page = _page_from_counts(agency, None, sa.bindparam("limit", type_=sa.Integer), sa.bindparam("offset", type_=sa.Integer))
    qa, qr = assessments.alias("qa"), reports.alias("qr")
    return (
        sa.select(_counted_total(agency).label("total"), qa.c.report_id, qa.c.tier, qa.c.score, qr.c.incident_type, qr.c.received_at,
                  qa.c.reasons, qa.c.policy_version, page.c.via)
        .select_from(page.join(qa, qa.c.report_id == page.c.report_id).join(qr, qr.c.id == page.c.report_id))
        .order_by(page.c.tier, page.c.score.desc(), page.c.received_at, page.c.report_id)
    )


_QUEUE: Final = _queue_statement()


def access_row_page(conn: sa.Connection, agency_id: str, *, tier: int | None = None, open_only: bool = False, limit: int,
                    offset: int) -> tuple[list[str], int]:
    """One page of the agency's assessed reports in queue order (tier, score descending, received, report id) and how many
    there are, from its access rows and their copied sort keys (``store.queue_keys``): the page is a range of
    ``ix_report_agency_queue``, not a sort of every report. Unfiltered or by tier, the total and the page's start come from
    ``report_agency_counts`` (``_page_from_counts``). ``open_only``: no closed case of the agency's own, which the counts do
    not know, so that page skips its offset over the index; its count is the counts' sum less the closed ones, which are few
    next to a whole queue."""
    ra = report_agency
    if not open_only:
        agency = sa.literal(agency_id, sa.String)
        tier_is = sa.literal(tier, sa.Integer) if tier is not None else None
        total_q = sa.select(_counted_total(agency, tier_is))
        page = _page_from_counts(agency, tier_is, sa.literal(limit, sa.Integer), sa.literal(offset, sa.Integer))
        q = sa.select(total_q.scalar_subquery().label("total"), page.c.report_id).select_from(page)
        rows = conn.execute(q.order_by(page.c.tier, page.c.score.desc(), page.c.received_at, page.c.report_id)).all()
        if not rows:
            return [], int(conn.execute(total_q).scalar_one())
        return [str(r[1]) for r in rows], int(rows[0][0])
    mine: list[sa.ColumnElement[bool]] = [ra.c.agency_id == agency_id, ra.c.tier.is_not(None)]
    if tier is not None:
        mine.append(ra.c.tier == tier)
    closed_own = sa.and_(cases.c.report_id == ra.c.report_id, cases.c.agency_id == agency_id, cases.c.state == "closed")
    # one statement, so both counts see the same snapshot
    closed = sa.select(sa.func.count()).select_from(ra.join(cases, closed_own)).where(*mine).scalar_subquery()
    counted = sa.select(_counted_total(sa.literal(agency_id, sa.String), sa.literal(tier, sa.Integer) if tier is not None else None)
                        - closed)
    total = int(conn.execute(counted).scalar_one())
    if offset >= total:
        return [], total
    order = sa.select(ra.c.report_id).where(*mine).where(~sa.exists().where(closed_own))
    order = order.order_by(ra.c.tier, ra.c.score.desc(), ra.c.received_at, ra.c.report_id).limit(limit).offset(offset)
    return [str(r[0]) for r in conn.execute(order)], total


# built once, as the other statements every request runs (see _ASSESSED_TOTAL)
_SESSION_AND_USER: Final = (
    sa.select(*[c.label(f"session_{c.name}") for c in sessions.c], users)
    .select_from(sessions.outerjoin(users, users.c.id == sessions.c.user_id))
    .where(sessions.c.id == sa.bindparam("session_id", type_=sa.String))
)


# PostgreSQL: the same row from the owner's function (migration 0013), since the session check comes before the request is
# bound to an agency and the row-level-security role sees no session or account until it is
_SESSION_AND_USER_PG: Final = sa.text("SELECT * FROM tiptriage_session_user(:session_id)")
_USER_AGENCY: Final = sa.text("SELECT tiptriage_user_agency(:username)")


def session_and_user(repository: UserRepository, session_id: str) -> tuple[Session, User | None] | None:
    """A session and its account in one query: the check every request makes (two round trips and two pooled connections
    each time, before this). None: no such session; a None user: the account is gone (the session is then void)."""
    with repository.engine.connect() as conn:
        query = _SESSION_AND_USER_PG if conn.dialect.name == "postgresql" else _SESSION_AND_USER
        row = conn.execute(query, {"session_id": session_id}).mappings().one_or_none()
    return _session_and_user(row, repository.cipher) if row is not None else None


def _session_and_user(row: Mapping[Any, Any], cipher: Cipher) -> tuple[Session, User | None]:
    session = Session(id=row["session_id"], user_id=row["session_user_id"], created_at=_need(row["session_created_at"]),
                      last_seen_at=_need(row["session_last_seen_at"]), csrf_token_hash=row["session_csrf_token_hash"],
                      source_address=row["session_source_address"])
    return session, (_user(row, cipher) if row["id"] is not None else None)


class ReportReads(Protocol):
    """The two reads of case data the service's busiest endpoints make: ``ReportAccessRepository``'s, or a ``SessionRead``'s
    in the transaction of the session check."""

    def queue(self, agency_id: str, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]: ...

    def readable_report(self, report_id: str, agency_id: str) -> tuple[str | None, str | None]: ...


# The session row and, in the same statement, the transaction bound to the account's agency (row-level security): the read
# that follows, sent only once the caller has accepted the session, needs no statement of its own to bind it. The agency
# comes from the very row the caller checks, and the caller passes it again to the read, which refuses any other.
_HOT_SESSION: Final = ("SELECT *, set_config('tiptriage.agency', coalesce(agency_id, ''), true) AS bound_agency "
                       "FROM tiptriage_session_user(%(session_id)s)")
_HOT_BIND: Final = "SELECT set_config('tiptriage.agency', %(agency)s, true)"
# The queue's statement has the same best plan whatever the agency, page and offset (index ranges and key lookups), but
# PostgreSQL plans it afresh on every execution while the custom plans it tries first cost no more than the generic one:
# 0.6 ms of planning on each page at 100,000 reports, measured (psycopg prepares the statement after a few executions on a
# connection; this lets the server keep the plan it made once). LOCAL: for the rest of this transaction only.
_GENERIC_PLAN: Final = "SET LOCAL plan_cache_mode = force_generic_plan"


@cache
def _hot_statements() -> tuple[DriverSQL, DriverSQL, DriverSQL]:
    return driver_sql(_QUEUE), driver_sql(_ASSESSED_TOTAL), driver_sql(_READABLE_REPORT)


class SessionRead:
    """PostgreSQL: a request's session check and its one read of case data (a queue page, or a report with its agency check)
    in one transaction on one pooled connection, through the driver, pipelined (``store.db.DriverTransaction``): two round
    trips, the session with its account (which binds the transaction to the account's agency), then the read with the
    commit. Through SQLAlchemy the same took eight (BEGIN, the agency's SET, the statement and the ROLLBACK, twice), on two
    pooled connections one after the other.

    ``session()`` first; then, once the caller has accepted the session, ``queue`` or ``readable_report``, which answer as
    ``ReportAccessRepository``'s (the same SQL and the same rows) and end the transaction. ``close()``, or leaving the with
    block, ends it otherwise (rolled back: nothing was written)."""

    def __init__(self, engine: sa.Engine, session_id: str) -> None:
        self.engine = engine
        self.cipher = cipher_of(engine)
        self._session_id = session_id
        self._bound: str | None = None
        self._tx = DriverTransaction(engine)

    def __enter__(self) -> SessionRead:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._tx.__exit__(typ, exc, tb)

    def close(self) -> None:
        self._tx.end(commit=False)

    def session(self) -> tuple[Session, User | None] | None:
        """As ``session_and_user``: the session and its account (None: no such session; a None account: it is gone)."""
        row = self._tx.send(_HOT_SESSION, {"session_id": self._session_id}, as_dicts=True).fetchone()
        if row is None:
            return None
        self._bound = row["bound_agency"] or None
        return _session_and_user(row, self.cipher)

    def _check_bound(self, agency_id: str) -> None:
        if self._bound is None or agency_id != self._bound:
            self.close()
            raise PermissionError("a read in the session's transaction is for the session's own agency only")

    def queue(self, agency_id: str, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """As ``ReportAccessRepository.queue``."""
        self._check_bound(agency_id)
        page, total, _ = _hot_statements()
        params = {"agency": agency_id, "limit": limit, "offset": offset}
        self._tx.send(_GENERIC_PLAN)
        cur = self._tx.send(page.sql, {**page.params, **params})
        self._tx.end()
        rows = cur.fetchall()
        if not rows:  # past the end: the total alone, as the general path then reads it, in a statement of its own
            with DriverTransaction(self.engine) as tx:
                tx.send(_HOT_BIND, params)
                counted = tx.send(total.sql, {**total.params, **params})
                tx.end()
            return [], int(counted.fetchone()[0])
        return _queue_items(rows), int(rows[0][0])

    def readable_report(self, report_id: str, agency_id: str) -> tuple[str | None, str | None]:
        """As ``ReportAccessRepository.readable_report``."""
        self._check_bound(agency_id)
        _, _, readable = _hot_statements()
        cur = self._tx.send(readable.sql, {**readable.params, "report_id": report_id, "agency": agency_id})
        self._tx.end()
        return _readable(cur.fetchone(), report_id, self.cipher)
