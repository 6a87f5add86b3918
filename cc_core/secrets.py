"""Secrets generated on first run and kept outside git (``var/secrets.json``, mode 0600).

No default password exists anywhere in the product: the AMI and ARI secrets and every
agent's SIP password are random, created the first time they are needed (P2).
"""

from __future__ import annotations

import json
import os
import secrets as _random
from dataclasses import dataclass, field
from pathlib import Path

from cc_core.errors import SettingsError
from cc_core.settings import Settings

FILE_NAME = "secrets.json"


def _token() -> str:
    return _random.token_urlsafe(24)


@dataclass
class Secrets:
    """The generated credentials of one installation."""

    ami_user: str = "hotline"
    ami_secret: str = field(default_factory=_token)
    ari_user: str = "hotline"
    ari_password: str = field(default_factory=_token)
    # The commands to the controller from the server itself ("hotline agent …") carry it; people
    # on the web pages log in with their own accounts instead.
    control_token: str = field(default_factory=_token)
    # The key of the ID-card hashes kept for contacts (HMAC-SHA256, decision 0016): without it
    # the database holds no ID-card number, and with a new one the old hashes match nothing.
    contact_key: str = field(default_factory=lambda: _random.token_urlsafe(32))
    agent_passwords: dict[str, str] = field(default_factory=dict)

    def agent_password(self, agent_id: str) -> str:
        return self.agent_passwords[agent_id]


def secrets_path(settings: Settings) -> Path:
    return settings.state_path / FILE_NAME


def load_or_create(settings: Settings) -> Secrets:
    """Load the secrets file, adding what is missing (a new agent gets a new password).

    The file is rewritten atomically (temp file + rename) and only when something was added.
    """
    path = secrets_path(settings)
    data: dict[str, object] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingsError(f"secrets file {path} is unreadable ({exc}); restore it from backup") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"secrets file {path} is not a JSON object; restore it from backup")
        data = loaded
    raw_agents = data.get("agent_passwords", {})
    if not isinstance(raw_agents, dict):
        raise SettingsError(f"secrets file {path}: agent_passwords is not a JSON object; restore it from backup")
    agents: dict[str, str] = {}
    for key, value in raw_agents.items():
        _check_text(path, f"agent_passwords.{key}", value)
        if isinstance(value, str) and value:
            agents[str(key)] = value
    changed = not path.exists()
    for agent in settings.agents:
        if agent.id not in agents:
            agents[agent.id] = _token()
            changed = True
    result = Secrets(agent_passwords=agents)
    for name in ("ami_user", "ami_secret", "ari_user", "ari_password", "control_token", "contact_key"):
        value = data.get(name)
        _check_text(path, name, value)
        if isinstance(value, str) and value:
            setattr(result, name, value)
        else:
            changed = True
    if changed:
        _write(path, result)
    return result


def _check_text(path: Path, key: str, value: object) -> None:
    """A value must be text (a missing or empty one is generated anew): a number, a list or an
    object there means the file was damaged, and a silently new secret would lock phones out."""
    if value is not None and not isinstance(value, str):
        raise SettingsError(f"secrets file {path}: {key} is not a string; restore it from backup")


def _write(path: Path, value: Secrets) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    payload = json.dumps(value.__dict__, indent=2, sort_keys=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # The mode given to open() only applies to a new file: a leftover temp file keeps its own.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def rotate_agent_password(settings: Settings, agent_id: str) -> tuple[Secrets, str]:
    """Give the agent's SIP account a new random password (a lost or leaked one); the file is
    rewritten atomically. Returns the new secrets and the password, which is shown to the admin
    once and kept nowhere else in clear. Raises KeyError for an agent not in the settings."""
    if agent_id not in {agent.id for agent in settings.agents}:
        raise KeyError(agent_id)
    secrets = load_or_create(settings)
    password = _token()
    secrets.agent_passwords[agent_id] = password
    _write(secrets_path(settings), secrets)
    return secrets, password
