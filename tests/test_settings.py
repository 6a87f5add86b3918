"""load_settings: defaults, the TOML file, HOTLINE_* overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cc_core.errors import SettingsError
from cc_core.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]

AGENTS = """
[[agents]]
id = "1001"
name = "张三"

[[agents]]
id = "1002"
name = "李四"
"""


def write(folder: Path, text: str, name: str = "hotline.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, env: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env={} if env is None else env)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    return message


# ---- defaults and overrides --------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.home == tmp_path.resolve()
    assert settings.switch.sip_port == 5060 and settings.switch.ami_port == 5038
    assert settings.controller.agi_host == "127.0.0.1" and settings.controller.agi_port == 4573
    assert [n.number for n in settings.numbers] == ["12333"]
    assert [t.name for t in settings.trunks] == ["carrier"]
    assert settings.agents == []
    assert settings.database.url == "sqlite:///var/hotline.db"
    assert settings.log.level == "INFO" and settings.log.format == "json"


def test_hotline_toml_in_the_working_folder_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "[switch]\nsip_port = 5080\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.switch.sip_port == 5080
    assert settings.home == tmp_path.resolve()


def test_the_projects_own_settings_file_loads() -> None:
    settings = load_settings(REPO / "hotline.toml", env={})
    assert settings.home == REPO
    assert settings.switch.ami_port > 0


def test_environment_overrides_the_file_key_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[switch]\nsip_port = 5060\nami_port = 5039\n[controller]\nweb_port = 8081\n" + AGENTS)
    env = {
        "HOTLINE_SWITCH__SIP_PORT": "5070",
        "HOTLINE_CONTROLLER__AGI_PORT": "4600",
        "HOTLINE_DATABASE__URL": "postgresql+psycopg://hotline@db/hotline",
        "HOTLINE_LOG__LEVEL": "DEBUG",
        "HOTLINE_STATE_DIR": "state",
        "PATH": "/usr/bin",
    }
    settings = load_settings(path, env=env)
    assert settings.switch.sip_port == 5070
    assert settings.switch.ami_port == 5039  # the rest of the section is kept
    assert settings.controller.agi_port == 4600 and settings.controller.web_port == 8081
    assert settings.database_url == "postgresql+psycopg://hotline@db/hotline"
    assert settings.log.level == "DEBUG"
    assert settings.state_path == tmp_path.resolve() / "state"
    assert [a.id for a in settings.agents] == ["1001", "1002"]


def test_other_hotline_variables_are_not_settings(tmp_path: Path) -> None:
    # The installer's and the test suite's own variables must not break the product.
    env = {
        "HOTLINE_DEBIAN_MIRROR": "http://deb.debian.org/debian",
        "HOTLINE_SKIP_POSTGRES": "1",
        "HOTLINE_TEST_PG_URL": "postgresql+psycopg://postgres@127.0.0.1/test",
    }
    settings = load_settings(write(tmp_path, ""), env=env)
    assert settings.switch.sip_port == 5060


def test_hotline_config_and_hotline_home(tmp_path: Path) -> None:
    path = write(tmp_path, "[switch]\nsip_port = 5090\n")
    elsewhere = tmp_path / "elsewhere"
    settings = load_settings(env={"HOTLINE_CONFIG": str(path), "HOTLINE_HOME": str(elsewhere)})
    assert settings.switch.sip_port == 5090
    assert settings.home == elsewhere.resolve()


def test_an_override_error_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    message = error_of(path, {"HOTLINE_SWITCH__SIP_PORT": "fifty"})
    assert "HOTLINE_SWITCH__SIP_PORT" in message and "switch.sip_port" in message and str(path) in message
    message = error_of(path, {"HOTLINE_SWITCH__SIP_PROT": "5070"})
    assert "HOTLINE_SWITCH__SIP_PROT" in message and "switch.sip_prot" in message


# ---- errors: one line naming the file and the key ---------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "hotline.toml"
    message = error_of(missing)
    assert str(missing) in message and "not found" in message


def test_a_folder_instead_of_a_file(tmp_path: Path) -> None:
    message = error_of(tmp_path)
    assert str(tmp_path) in message


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[switch]\nsip_port = \n[controller\n")
    message = error_of(path)
    assert str(path) in message and "not valid TOML" in message and "line 2" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "hotline.toml"
    path.write_bytes('[[numbers]]\nnumber = "12333"\nname = "社保"\n'.encode("gbk"))
    assert str(path) in error_of(path)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[switch]\nsip_port = "fifty"\n', "switch.sip_port", "integer"),
        ("[switch]\nsip_port = 70000\n", "switch.sip_port", "65535"),
        ("switch = 5\n", "switch", "dictionary"),
        ('[switch]\ninstance = "CC main"\n', "switch.instance", "pattern"),
        ('[log]\nlevel = "LOUD"\n', "log.level", "pattern"),
        ("[switch]\nrtp_start = 20000\nrtp_end = 10000\n", "switch", "rtp_end"),
        ("[switch]\nsip_prot = 5070\n", "switch.sip_prot", "Extra inputs"),
        ("[swich]\nsip_port = 5070\n", "swich", "Extra inputs"),
        ('[[agents]]\nid = "1001"\n', "agents.0.name", "required"),
        ('[[agents]]\nid = "10x1"\nname = "x"\n', "agents.0.id", "pattern"),
        (AGENTS + '\n[[agents]]\nid = "1001"\nname = "王五"\n', "agents", "duplicate agent id: 1001"),
        (
            '[[trunks]]\nname = "a"\nmatch = ["1.2.3.4"]\n[[trunks]]\nname = "a"\nmatch = ["5.6.7.8"]\n',
            "trunks",
            "duplicate trunk name: a",
        ),
        ('[[numbers]]\nnumber = "12333"\n[[numbers]]\nnumber = "12333"\n', "numbers", "duplicate number: 12333"),
        (
            '[[agents]]\nid = "12333"\nname = "x"\n[[numbers]]\nnumber = "12333"\n',
            "numbers",
            "agent id in agents: 12333",
        ),
        ('[[trunks]]\nname = "carrier"\nmatch = ["10.0.0.0/33"]\n', "trunks.0.match", "'10.0.0.0/33'"),
        ('[[trunks]]\nname = "carrier"\nmatch = ["carrier.example"]\n', "trunks.0.match", "not an IP address"),
        ('[[trunks]]\nname = "carrier"\nmatch = []\n', "trunks.0.match", "at least 1"),
        (
            '[controller]\ntrusted_proxies = ["proxy.lan"]\n',
            "controller.trusted_proxies",
            "trusted_proxies: 'proxy.lan' is not an IP address or network",
        ),
        ("home = 5\n", "home", "string"),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"bad settings in {path}: {key}"), message
    assert problem in message


def test_a_message_with_a_newline_in_the_value_stays_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[trunks]]\nname = "carrier"\nmatch = ["a\\nb"]\n')
    assert "trunks.0.match" in error_of(path)


def test_several_problems_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, '[switch]\nsip_port = "x"\nami_port = "y"\nhttp_port = "z"\n')
    assert "(and 2 more)" in error_of(path)


# ---- paths -------------------------------------------------------------------------------


def test_relative_paths_resolve_against_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "site"
    home.mkdir()
    path = write(home, '[switch]\nroot = "chroot"\n')
    monkeypatch.chdir(tmp_path)  # not the home: the working folder must not matter
    settings = load_settings(Path("site/hotline.toml"), env={})
    assert settings.home == home.resolve()
    assert settings.switch_root == home.resolve() / "chroot"
    assert settings.state_path == home.resolve() / "var"
    assert settings.path(Path("/srv/x")) == Path("/srv/x")
    assert load_settings(path, env={}).switch_root == settings.switch_root


def test_home_in_the_file_is_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    path = write(conf, 'home = "../data"\n')
    monkeypatch.chdir("/")
    assert load_settings(path, env={}).home == (tmp_path / "data").resolve()
    absolute = write(conf, f'home = "{tmp_path / "abs"}"\n', "abs.toml")
    assert load_settings(absolute, env={}).home == (tmp_path / "abs").resolve()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/hotline.db", "sqlite:///{home}/var/hotline.db"),
        ("sqlite:///hotline.db", "sqlite:///{home}/hotline.db"),
        ("sqlite:////srv/hotline/hotline.db", "sqlite:////srv/hotline/hotline.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://hotline@db:5432/hotline", "postgresql+psycopg://hotline@db:5432/hotline"),
    ],
)
def test_database_url_makes_a_relative_sqlite_path_absolute(tmp_path: Path, url: str, expected: str) -> None:
    settings = load_settings(write(tmp_path, f'[database]\nurl = "{url}"\n'), env={})
    assert settings.database_url == expected.format(home=tmp_path.resolve())
    if url.startswith("sqlite:///") and "memory" not in url:
        assert settings.database_url.startswith("sqlite:////")


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})
    with pytest.raises(ValidationError):
        settings.switch.sip_port = 1  # type: ignore[misc]
    assert isinstance(settings, Settings)
