"""Generated secrets (P2): created on first use, private, stable, never a default, never shared."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from cc_core.errors import SettingsError
from cc_core.secrets import Secrets, load_or_create, secrets_path
from cc_core.settings import AgentSettings, Settings


def settings_with(home: Path, *agent_ids: str) -> Settings:
    return Settings(home=home, agents=[AgentSettings(id=a, name=f"坐席{a}") for a in agent_ids])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def all_values(secrets: Secrets) -> list[str]:
    return [secrets.ami_secret, secrets.ari_password, *secrets.agent_passwords.values()]


def test_generated_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "1001", "1002")
    path = secrets_path(settings)
    assert path == tmp_path / "var" / "secrets.json"
    assert not path.exists()
    secrets = load_or_create(settings)
    assert mode(path) == 0o600
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["ami_secret"] == secrets.ami_secret
    assert on_disk["agent_passwords"] == {
        "1001": secrets.agent_password("1001"),
        "1002": secrets.agent_password("1002"),
    }
    assert secrets.ami_user == "hotline" and secrets.ari_user == "hotline"
    assert not list(path.parent.glob("*.tmp")), "the temporary file is renamed, not left behind"


def test_secrets_are_long_random_and_url_safe(tmp_path: Path) -> None:
    secrets = load_or_create(settings_with(tmp_path, "1001"))
    for value in all_values(secrets):
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", value), value
        assert value.lower() not in ("admin", "password", "secret", "hotline", "amp111", "1234")


def test_no_two_secrets_are_equal(tmp_path: Path) -> None:
    agents = [str(1000 + n) for n in range(1, 31)]
    first = load_or_create(settings_with(tmp_path / "a", *agents))
    second = load_or_create(settings_with(tmp_path / "b", *agents))
    values = all_values(first) + all_values(second)
    assert len(values) == 2 * (2 + len(agents))
    assert len(set(values)) == len(values)


def test_stable_across_loads_and_not_rewritten(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "1001", "1002")
    first = load_or_create(settings)
    path = secrets_path(settings)
    before = path.stat()
    second = load_or_create(settings)
    assert second == first
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_new_agent_gets_a_password_without_changing_the_others(tmp_path: Path) -> None:
    first = load_or_create(settings_with(tmp_path, "1001", "1002"))
    grown = load_or_create(settings_with(tmp_path, "1001", "1002", "1003"))
    assert grown.ami_secret == first.ami_secret and grown.ari_password == first.ari_password
    assert grown.agent_password("1001") == first.agent_password("1001")
    assert grown.agent_password("1002") == first.agent_password("1002")
    assert grown.agent_password("1003") not in all_values(first)
    assert load_or_create(settings_with(tmp_path, "1001", "1002", "1003")) == grown
    # An agent removed from the settings keeps its password, in case they come back.
    assert load_or_create(settings_with(tmp_path, "1001")).agent_password("1003") == grown.agent_password("1003")


def test_a_missing_or_empty_entry_is_generated_and_the_rest_kept(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "1001", "1002")
    first = load_or_create(settings)
    path = secrets_path(settings)
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["ari_password"]
    data["agent_passwords"]["1002"] = ""
    path.write_text(json.dumps(data), encoding="utf-8")
    repaired = load_or_create(settings)
    assert repaired.ami_secret == first.ami_secret
    assert repaired.agent_password("1001") == first.agent_password("1001")
    assert repaired.ari_password and repaired.ari_password != first.ari_password
    assert repaired.agent_password("1002") and repaired.agent_password("1002") != first.agent_password("1002")
    assert json.loads(path.read_text(encoding="utf-8"))["ari_password"] == repaired.ari_password
    assert mode(path) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        '{"ami_secret": "abc"',
        "[]",
        "null",
        '"a string"',
        '{"ami_secret": 12345}',
        '{"ami_secret": "s", "agent_passwords": ["1001"]}',
        '{"ami_secret": "s", "agent_passwords": {"1001": 42}}',
    ],
)
def test_a_corrupted_file_is_a_settings_error(tmp_path: Path, content: str) -> None:
    settings = settings_with(tmp_path, "1001")
    path = secrets_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_or_create(settings)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert path.read_text(encoding="utf-8") == content, "a damaged file is left for the admin, not overwritten"


def test_binary_garbage_is_a_settings_error(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    path = secrets_path(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SettingsError, match="unreadable"):
        load_or_create(settings)


def test_a_leftover_temp_file_does_not_loosen_the_mode(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "1001")
    path = secrets_path(settings)
    path.parent.mkdir(parents=True)
    leftover = path.with_suffix(".tmp")
    leftover.write_text("half-written", encoding="utf-8")
    leftover.chmod(0o644)
    load_or_create(settings)
    assert mode(path) == 0o600
    assert not leftover.exists()
