"""Render the switch configuration from templates and the settings (one source of truth).

Templates use ``{{ name }}`` placeholders (Asterisk's own ``${…}`` stays untouched). A file
whose name has two dots (``pjsip.agent.conf``) is a partial: it is rendered once per agent or
trunk and spliced into its parent, never copied on its own. A placeholder without a value is
an error, so a typo in a template fails loudly at render time, not at call time.

Every value is checked before it is put in (issue 11 item 2): a plain value with a control
character (CR, LF, NUL, any C0/C1 character or DEL) is refused, because a line break in a value
starts a new line of the config file, and a new line can open a new section (a SIP endpoint
nobody meant, an open trunk). Multi-line text is only accepted as a :class:`Block`, which this
module builds itself out of checked values (rendered partials, generated ``exten =>`` lines). The
settings model refuses such characters first, with the field's name; this check is the net under
it, so a future setting that reaches a template cannot bring the hole back.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
import wave
from collections.abc import Mapping
from pathlib import Path

from cc_core.errors import SwitchError
from cc_core.secrets import Secrets
from cc_core.settings import Settings
from cc_core.speech import render_text
from cc_core.switch.ami import WANTED_EVENTS
from cc_core.switch.instance import Instance

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "switch_config"
INSTANCE_DIRS = ("etc", "lib", "spool", "log", "run", "cache", "sounds", "moh", "spool/monitor")


# C0 controls, DEL and C1 controls: none may reach a config file inside a value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Block(str):
    """Multi-line config text built here from values that were each checked (a rendered partial,
    generated lines): the only kind of value :func:`render` lets carry line breaks."""


def check_value(key: str, value: object, source: str = "template") -> str:
    """``value`` as text for placeholder ``key``; :class:`SwitchError` if it holds a control
    character (a line break would let the value add lines, even sections, to the file)."""
    text = str(value)
    if isinstance(value, Block):
        return text
    bad = _CONTROL.search(text)
    if bad is not None:
        raise SwitchError(
            f"{source}: the value for {{{{ {key} }}}} holds a control character "
            f"({bad.group()!r} at {bad.start()}); refused so that it cannot add lines to the switch's config"
        )
    return text


def lines(key: str, template: str, items: list[object]) -> Block:
    """One line per item (``template`` with ``{0}`` for the item, ``str.format`` style), each item
    checked first."""
    return Block("\n".join(template.format(check_value(key, item)) for item in items))


def render(text: str, values: Mapping[str, object], source: str = "template") -> str:
    """Replace every ``{{ name }}``; a name with no value, or a value with a control character
    (unless it is a :class:`Block`), raises :class:`SwitchError`."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise SwitchError(f"{source}: no value for {{{{ {key} }}}}")
        return check_value(key, values[key], source)

    return _PLACEHOLDER.sub(one, text)


def is_partial(path: Path) -> bool:
    return path.name.count(".") > 1


# The rendered config holds the AMI secret, the ARI password and every agent's SIP password:
# only the switch (root, in its chroot) and the controller (root) may read it (issue 11 item 5).
ETC_MODE = 0o700
FILE_MODE = 0o600


def write_if_changed(path: Path, text: str, mode: int = FILE_MODE) -> bool:
    """Write ``text`` atomically with ``mode`` (0600: the files hold secrets); return whether the
    file changed (for reload decisions). An unchanged file still gets ``mode``, so a file an older
    version wrote with the umask's 0644 is closed on the next render."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        os.chmod(path, mode)
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # Created with the mode (never readable by others, not even for an instant), then fchmod'ed:
    # the umask can only take bits away from os.open's mode, fchmod sets exactly these.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), mode)
        out.write(text)
    os.replace(tmp, path)
    return True


def render_tree(template_dirs: Path | list[Path], instance: Instance, values: Mapping[str, object]) -> list[Path]:
    """Render every non-partial template into the instance's etc folder.

    With several folders, a file in a later folder replaces the file of the same name in an
    earlier one (the test harness's simulated carrier reuses the product's common files).
    """
    dirs = [template_dirs] if isinstance(template_dirs, Path) else template_dirs
    templates: dict[str, Path] = {}
    for folder in dirs:
        for template in sorted(folder.glob("*.conf")):
            if not is_partial(template):
                templates[template.name] = template
    for sub in INSTANCE_DIRS:
        (instance.host_dir / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(instance.etc, ETC_MODE)
    for other in instance.etc.iterdir():  # files put there by hand (manager_local.conf) too
        if other.is_file() and not other.is_symlink() and other.stat().st_mode & 0o077:
            os.chmod(other, FILE_MODE)
    changed: list[Path] = []
    for name, template in sorted(templates.items()):
        text = render(template.read_text(encoding="utf-8"), values, str(template))
        target = instance.etc / name
        if write_if_changed(target, text):
            changed.append(target)
    return changed


def base_values(instance: Instance) -> dict[str, object]:
    """Values every instance's templates may use."""
    return {
        "inst": str(instance.inside),
        "name": instance.name,
        "moddir": str(instance.module_dir_inside()),
    }


def ami_event_filter() -> str:
    """The controller's AMI user's event filter (manager.conf ``eventfilter``): the events the
    controller translates, Shutdown, and OriginateResponse (a callback's Originate waits for it).

    The switch applies it before formatting an event, so VarSet, Newexten, AGIExec and RTCP
    traffic is never sent. It lives in manager.conf because the ``Filter`` action needs the
    ``system`` write class, which would also allow ``Originate Application=System``.
    """
    names = sorted(WANTED_EVENTS | {"OriginateResponse"})
    return f"^Event: ({'|'.join(names)})[[:space:]]"


def _partial(template_dir: Path, name: str, values: Mapping[str, object]) -> Block:
    path = template_dir / name
    return Block(render(path.read_text(encoding="utf-8"), values, str(path)))


def hotline_values(settings: Settings, secrets: Secrets, instance: Instance) -> dict[str, object]:
    """Everything the contact center's templates need, from settings and secrets."""
    tdir = TEMPLATE_DIR
    trunks = []
    for trunk in settings.trunks:
        aor = Block("")
        aor_line = ""
        if trunk.host:
            name = check_value("trunk", trunk.name)
            aor_line = f"aors = {name}"
            host = check_value("trunk_host", trunk.host)
            aor = Block(f"\n[{name}]\ntype = aor\ncontact = sip:{host}:{trunk.port}\n")
        trunks.append(
            _partial(
                tdir,
                "pjsip.trunk.conf",
                {
                    "trunk": trunk.name,
                    "trunk_matches": lines("trunk_matches", "match = {}", list(trunk.match)),
                    "trunk_aor_line": aor_line,
                    "trunk_aor": aor,
                },
            )
        )
    agents = [
        _partial(
            tdir,
            "pjsip.agent.conf",
            {
                "agent": a.id,
                # The settings refuse quotes, brackets, ';' and control characters in a name
                # (issue 11 item 2); a quote would end the caller-ID name early.
                "agent_name": a.name,
                "agent_password": secrets.agent_password(a.id),
            },
        )
        for a in settings.agents
    ]
    numbers: list[object] = [n.number for n in settings.numbers]
    agent_ids: list[object] = [a.id for a in settings.agents]
    number_routes = lines("number_routes", "exten => {},1,Goto(hotline,${{EXTEN}},1)", numbers)
    trunk_number_routes = lines(
        "trunk_number_routes",
        "exten => {0},1,Set(CALLERID(num)=${{FILTER(0-9+,${{CALLERID(num)}})}})\n"
        " same => n,Set(CALLERID(rdnis)=${{FILTER(0-9+,${{CALLERID(rdnis)}})}})\n"
        " same => n,Goto(hotline,${{EXTEN}},1)",
        numbers,
    )
    agent_routes = lines("agent_routes", "exten => {0},1,Dial(PJSIP/{0},30)", agent_ids)
    members = lines("fallback_members", "member => PJSIP/{}", agent_ids)
    sw, ctl = settings.switch, settings.controller
    return {
        **base_values(instance),
        "ami_port": sw.ami_port,
        "http_port": sw.http_port,
        "sip_bind": sw.sip_bind,
        "sip_port": sw.sip_port,
        "rtp_start": sw.rtp_start,
        "rtp_end": sw.rtp_end,
        "ami_user": secrets.ami_user,
        "ami_secret": secrets.ami_secret,
        "ami_eventfilter": ami_event_filter(),
        "ari_user": secrets.ari_user,
        "ari_password": secrets.ari_password,
        "agi_host": ctl.agi_host,
        "agi_port": ctl.agi_port,
        "agi_first_deadline": max(1, round(ctl.agi_watchdog)),
        "trunks": Block("\n".join(trunks)),
        "agents": Block("\n".join(agents)),
        "number_routes": number_routes,
        "trunk_number_routes": trunk_number_routes,
        "agent_routes": agent_routes,
        "fallback_members": members,
        "outbound_trunk": next((t.name for t in settings.trunks if t.host), ""),
        "queue_wait_every": settings.prompts.queue_wait_every,
    }


PROMPTS = ("fallback", "queue_wait")


def render_prompts(settings: Settings, instance: Instance) -> None:
    """Render the built-in Chinese prompts (cached) into the instance's sounds folder."""
    cache = settings.state_path / "prompts"
    instance.sounds.mkdir(parents=True, exist_ok=True)
    for name in PROMPTS:
        text = getattr(settings.prompts, name)
        source = render_text(text, settings.prompts.tts_voice, cache)
        target = instance.sounds / f"{name}.wav"
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)


# A calm arpeggio (C major, A minor, F major, G major), each note with a soft attack and decay.
_HOLD_NOTES = (262, 330, 392, 330, 220, 262, 330, 262, 175, 220, 262, 220, 196, 247, 294, 247)


def hold_music(path: Path, seconds_per_note: float = 0.6, rate: int = 8000) -> None:
    """Write the queue's hold music (a WAV Asterisk plays as is) if it is not there yet.

    Debian's Asterisk ships no music-on-hold files, and a caller who hears silence thinks the line
    is dead and hangs up; the center can put its own files in the instance's ``moh`` folder.
    """
    if path.exists():
        return
    frames = bytearray()
    per_note = int(seconds_per_note * rate)
    for freq in _HOLD_NOTES * 2:
        for n in range(per_note):
            envelope = min(1.0, n / 400) * (1 - n / per_note) ** 1.5
            value = (
                0.25
                * envelope
                * (math.sin(2 * math.pi * freq * n / rate) + 0.3 * math.sin(4 * math.pi * freq * n / rate))
            )
            frames += struct.pack("<h", int(value * 32767))
    tmp = path.with_name(path.name + ".tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    os.replace(tmp, path)


def render_hotline(settings: Settings, secrets: Secrets) -> tuple[Instance, list[Path]]:
    """Render the contact center's instance: config files and prompts."""
    instance = Instance(settings.switch_root, settings.switch.instance)
    if not instance.is_installed():
        raise SwitchError(
            f"the switch is not installed in {instance.root}; run scripts/setup.sh (or scripts/install_switch.sh)"
        )
    changed = render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    render_prompts(settings, instance)
    hold_music(instance.host_dir / "moh" / "hold.wav")
    return instance, changed
