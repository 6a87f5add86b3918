"""One settings object for the whole product: a TOML file plus environment overrides.

The file is ``hotline.toml`` in the project's folder (or ``--config`` / ``$HOTLINE_CONFIG``);
any value can be overridden by ``HOTLINE_<SECTION>__<KEY>``, e.g. ``HOTLINE_SWITCH__SIP_PORT=5070``.
Secrets never live here: see :mod:`cc_core.secrets`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from cc_core.errors import SettingsError

ENV_PREFIX = "HOTLINE_"
DEFAULT_FILE = "hotline.toml"


def _no_duplicates(label: str, keys: list[str]) -> None:
    seen = {k for k in keys if keys.count(k) > 1}
    if seen:
        raise ValueError(f"duplicate {label}: {', '.join(sorted(seen))}")


# Characters no value written into the switch's config may hold (issue 11 item 2): a line break
# (or any control character) starts a new line, even a new [section], of pjsip.conf; ';' starts a
# comment, '[' ']' a section, '"' ends a quoted caller-ID name, '\\' escapes.
SWITCH_TEXT_FORBIDDEN = frozenset(';[]"\\')
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def switch_text(value: str, zh: str, en: str) -> str:
    """``value`` if it may be written into the switch's config as text; ValueError naming the
    field (``zh``, then ``en`` in parentheses).

    Refused: control characters (Unicode categories Cc, Cf, Zl, Zp: CR, LF, NUL, NEL, U+2028 …)
    and any of ``; [ ] " \\``. Chinese and other letters, digits, spaces and punctuation pass.
    """
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") or char in SWITCH_TEXT_FORBIDDEN:
            raise ValueError(
                f'{zh}不能含控制字符或 ; [ ] " \\ 中的字符 ({en} may not hold control characters or any of '
                f'; [ ] " \\, found {char!r})'
            )
    return value


def ip_networks(value: list[str], what: str = "") -> list[str]:
    """``value`` if every item is an IP address or network (``what``, when given, starts the error)."""
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            prefix = f"{what}: " if what else ""
            raise ValueError(f"{prefix}{item!r} is not an IP address or network") from exc
    return value


def host_name(value: str, what: str) -> str:
    """``value`` if it is an IP address or a DNS host name (it is written into the switch's config)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise ValueError(f"{what} 须为 IP 地址或主机名 ({what} must be an IP address or a host name, got {value!r})")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SwitchSettings(_Model):
    """Where the switch lives and which ports it uses (docs/ports.md)."""

    root: Path = Path("var/switch/root")
    instance: str = Field(default="cc", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    sip_bind: str = "0.0.0.0"
    sip_port: int = Field(default=5060, ge=1, le=65535)
    rtp_start: int = Field(default=10000, ge=1024, le=65535)
    rtp_end: int = Field(default=14999, ge=1024, le=65535)
    ami_port: int = Field(default=5038, ge=1, le=65535)
    http_port: int = Field(default=8088, ge=1, le=65535)
    start_timeout: float = Field(default=30.0, gt=0)

    @field_validator("sip_bind")
    @classmethod
    def _sip_bind_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError(f"sip_bind 须为 IP 地址 (sip_bind must be an IP address, got {value!r})") from exc
        return value

    @model_validator(mode="after")
    def _rtp_range(self) -> SwitchSettings:
        if self.rtp_end <= self.rtp_start:
            raise ValueError("rtp_end must be greater than rtp_start")
        return self


class ControllerSettings(_Model):
    """The Python side: FastAGI and the web health page (both loopback by default)."""

    agi_host: str = "127.0.0.1"
    agi_port: int = Field(default=4573, ge=1, le=65535)
    # The agents' PCs reach the web pages here: set web_host to the server's LAN address (or
    # 0.0.0.0). Behind an HTTPS reverse proxy set web_secure_cookie, so the session cookie is
    # only ever sent over HTTPS.
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    web_secure_cookie: bool = False
    # How long one AGI command may take before the session is dropped (slow or stuck switch).
    agi_command_timeout: float = Field(default=60.0, gt=0)
    # The switch-side watchdog (P1): seconds the controller has to start a call's IVR, and the
    # slack it grants itself beyond each step's own length; past it the dialplan's safety net
    # takes the caller. Keep it short: a stuck controller costs the caller this much silence.
    agi_watchdog: float = Field(default=15.0, ge=2, le=300)
    ami_backoff_initial: float = Field(default=0.5, gt=0)
    ami_backoff_max: float = Field(default=10.0, gt=0)
    ami_ping_interval: float = Field(default=5.0, gt=0)
    # The control endpoint ('hotline agent …', token-protected) and the full health report
    # ('hotline status'): always on 127.0.0.1, never on web_host (issue 11 item 8).
    control_port: int = Field(default=8082, ge=1, le=65535)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client for the
    # login limit and the audit log; empty: the header is ignored (anyone can write it).
    trusted_proxies: list[str] = Field(default_factory=list)
    # Logins (issue 11 items 1 and 8): per client address at most login_max_failures failed
    # attempts per login_window seconds; per user name, after login_backoff_after failures in a
    # row, 1, 2, 4 … s between attempts (at most login_backoff_max), no lock-out; at most
    # login_concurrency logins checked at once, their password hashes on login_threads threads
    # of their own (argon2: 64 MiB each).
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_window: float = Field(default=300.0, gt=0, le=86400)
    login_backoff_after: int = Field(default=3, ge=1, le=100)
    login_backoff_max: float = Field(default=30.0, ge=1, le=3600)
    login_concurrency: int = Field(default=4, ge=1, le=64)
    login_threads: int = Field(default=1, ge=1, le=8)
    # Live-update WebSockets (/api/ws) one login session may hold open at once.
    live_sockets_per_session: int = Field(default=5, ge=1, le=100)

    @field_validator("agi_host")
    @classmethod
    def _agi_host_name(cls, value: str) -> str:
        return host_name(value, "agi_host")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        return ip_networks(value, "trusted_proxies")

    @model_validator(mode="after")
    def _distinct_ports(self) -> ControllerSettings:
        if self.control_port in (self.web_port, self.agi_port):
            raise ValueError("control_port must differ from web_port and agi_port")
        return self


class DatabaseSettings(_Model):
    """SQLite file by default; PostgreSQL in production (``postgresql+psycopg://…``)."""

    url: str = "sqlite:///var/hotline.db"


class QueueSettings(_Model):
    """A queue of the controller's router (T4, T9); see cc_core/acd/model.py:QueueConfig."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")
    title: str = ""
    strategy: Literal["longest_idle", "least_occupied", "round_robin", "skills"] = "longest_idle"
    ring_timeout: int = Field(default=20, ge=5, le=120)
    # Wrap-up (话后处理) after each call, seconds; the agent gets no contact meanwhile (T4).
    wrapup: int = Field(default=30, ge=0, le=600)
    max_missed_before_pause: int = Field(default=2, ge=1, le=10)
    # How long a caller may wait before being offered voicemail or a callback.
    max_wait: int = Field(default=600, ge=30, le=3600)
    returning_window_hours: float = Field(default=168, ge=0, le=24 * 90)
    returning_wait: int = Field(default=30, ge=0, le=300)
    requested_wait: int = Field(default=60, ge=0, le=600)
    # Position and expected wait are announced this often to waiting callers (seconds).
    announce_every: int = Field(default=60, ge=15, le=600)
    # Caller tags (from a VIP list, the elderly…) and the priority each adds.
    priority_tags: dict[str, int] = Field(default_factory=lambda: {"vip": 10, "elderly": 5})


DEFAULT_QUEUES = [
    QueueSettings(name="general", title="综合咨询"),
    QueueSettings(name="complaints", title="投诉建议", strategy="skills"),
]


class AgentSettings(_Model):
    """An agent: SIP identity (the password is generated into the secrets file), skills, queues."""

    id: str = Field(pattern=r"^[0-9]{3,6}$")
    name: str = Field(min_length=1, max_length=64)
    # Skill → level 1 (basics) to 5 (expert), e.g. {consult = 3, complaint = 5}.
    skills: dict[str, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)
    team: str = ""
    tags: list[str] = Field(default_factory=list)
    # The queues the agent serves; empty means all of them.
    queues: list[str] = Field(default_factory=list)
    # Chats (WeChat, later) the agent can hold beside a call; their load counts for the
    # least_occupied strategy. 0: phone only.
    chat_capacity: int = Field(default=0, ge=0, le=10)

    @field_validator("name")
    @classmethod
    def _name_for_the_switch(cls, value: str) -> str:
        # The name is the agent's SIP caller-ID name in pjsip.conf (issue 11 item 2).
        return switch_text(value, "坐席姓名", "an agent's name")


class TrunkSettings(_Model):
    """A carrier trunk: calls from these addresses are treated as inbound citizens' calls."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")
    match: list[str] = Field(min_length=1)
    host: str | None = None
    port: int = Field(default=5060, ge=1, le=65535)

    @field_validator("match")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return ip_networks(value)

    @field_validator("host")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        # Written into pjsip.conf as the trunk's contact (issue 11 item 2).
        return None if value is None else host_name(value, "host")


class NumberSettings(_Model):
    """A dialed number (DID) the hotline answers, and the IVR flow it starts."""

    number: str = Field(pattern=r"^[0-9]{3,20}$")
    name: str = ""
    flow: str = "main"


class PromptSettings(_Model):
    """The switch's own prompts (Chinese, rendered by offline TTS); the IVR's are in the flows."""

    # Played by the dialplan's safety net when the controller cannot take the call.
    fallback: str = "系统繁忙，正在为您转接人工服务，请稍候。"
    # Played every queue_wait_every seconds to callers waiting in a queue (with music between).
    queue_wait: str = "您的来电正在排队，坐席人员将尽快为您服务，请耐心等候。"
    queue_wait_every: int = Field(default=30, ge=10, le=600)
    tts_voice: str = "cmn-latn-pinyin"


class IvrSettings(_Model):
    """Where the admins' flows live and how the controller serves them (T6)."""

    flows_dir: Path = Path("ivr_flows")
    default_flow: str = Field(default="main", pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    # Seconds between checks of the flows folder for changes (0 = reload only on command).
    watch_interval: float = Field(default=2.0, ge=0)
    # The queue a caller is handed to when a flow cannot go on (step limit, missing flow).
    fallback_queue: str = "general"
    # The demo self-service API (pension / contribution status) on loopback; 0 = off.
    demo_api_port: int = Field(default=8090, ge=0, le=65535)
    # The hosts IVR http nodes may call (issue 11 item 8): "host" (any port) or "host:port".
    # Plain http:// only to loopback; any other host needs https://. The default is the demo
    # API above: change it with demo_api_port. See cc_core/http_policy.py.
    http_allow: list[str] = Field(default_factory=lambda: ["127.0.0.1:8090"])

    @field_validator("http_allow")
    @classmethod
    def _http_hosts(cls, value: list[str]) -> list[str]:
        from cc_core.http_policy import parse_allowed

        for entry in value:
            parse_allowed(entry)  # ValueError names the entry
        return value


class LogSettings(_Model):
    level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    format: str = Field(default="json", pattern=r"^(json|text)$")


class AcdSettings(_Model):
    """The controller's ACD beyond single queues: callbacks (T10)."""

    # Callbacks are placed when an agent is free and nobody waits; a failed attempt is retried
    # this much later, up to callback_attempts times per number and day.
    callback_attempts: int = Field(default=3, ge=1, le=10)
    callback_retry: int = Field(default=600, ge=1, le=86400)
    # A citizen who just hung up often calls again at once: wait this long before calling back.
    callback_delay: int = Field(default=120, ge=0, le=86400)
    # The queue whose settings (ring time, wrap-up) callbacks use.
    callback_queue: str = "general"


class ArchiveSettings(_Model):
    """The recording archive (T5; decision 0010): where archived audio lives, its backup, format, retention."""

    # Archived recordings, as recordings_store/<YYYY>/<MM>/<DD>/<leg uniqueid>.opus (Beijing days).
    store_dir: Path = Path("recordings_store")
    # A second folder, on another disk or mount, that gets a verified copy of every archived
    # file. Never created by us: a missing folder (an unmounted disk) stops the backup loudly.
    backup_dir: Path | None = None
    # Opus bitrate in kbit/s. 16 keeps 8 kHz call audio clear in about 7 MB per hour of audio.
    bitrate_kbps: int = Field(default=16, ge=6, le=64)
    # Archived recordings are kept this many days after their day, then purged unless under a
    # legal hold. 1825 days = 5 years (decision 0010 says why).
    retention_days: int = Field(default=1825, ge=30, le=36500)
    # A Beijing day is sealed in a manifest once it is over and all its recordings are archived,
    # or this many hours after it ended at the latest (late ones then go into an addendum).
    seal_grace_hours: int = Field(default=48, ge=0, le=24 * 31)
    # For the controller's scheduler: archive finished recordings every archive_every seconds;
    # verify and purge once a day at daily_at (Beijing time, HH:MM).
    archive_every: int = Field(default=300, ge=30, le=86400)
    daily_at: str = Field(default="03:30", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

    @model_validator(mode="after")
    def _backup_elsewhere(self) -> ArchiveSettings:
        if self.backup_dir is not None and self.backup_dir == self.store_dir:
            raise ValueError("backup_dir must be another folder than store_dir")
        return self


class Settings(_Model):
    """The whole configuration. Paths are resolved against ``home``."""

    home: Path
    state_dir: Path = Path("var")
    # The hotline's time zone (an IANA name): its calendar days for reports, callbacks' daily
    # limits, the archive's folders, the scheduler's daily jobs, the CLI's times, and the default
    # zone of a business calendar file (issue 12 item 6; cc_core/calendars/days.py).
    timezone: str = "Asia/Shanghai"
    switch: SwitchSettings = SwitchSettings()
    controller: ControllerSettings = ControllerSettings()
    database: DatabaseSettings = DatabaseSettings()
    prompts: PromptSettings = PromptSettings()
    ivr: IvrSettings = IvrSettings()
    log: LogSettings = LogSettings()
    queues: list[QueueSettings] = DEFAULT_QUEUES
    agents: list[AgentSettings] = []
    trunks: list[TrunkSettings] = [TrunkSettings(name="carrier", match=["127.0.0.1"])]
    numbers: list[NumberSettings] = [NumberSettings(number="12333", name="社保服务热线")]
    # Callers' tags by phone number (a VIP list, registered elderly callers…): the queues'
    # priority_tags lift these callers in line (T9). E.g. [caller_tags] elderly = ["13800138000"].
    caller_tags: dict[str, list[Annotated[str, Field(pattern=r"^[0-9+]{3,20}$")]]] = {}
    acd: AcdSettings = AcdSettings()
    archive: ArchiveSettings = ArchiveSettings()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        # Checked here, not in cc_core.calendars (settings is neutral: the switch imports it).
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"未知时区 {value!r} (unknown time zone {value!r}; give an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The ``timezone`` setting as a zone."""
        return ZoneInfo(self.timezone)

    # Field validators (not one model validator) so that an error names its key: agents, numbers.
    @field_validator("queues")
    @classmethod
    def _unique_queues(cls, value: list[QueueSettings]) -> list[QueueSettings]:
        _no_duplicates("queue name", [q.name for q in value])
        return value

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, value: list[AgentSettings], info: ValidationInfo) -> list[AgentSettings]:
        _no_duplicates("agent id", [a.id for a in value])
        known = {q.name for q in info.data.get("queues") or []}
        for agent in value:
            unknown = sorted(set(agent.queues) - known)
            if unknown:
                raise ValueError(
                    f"agent {agent.id} serves unknown queue(s) {', '.join(unknown)}; add them to [[queues]]"
                )
        return value

    @field_validator("trunks")
    @classmethod
    def _unique_trunks(cls, value: list[TrunkSettings]) -> list[TrunkSettings]:
        _no_duplicates("trunk name", [t.name for t in value])
        return value

    @field_validator("numbers")
    @classmethod
    def _unique_numbers(cls, value: list[NumberSettings], info: ValidationInfo) -> list[NumberSettings]:
        _no_duplicates("number", [n.number for n in value])
        agents: list[AgentSettings] = info.data.get("agents") or []
        clash = {a.id for a in agents} & {n.number for n in value}
        if clash:
            raise ValueError(f"a hotline number equals an agent id in agents: {', '.join(sorted(clash))}")
        return value

    def path(self, value: Path) -> Path:
        """Resolve a settings path against the home folder."""
        return value if value.is_absolute() else self.home / value

    @property
    def state_path(self) -> Path:
        return self.path(self.state_dir)

    @property
    def flows_path(self) -> Path:
        return self.path(self.ivr.flows_dir)

    @property
    def switch_root(self) -> Path:
        return self.path(self.switch.root)

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute against home."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str(self.home / url[len(prefix) :])
        return url


def _set_path(tree: dict[str, Any], keys: list[str], value: str) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise SettingsError(f"environment override {'.'.join(keys)} conflicts with a value in the file")
        node = child
    node[keys[-1]] = value


def _env_overrides(env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """``HOTLINE_<SECTION>__<KEY>`` variables by key path. Other ``HOTLINE_*`` names (the
    installer's ``HOTLINE_DEBIAN_MIRROR``, the tests' ``HOTLINE_SKIP_POSTGRES``) are not ours."""
    out: dict[tuple[str, ...], str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ("HOTLINE_CONFIG", "HOTLINE_HOME"):
            continue
        keys = tuple(k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k)
        if keys and keys[0] in Settings.model_fields and keys[0] != "home":
            out[keys] = value
    return out


def _override_tree(overrides: Mapping[tuple[str, ...], str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for keys, value in overrides.items():
        _set_path(tree, list(keys), value)
    return tree


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _format_validation(error: ValidationError, source: str, overrides: Mapping[tuple[str, ...], str]) -> str:
    first = error.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    where = ".".join(loc) or "(top level)"
    for keys in overrides:
        if loc and (loc[: len(keys)] == keys or keys[: len(loc)] == loc):
            source = f"environment variable {ENV_PREFIX}{'__'.join(keys).upper()} (over {source})"
            break
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return _one_line(f"bad settings in {source}: {where}: {first['msg']}{more}")


def settings_path(path: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The settings file used: ``path``, else ``$HOTLINE_CONFIG``, else ``./hotline.toml`` if
    there is one (None: defaults only)."""
    env = os.environ if env is None else env
    if path is None and env.get("HOTLINE_CONFIG"):
        path = Path(env["HOTLINE_CONFIG"])
    if path is None and Path(DEFAULT_FILE).is_file():
        path = Path(DEFAULT_FILE)
    return path


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings file (if any) and apply ``HOTLINE_*`` overrides.

    Raises :class:`SettingsError` with one line naming the file, key and problem.
    """
    env = os.environ if env is None else env
    path = settings_path(path, env)
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"settings file {path} not found; create it or drop --config") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(_one_line(f"settings file {path} is not valid TOML: {exc}")) from exc
        except OSError as exc:  # a folder, no permission: still one line, not a traceback
            raise SettingsError(f"settings file {path} cannot be read: {exc.strerror or exc}") from exc
    file_home = data.get("home")
    if file_home is not None and not isinstance(file_home, str):
        raise SettingsError(f"bad settings in {source}: home: must be a folder path (a string)")
    if env.get("HOTLINE_HOME"):
        home = Path(env["HOTLINE_HOME"]).resolve()
    elif path is not None:
        # A relative home in the file is relative to the file, not to wherever the command runs.
        home = (path.resolve().parent / (file_home or ".")).resolve()
    else:
        home = Path.cwd().resolve()
    overrides = _env_overrides(env)
    data = _merge(data, _override_tree(overrides))
    data["home"] = home
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_format_validation(exc, source, overrides)) from exc
