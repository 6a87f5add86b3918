"""Rendering the switch configuration: placeholders, and the real templates into a fake chroot.

No Asterisk and no TTS: the chroot is a folder with an empty ``usr/sbin/asterisk`` and a module
folder, and only :func:`render_tree` runs (``render_hotline`` would also render prompts).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cc_core.errors import SwitchError
from cc_core.secrets import Secrets, load_or_create
from cc_core.settings import Settings, load_settings
from cc_core.switch.ami import WANTED_EVENTS
from cc_core.switch.config import (
    TEMPLATE_DIR,
    Block,
    ami_event_filter,
    hotline_values,
    is_partial,
    render,
    render_tree,
    write_if_changed,
)
from cc_core.switch.instance import Instance

MODULES = "usr/lib/x86_64-linux-gnu/asterisk/modules"
DEFAULT_PASSWORDS = {"", "amp111", "admin", "password", "secret", "changeme", "1234", "hotline"}

SETTINGS = """
[switch]
root = "root"
instance = "cc"
sip_port = 5062
ami_port = 5039
http_port = 8089

[controller]
agi_port = 4575

[[numbers]]
number = "12333"
name = "社保服务热线"

[[trunks]]
name = "carrier"
match = ["127.0.0.1", "10.20.0.0/16"]
host = "127.0.0.1"
port = 5070

[[agents]]
id = "1001"
name = "张三"

[[agents]]
id = "1002"
name = "张丽"

[[agents]]
id = "1003"
name = "王五"
"""


# ---- render() ----------------------------------------------------------------------------


def test_render_replaces_placeholders_with_or_without_spaces() -> None:
    text = "port = {{ ami_port }}\nbind = {{sip_bind}}:{{  sip_port  }}\n"
    assert render(text, {"ami_port": 5038, "sip_bind": "0.0.0.0", "sip_port": 5060}) == (
        "port = 5038\nbind = 0.0.0.0:5060\n"
    )


def test_render_leaves_asterisk_variables_alone() -> None:
    text = "exten => _X.,1,NoOp(${EXTEN} ${CALLERID(num)} $[${X} + 1] {{ n }})"
    assert render(text, {"n": 1}) == "exten => _X.,1,NoOp(${EXTEN} ${CALLERID(num)} $[${X} + 1] 1)"


def test_render_a_missing_value_names_the_key_and_the_source() -> None:
    with pytest.raises(SwitchError) as caught:
        render("secret = {{ ami_secret }}\nport = {{ ami_prot }}\n", {"ami_secret": "s"}, "manager.conf")
    assert str(caught.value) == "manager.conf: no value for {{ ami_prot }}"


def test_render_inserts_values_literally_in_one_pass() -> None:
    values = {"a": "{{ b }}", "b": "never used", "c": r"\1 \g<0> $1"}
    assert render("{{ a }} {{ c }}", values) == r"{{ b }} \1 \g<0> $1"


def test_partials_are_files_with_two_dots() -> None:
    assert is_partial(Path("pjsip.agent.conf")) and is_partial(Path("pjsip.trunk.conf"))
    assert not is_partial(Path("pjsip.conf"))


def test_write_if_changed(tmp_path: Path) -> None:
    target = tmp_path / "x.conf"
    assert write_if_changed(target, "a = 1\n") is True
    assert write_if_changed(target, "a = 1\n") is False
    assert write_if_changed(target, "a = 2\n") is True
    assert target.read_text(encoding="utf-8") == "a = 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.conf"]


# ---- the real templates ------------------------------------------------------------------


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """An Asterisk .conf file as (section, options) pairs, in order (names may repeat)."""
    out: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if header:
            out.append((header.group(1), {}))
        elif "=" in line and out:
            key, _, value = line.partition("=")
            out[-1][1][key.strip()] = value.lstrip(">").strip()
    return out


def fake_chroot(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "usr" / "sbin" / "asterisk").write_bytes(b"")
    (root / MODULES).mkdir(parents=True)
    return root


@pytest.fixture
def site(tmp_path: Path) -> tuple[Settings, Secrets, Instance]:
    fake_chroot(tmp_path)
    (tmp_path / "hotline.toml").write_text(SETTINGS, encoding="utf-8")
    settings = load_settings(tmp_path / "hotline.toml", env={})
    secrets = load_or_create(settings)
    instance = Instance(settings.switch_root, settings.switch.instance)
    assert instance.is_installed()
    return settings, secrets, instance


def rendered(instance: Instance, name: str) -> str:
    return (instance.etc / name).read_text(encoding="utf-8")


def test_render_tree_writes_every_template_but_the_partials(site: tuple[Settings, Secrets, Instance]) -> None:
    settings, secrets, instance = site
    changed = render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    templates = {p.name for p in TEMPLATE_DIR.glob("*.conf") if not is_partial(p)}
    assert {p.name for p in changed} == templates
    assert {p.name for p in instance.etc.iterdir()} == templates
    assert {"asterisk.conf", "manager.conf", "http.conf", "pjsip.conf", "extensions.conf"} <= templates
    for sub in ("lib", "spool", "log", "run", "cache", "sounds", "spool/monitor"):
        assert (instance.host_dir / sub).is_dir()
    assert instance.host_dir == settings.switch_root / "srv" / "hotline" / "cc"


def test_no_placeholder_is_left_anywhere(site: tuple[Settings, Secrets, Instance]) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    for path in instance.etc.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "{{" not in text and "}}" not in text, path.name


def test_manager_and_http_listen_on_loopback_with_the_generated_secret(
    site: tuple[Settings, Secrets, Instance],
) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    manager = dict(sections(rendered(instance, "manager.conf")))
    assert manager["general"]["bindaddr"] == "127.0.0.1"
    assert manager["general"]["port"] == "5039"
    user = manager[secrets.ami_user]
    assert user["secret"] == secrets.ami_secret
    assert user["secret"].lower() not in DEFAULT_PASSWORDS and len(user["secret"]) >= 32
    http = dict(sections(rendered(instance, "http.conf")))
    assert http["general"]["bindaddr"] == "127.0.0.1"
    assert http["general"]["bindport"] == "8089"
    ari = dict(sections(rendered(instance, "ari.conf")))
    assert ari[secrets.ari_user]["password"] == secrets.ari_password != secrets.ami_secret


def test_each_agent_has_its_own_password(site: tuple[Settings, Secrets, Instance]) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    pjsip = sections(rendered(instance, "pjsip.conf"))
    auths = {opts["username"]: opts["password"] for _name, opts in pjsip if opts.get("type") == "auth"}
    assert auths == {a: secrets.agent_password(a) for a in ("1001", "1002", "1003")}
    assert len(set(auths.values())) == 3
    assert not set(auths.values()) & (DEFAULT_PASSWORDS | {secrets.ami_secret, secrets.ari_password})
    endpoints = {name: opts for name, opts in pjsip if opts.get("type") == "endpoint"}
    assert endpoints["1001"]["callerid"] == '"张三" <1001>'
    assert endpoints["1002"]["callerid"] == '"张丽" <1002>'
    assert endpoints["carrier"]["context"] == "from-trunk"
    identify = next(opts for name, opts in pjsip if opts.get("type") == "identify")
    transport = next(opts for name, opts in pjsip if opts.get("type") == "transport")
    assert transport["bind"] == "0.0.0.0:5062"
    assert identify["endpoint"] == "carrier"
    text = rendered(instance, "pjsip.conf")
    assert "match = 127.0.0.1\nmatch = 10.20.0.0/16" in text
    assert "contact = sip:127.0.0.1:5070" in text


def test_dialplan_routes_numbers_and_keeps_asterisk_variables(site: tuple[Settings, Secrets, Instance]) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    text = rendered(instance, "extensions.conf")
    assert "exten => 12333,1,Goto(hotline,${EXTEN},1)" in text
    assert "${EXTEN}" in text
    assert "agi://127.0.0.1:4575" in text
    assert "/srv/hotline/cc/sounds" in text


def test_the_module_folder_of_the_chroot_is_found(site: tuple[Settings, Secrets, Instance], tmp_path: Path) -> None:
    settings, secrets, instance = site
    assert str(instance.module_dir_inside()) == "/" + MODULES
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    directories = dict(sections(rendered(instance, "asterisk.conf")))["directories"]
    assert directories["astmoddir"] == "/" + MODULES
    assert directories["astetcdir"] == "/srv/hotline/cc/etc"
    bare = Instance(tmp_path / "empty-root", "cc")
    assert str(bare.module_dir_inside()) == "/usr/lib/asterisk/modules"


def test_a_second_render_changes_nothing_and_a_new_port_changes_one_file(
    site: tuple[Settings, Secrets, Instance], tmp_path: Path
) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    times = {p.name: p.stat().st_mtime_ns for p in instance.etc.iterdir()}
    assert render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance)) == []
    assert {p.name: p.stat().st_mtime_ns for p in instance.etc.iterdir()} == times
    moved = load_settings(tmp_path / "hotline.toml", env={"HOTLINE_SWITCH__SIP_PORT": "5064"})
    changed = render_tree(TEMPLATE_DIR, instance, hotline_values(moved, load_or_create(moved), instance))
    assert "pjsip.conf" in {p.name for p in changed}
    assert {p.name for p in changed} == {p.name for p in instance.etc.iterdir() if "5064" in p.read_text()}
    assert "bind = 0.0.0.0:5064" in rendered(instance, "pjsip.conf")


def test_a_template_with_an_unknown_placeholder_fails_loudly(
    site: tuple[Settings, Secrets, Instance], tmp_path: Path
) -> None:
    settings, secrets, instance = site
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "manager.conf").write_text("[general]\nport = {{ ami_prot }}\n", encoding="utf-8")
    with pytest.raises(SwitchError, match=r"manager\.conf: no value for \{\{ ami_prot \}\}"):
        render_tree(templates, instance, hotline_values(settings, secrets, instance))


def test_a_later_template_folder_replaces_a_file_of_the_same_name(
    site: tuple[Settings, Secrets, Instance], tmp_path: Path
) -> None:
    settings, secrets, instance = site
    override = tmp_path / "override"
    override.mkdir()
    (override / "http.conf").write_text("[general]\nenabled = no\n", encoding="utf-8")
    render_tree([TEMPLATE_DIR, override], instance, hotline_values(settings, secrets, instance))
    assert rendered(instance, "http.conf") == "[general]\nenabled = no\n"
    assert "bindaddr = 127.0.0.1" in rendered(instance, "manager.conf")


# ---- issue 11 item 2: nothing a value holds can add lines to the switch's config ---------------

EVIL_NAME = "x\n[evil]\ntype=endpoint"


@pytest.mark.parametrize("value", [EVIL_NAME, "a\rb", "a\x00b", "a\x1bb", "a\x85b", "a\u2028b", "a\x7fb"])
def test_render_refuses_a_value_with_a_control_character(value: str) -> None:
    with pytest.raises(SwitchError) as caught:
        render('callerid = "{{ agent_name }}" <1001>\n', {"agent_name": value}, "pjsip.agent.conf")
    assert str(caught.value).startswith("pjsip.agent.conf: the value for {{ agent_name }} holds a control character")


def test_render_takes_line_breaks_only_in_a_block_it_built() -> None:
    assert render("{{ a }}", {"a": Block("x = 1\ny = 2")}) == "x = 1\ny = 2"
    assert render("{{ a }}", {"a": "张丽 (社保) 中心"}) == "张丽 (社保) 中心"


def test_settings_refuse_a_name_that_would_add_a_section(tmp_path: Path) -> None:
    """The admin's edit (the roster validates through load_settings) fails with the field named."""
    from cc_core.errors import SettingsError

    for name in (EVIL_NAME, "a;b", "a[b", "a]b", 'a"b', "a\\b", "a\u202eb"):
        bad = SETTINGS.replace('name = "王五"', f"name = {tomlkit_string(name)}")
        (tmp_path / "hotline.toml").write_text(bad, encoding="utf-8")
        with pytest.raises(SettingsError) as caught:
            load_settings(tmp_path / "hotline.toml", env={})
        assert "agents.2.name" in str(caught.value)
        assert "坐席姓名不能含控制字符" in str(caught.value)


def tomlkit_string(value: str) -> str:
    import tomlkit

    return tomlkit.string(value).as_string()


def test_an_agent_name_with_a_line_break_never_reaches_pjsip_conf(site: tuple[Settings, Secrets, Instance]) -> None:
    """Even past the settings (a future field, a model built by hand), the renderer refuses it."""
    settings, secrets, instance = site
    agents = [settings.agents[0].model_copy(update={"name": EVIL_NAME}), *settings.agents[1:]]
    forged = settings.model_copy(update={"agents": agents})
    with pytest.raises(SwitchError, match="agent_name"):
        render_tree(TEMPLATE_DIR, instance, hotline_values(forged, secrets, instance))
    assert not (instance.etc / "pjsip.conf").exists()


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("sip_port = 5062", 'sip_port = 5062\nsip_bind = "0.0.0.0\\n[evil]"', "switch.sip_bind"),
        ("agi_port = 4575", 'agi_port = 4575\nagi_host = "127.0.0.1/x\\nexten"', "controller.agi_host"),
        ('host = "127.0.0.1"', 'host = "127.0.0.1:5070\\n[evil]"', "trunks.0.host"),
    ],
)
def test_settings_refuse_other_values_that_reach_a_template(tmp_path: Path, old: str, new: str, field: str) -> None:
    from cc_core.errors import SettingsError

    assert SETTINGS.count(old) == 1
    (tmp_path / "hotline.toml").write_text(SETTINGS.replace(old, new), encoding="utf-8")
    with pytest.raises(SettingsError, match=re.escape(field)):
        load_settings(tmp_path / "hotline.toml", env={})


# ---- issue 11 item 5: secrets on disk, the AMI user's rights -----------------------------------


def test_the_rendered_config_is_for_root_only(site: tuple[Settings, Secrets, Instance]) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    assert instance.etc.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in instance.etc.iterdir()}
    assert set(modes.values()) == {0o600}, modes
    # A file an older version left 0644 (unchanged content) is closed by the next render, and so
    # is one put there by hand.
    (instance.etc / "manager.conf").chmod(0o644)
    (instance.etc / "manager_local.conf").write_text("[x]\n", encoding="utf-8")
    (instance.etc / "manager_local.conf").chmod(0o644)
    instance.etc.chmod(0o755)
    assert render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance)) == []
    assert instance.etc.stat().st_mode & 0o777 == 0o700
    assert (instance.etc / "manager.conf").stat().st_mode & 0o777 == 0o600
    assert (instance.etc / "manager_local.conf").stat().st_mode & 0o777 == 0o600


def test_write_if_changed_never_makes_a_readable_file(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        target = tmp_path / "secret.conf"
        write_if_changed(target, "secret = s\n")
        assert target.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_the_controllers_ami_user_has_no_system_command_or_config_rights(
    site: tuple[Settings, Secrets, Instance],
) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    text = rendered(instance, "manager.conf")
    user = dict(sections(text))[secrets.ami_user]
    assert set(user["write"].split(",")) == {"call", "originate", "reporting"}
    assert set(user["read"].split(",")) == {"system", "call", "agent", "user", "dtmf"}
    assert user["eventfilter"] == ami_event_filter()
    assert "#tryinclude manager_local.conf" in text
    # Every event the controller translates passes the filter, and OriginateResponse (callbacks).
    pattern = re.compile(user["eventfilter"].replace("[[:space:]]", r"\s"))
    for name in [*WANTED_EVENTS, "OriginateResponse"]:
        assert pattern.search(f"Event: {name}\r\nPrivilege: call,all\r\n"), name
    for name in ("VarSet", "Newexten", "AGIExecStart", "RTCPSent", "HangupRequest", "Cdr"):
        assert not pattern.search(f"Event: {name}\r\nPrivilege: call,all\r\n"), name
    options = dict(sections(rendered(instance, "asterisk.conf")))
    assert options["options"]["live_dangerously"] == "no"
    assert options["files"]["astctlpermissions"] == "0600"
    ari = dict(sections(rendered(instance, "ari.conf")))
    assert ari[secrets.ari_user]["read_only"] == "yes"  # nothing uses ARI: no write through it


# ---- issue 11 item 6: the trunk's caller IDs are cut down to digits and '+' --------------------


def test_the_trunk_context_filters_the_caller_number_before_the_front_door(
    site: tuple[Settings, Secrets, Instance],
) -> None:
    settings, secrets, instance = site
    render_tree(TEMPLATE_DIR, instance, hotline_values(settings, secrets, instance))
    text = rendered(instance, "extensions.conf")
    trunk = text.split("[from-trunk]", 1)[1].split("\n[", 1)[0]
    assert (
        "exten => 12333,1,Set(CALLERID(num)=${FILTER(0-9+,${CALLERID(num)})})\n"
        " same => n,Set(CALLERID(rdnis)=${FILTER(0-9+,${CALLERID(rdnis)})})\n"
        " same => n,Goto(hotline,${EXTEN},1)"
    ) in trunk
    assert "exten => 12333,1,Goto(hotline" not in trunk  # no way in around the filter
    agents = text.split("[agents]", 1)[1].split("\n[", 1)[0]
    assert "exten => 12333,1,Goto(hotline,${EXTEN},1)" in agents  # agents' caller IDs are the switch's own
