"""Render the switch configuration from templates and the settings (one source of truth).

Templates use ``{{ name }}`` placeholders (Asterisk's own ``${…}`` stays untouched). A file
whose name has two dots (``pjsip.agent.conf``) is a partial: it is rendered once per agent or
trunk and spliced into its parent, never copied on its own. A placeholder without a value is
an error, so a typo in a template fails loudly at render time, not at call time.
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
from cc_core.ivr.prompts import render_text
from cc_core.secrets import Secrets
from cc_core.settings import Settings
from cc_core.switch.instance import Instance

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "switch_config"
INSTANCE_DIRS = ("etc", "lib", "spool", "log", "run", "cache", "sounds", "moh", "spool/monitor")


def render(text: str, values: Mapping[str, object], source: str = "template") -> str:
    """Replace every ``{{ name }}``; a name with no value raises :class:`SwitchError`."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise SwitchError(f"{source}: no value for {{{{ {key} }}}}")
        return str(values[key])

    return _PLACEHOLDER.sub(one, text)


def is_partial(path: Path) -> bool:
    return path.name.count(".") > 1


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically; return whether the file changed (for reload decisions)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
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


def _partial(template_dir: Path, name: str, values: Mapping[str, object]) -> str:
    path = template_dir / name
    return render(path.read_text(encoding="utf-8"), values, str(path))


def hotline_values(settings: Settings, secrets: Secrets, instance: Instance) -> dict[str, object]:
    """Everything the contact center's templates need, from settings and secrets."""
    tdir = TEMPLATE_DIR
    trunks = []
    for trunk in settings.trunks:
        aor = ""
        aor_line = ""
        if trunk.host:
            aor_line = f"aors = {trunk.name}"
            aor = f"\n[{trunk.name}]\ntype = aor\ncontact = sip:{trunk.host}:{trunk.port}\n"
        trunks.append(
            _partial(
                tdir,
                "pjsip.trunk.conf",
                {
                    "trunk": trunk.name,
                    "trunk_matches": "\n".join(f"match = {m}" for m in trunk.match),
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
                # A double quote would end the caller-ID name early.
                "agent_name": a.name.replace('"', "'"),
                "agent_password": secrets.agent_password(a.id),
            },
        )
        for a in settings.agents
    ]
    number_routes = "\n".join(f"exten => {n.number},1,Goto(hotline,${{EXTEN}},1)" for n in settings.numbers)
    agent_routes = "\n".join(f"exten => {a.id},1,Dial(PJSIP/{a.id},30)" for a in settings.agents)
    members = "\n".join(f"member => PJSIP/{a.id}" for a in settings.agents)
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
        "ari_user": secrets.ari_user,
        "ari_password": secrets.ari_password,
        "agi_host": ctl.agi_host,
        "agi_port": ctl.agi_port,
        "agi_first_deadline": max(1, round(ctl.agi_watchdog)),
        "trunks": "\n".join(trunks),
        "agents": "\n".join(agents),
        "number_routes": number_routes,
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
