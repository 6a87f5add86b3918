"""Accounts, login sessions and the audit log in the database (synchronous; the web server calls
them with ``asyncio.to_thread``, see decision 0005).

Session tokens are random (256 bits) and only their SHA-256 is stored, so a copy of the database
does not log anyone in. The audit log has no update or delete here, and the database refuses both
(triggers from migration 0006): what an auditor reads is what happened.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.auth import ROLES
from cc_core.auth.passwords import DUMMY_HASH, check_rule, hash_password, needs_rehash, verify_password
from cc_core.db.models import AuditEntry, User, WebSession

USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


class AccountError(ValueError):
    """A refused account change (unknown user, a taken name, a bad role…); one line."""


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    username: str
    display_name: str
    role: str
    agent_id: str | None
    disabled: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: User) -> UserView:
        return cls(row.id, row.username, row.display_name, row.role, row.agent_id, row.disabled, row.created_at)


@dataclass(frozen=True, slots=True)
class SessionView:
    """A live login: who, and the CSRF token their browser must echo on every change."""

    user: UserView
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditView:
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    ip: str
    allowed: bool
    detail: dict[str, Any]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_username(username: str) -> str:
    name = username.strip().lower()
    if not 2 <= len(name) <= 64 or not set(name) <= USERNAME_CHARS:
        raise AccountError(
            f"用户名须为 2–64 个小写字母、数字或 ._- (user name: 2–64 of a-z 0-9 . _ -), got {username!r}"
        )
    return name


class UserStore:
    """Accounts: create, authenticate, change password or role, disable."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(
        self,
        username: str,
        role: str,
        password: str,
        at: datetime,
        *,
        display_name: str = "",
        agent_id: str | None = None,
    ) -> UserView:
        name = _check_username(username)
        if role not in ROLES:
            raise AccountError(f"未知角色 {role!r} (unknown role; one of {', '.join(ROLES)})")
        check_rule(password, name)
        row = User(
            username=name,
            display_name=(display_name or name)[:64],
            role=role,
            password_hash=hash_password(password),
            agent_id=agent_id,
            disabled=False,
            created_at=at,
            password_changed_at=at,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
                session.flush()
                return UserView.from_row(row)
        except IntegrityError as exc:
            raise AccountError(f"用户名 {name} 已存在 (user {name} exists)") from exc

    def authenticate(self, username: str, password: str, at: datetime) -> UserView | None:
        """The user if the password is right and the account enabled; None otherwise (same cost).

        The account is read and its database connection given back before the password is
        checked (~0.1 s of argon2, longer at the login threads' low priority under load): a flood
        of logins must not hold the connections the rest of the controller needs (issue 11 item 1).
        """
        name = username.strip().lower()
        with self._sessions() as session:
            row = session.scalar(select(User).where(User.username == name))
            view = UserView.from_row(row) if row is not None else None
            stored = row.password_hash if row is not None else None
        if view is None or stored is None:
            verify_password(DUMMY_HASH, password)
            return None
        if not verify_password(stored, password) or view.disabled:
            return None
        if needs_rehash(stored):
            new_hash = hash_password(password)
            with self._sessions.begin() as session:
                row = session.scalar(select(User).where(User.username == name))
                if row is not None and row.password_hash == stored:  # not changed meanwhile
                    row.password_hash = new_hash
        return view

    def set_password(self, username: str, password: str, at: datetime) -> None:
        with self._sessions.begin() as session:
            row = self._get(session, username)
            check_rule(password, row.username)
            row.password_hash = hash_password(password)
            row.password_changed_at = at
            # A new password ends every session of the old one.
            session.execute(delete(WebSession).where(WebSession.user_id == row.id))

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self._sessions.begin() as session:
            row = self._get(session, username)
            row.disabled = disabled
            if disabled:
                session.execute(delete(WebSession).where(WebSession.user_id == row.id))

    def get(self, username: str) -> UserView | None:
        with self._sessions() as session:
            row = session.scalar(select(User).where(User.username == username.strip().lower()))
            return UserView.from_row(row) if row is not None else None

    def list(self) -> list[UserView]:
        with self._sessions() as session:
            return [UserView.from_row(r) for r in session.scalars(select(User).order_by(User.username))]

    def _get(self, session: Session, username: str) -> User:
        row = session.scalar(select(User).where(User.username == username.strip().lower()))
        if row is None:
            raise AccountError(f"没有用户 {username!r} (no such user)")
        return row


class SessionStore:
    """Login sessions: a random token in the browser's cookie, its hash here."""

    def __init__(self, sessions: sessionmaker[Session], *, idle: timedelta, lifetime: timedelta) -> None:
        self._sessions = sessions
        self.idle = idle
        self.lifetime = lifetime

    def open(self, user_id: int, at: datetime, ip: str) -> tuple[str, SessionView]:
        """A new session; returns (the cookie's token, the session). The token is not stored."""
        token = secrets.token_urlsafe(32)
        row = WebSession(
            token_hash=_token_hash(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(24),
            created_at=at,
            last_seen_at=at,
            expires_at=at + self.lifetime,
            ip=ip[:64],
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            user = session.get(User, user_id)
            assert user is not None
            return token, SessionView(UserView.from_row(user), row.csrf_token, row.expires_at)

    def resolve(self, token: str, at: datetime) -> SessionView | None:
        """The live session of a cookie's token (its idle clock restarts), or None: unknown,
        idle too long, past its lifetime, or its user disabled."""
        if not token or len(token) > 128:
            return None
        with self._sessions.begin() as session:
            row = session.scalar(select(WebSession).where(WebSession.token_hash == _token_hash(token)))
            if row is None:
                return None
            user = session.get(User, row.user_id)
            if user is None or user.disabled or at >= row.expires_at or at - row.last_seen_at > self.idle:
                session.delete(row)
                return None
            row.last_seen_at = at
            return SessionView(UserView.from_row(user), row.csrf_token, row.expires_at)

    def close(self, token: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(WebSession).where(WebSession.token_hash == _token_hash(token)))

    def prune(self, at: datetime) -> int:
        """Drop sessions past their lifetime or idle time; returns how many."""
        with self._sessions.begin() as session:
            result = session.execute(
                delete(WebSession).where((WebSession.expires_at <= at) | (WebSession.last_seen_at < at - self.idle))
            )
            return int(getattr(result, "rowcount", 0) or 0)


class AuditLog:
    """Append-only record of who did what with recordings and personal data (P2)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def write(
        self,
        at: datetime,
        actor: str,
        role: str,
        action: str,
        target: str,
        ip: str,
        *,
        allowed: bool,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        row = AuditEntry(
            at=at,
            actor=actor[:64],
            role=role[:16],
            action=action[:32],
            target=target[:128],
            ip=ip[:64],
            allowed=allowed,
            detail=dict(detail or {}),
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            return row.id

    def read(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 200,
    ) -> list[AuditView]:
        query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(max(1, min(limit, 5000)))
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if until is not None:
            query = query.where(AuditEntry.at < until)
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if action:
            query = query.where(AuditEntry.action == action)
        if target:
            query = query.where(AuditEntry.target == target)
        with self._sessions() as session:
            return [
                AuditView(r.id, r.at, r.actor, r.role, r.action, r.target, r.ip, r.allowed, dict(r.detail or {}))
                for r in session.scalars(query)
            ]
