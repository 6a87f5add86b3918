"""Agents and queues edited by an admin (issue 6 item 5; BRIEF: admins edit queues and agents).

``hotline.toml`` stays the one source of the agents and queues (decision 0002: the switch's
config is rendered from it). An edit from the web changes that file with tomlkit, which keeps
every comment and the layout an admin wrote, validates the whole result through the same
:func:`~cc_core.settings.load_settings` the controller starts with (so a web edit can never
write a file the next start would refuse), and replaces the file atomically. The controller then
applies the new settings to the running ACD (:meth:`Acd.reconfigure`) without a restart.

Queues can be changed, not added or removed here: a queue only gets callers from a flow's queue
node, so adding one is a flow change as well. Agents can be added (the SIP password is made and
shown once), changed, and removed while logged out.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from cc_core.errors import HotlineError
from cc_core.settings import QueueSettings, Settings, load_settings

AGENT_FIELDS = ("name", "skills", "team", "tags", "queues", "chat_capacity")
QUEUE_FIELDS = tuple(name for name in QueueSettings.model_fields if name != "name")


class RosterError(HotlineError):
    """An edit that cannot be made; the message says why in one line (Chinese first)."""


class RosterInvalid(RosterError):
    """An edit whose values the settings refuse (the web answers 400): the message names the key,
    e.g. ``agents.4.name`` for a name that would add lines to pjsip.conf (issue 11 item 2)."""


def _tables(doc: tomlkit.TOMLDocument, key: str, defaults: list[dict[str, Any]]) -> AoT:
    """The document's ``[[key]]`` array of tables, made from ``defaults`` when the file has none."""
    existing = doc.get(key)
    if isinstance(existing, AoT):
        return existing
    if existing is not None:
        raise RosterError(f"{key} in the settings file is not a list of [[{key}]] tables; edit the file by hand")
    tables = tomlkit.aot()
    for entry in defaults:
        table = tomlkit.table()
        for name, value in entry.items():
            table[name] = value
        tables.append(table)
    doc[key] = tables
    return tables


def _find(tables: AoT, field: str, value: str) -> Table | None:
    for table in tables:
        if isinstance(table, Table) and str(table.get(field)) == value:
            return table
    return None


def _clean_agent(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: fields[k] for k in AGENT_FIELDS if k in fields}


class Roster:
    """Edits of the settings file's ``[[agents]]`` and ``[[queues]]``."""

    def __init__(self, path: Path, env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.env = env

    def _edit(self, change: Callable[[tomlkit.TOMLDocument, Settings], None]) -> Settings:
        """Apply ``change`` to the file, validate the result as settings, write it atomically."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RosterError(f"配置文件无法读取 (cannot read {self.path}: {exc.strerror or exc})") from exc
        doc = tomlkit.parse(text)
        current = load_settings(self.path, env=self.env)
        change(doc, current)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(tomlkit.dumps(doc))
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, self.path.stat().st_mode & 0o777)
            try:
                settings = load_settings(tmp, env=self.env)
            except HotlineError as exc:
                reason = str(exc).replace(str(tmp), self.path.name)
                raise RosterInvalid(f"设置无效，未保存 (refused, nothing written): {reason}") from exc
            tmp.replace(self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return settings

    def save_agent(self, agent_id: str, fields: Mapping[str, Any], *, create: bool) -> Settings:
        """Add (``create``) or change one agent; ``fields`` are :data:`AGENT_FIELDS`."""
        values = _clean_agent(fields)

        def change(doc: tomlkit.TOMLDocument, current: Settings) -> None:
            tables = _tables(doc, "agents", [])
            found = _find(tables, "id", agent_id)
            if create:
                if found is not None:
                    raise RosterError(f"坐席 {agent_id} 已存在 (agent {agent_id} exists already)")
                if any(n.number == agent_id for n in current.numbers):
                    raise RosterError(f"工号 {agent_id} 与热线号码相同 (equals a hotline number)")
                table = tomlkit.table()
                table["id"] = agent_id
                for name, value in values.items():
                    table[name] = value
                tables.append(table)
                return
            if found is None:
                raise RosterError(f"没有坐席 {agent_id} (no agent {agent_id})")
            for name, value in values.items():
                found[name] = value

        return self._edit(change)

    def remove_agent(self, agent_id: str) -> Settings:
        def change(doc: tomlkit.TOMLDocument, _current: Settings) -> None:
            tables = _tables(doc, "agents", [])
            for index, table in enumerate(tables):
                if str(table.get("id")) == agent_id:
                    del tables[index]
                    return
            raise RosterError(f"没有坐席 {agent_id} (no agent {agent_id})")

        return self._edit(change)

    def save_queue(self, name: str, fields: Mapping[str, Any]) -> Settings:
        """Change an existing queue's settings (strategy, timeouts, wrap-up…)."""
        values = {k: fields[k] for k in QUEUE_FIELDS if k in fields}

        def change(doc: tomlkit.TOMLDocument, current: Settings) -> None:
            defaults = [q.model_dump(exclude_defaults=True) | {"name": q.name} for q in current.queues]
            tables = _tables(doc, "queues", defaults)
            found = _find(tables, "name", name)
            if found is None:
                raise RosterError(f"没有队列 {name} (no queue {name}; queues are added in hotline.toml)")
            for key, value in values.items():
                found[key] = value

        return self._edit(change)
