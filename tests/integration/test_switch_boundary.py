"""The switch's boundary against the real Asterisk (issue 11 items 5 and 6).

* the rendered config, which holds every secret, is for root only, and the switch runs with it;
* the controller's AMI user (the product's only one) cannot run CLI commands, shell commands
  through ``Originate Application=System``, or read or rewrite config files; it still gets
  everything the controller uses, including a callback's OriginateResponse;
* the agents' SIP accounts reload through the CLI's control socket instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_core.bus import EventBus
from cc_core.errors import SwitchError
from cc_core.switch.ami import AmiLink
from tests.harness.hotline import Hotline
from tests.harness.loop import LoopThread
from tests.harness.world import World

pytestmark = pytest.mark.switch


@pytest.fixture
def product_ami(hotline: Hotline, loop: LoopThread) -> Iterator[AmiLink]:
    """A link logged in as the controller's AMI user, as the controller logs in."""
    hotline.ensure_switch()

    async def start() -> tuple[AmiLink, asyncio.Task[None]]:
        sw, secrets = hotline.settings.switch, hotline.secrets
        link = AmiLink("127.0.0.1", sw.ami_port, secrets.ami_user, secrets.ami_secret, EventBus())
        task = asyncio.ensure_future(link.run())
        assert await link.wait_connected(20), link.last_error
        return link, task

    link, task = loop.run(start(), timeout=30)
    yield link

    async def stop() -> None:
        await link.stop()
        task.cancel()

    loop.run(stop(), timeout=10)


def _ask(loop: LoopThread, link: AmiLink, action: dict[str, Any], timeout: float = 15) -> Any:
    return loop.run(link.action(action, timeout=timeout), timeout + 5)


def test_the_rendered_config_is_for_root_only_and_the_switch_runs_with_it(hotline: Hotline) -> None:
    hotline.ensure_switch()
    etc = hotline.instance.etc
    assert etc.stat().st_mode & 0o777 == 0o700
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in etc.iterdir()}
    assert set(modes.values()) == {"0o600"}, modes
    assert {"manager.conf", "pjsip.conf", "ari.conf", "manager_local.conf"} <= set(modes)
    # Asterisk (root, in its chroot) reads them: the agents' accounts and the AMI users are there.
    assert "Endpoint:  1001/1001" in hotline.switch.cli("pjsip show endpoint 1001")
    users = hotline.switch.cli("manager show users")
    assert hotline.secrets.ami_user in users and "harness" in users


def test_the_controllers_ami_user_cannot_reach_a_shell_or_the_config(
    hotline: Hotline, world: World, loop: LoopThread, product_ami: AmiLink, tmp_path: Path
) -> None:
    """With Asterisk running as root, each of these would be a root shell for whoever can read
    the AMI secret (issue 11 item 5)."""
    marker = tmp_path / "pwned"
    world.phone("1002").answers_after(0).hangs_up_after(2)
    refused = {
        "Command": {"Action": "Command", "Command": "core show version"},
        "Originate System": {
            "Action": "Originate",
            "Channel": "PJSIP/1002",
            "Application": "System",
            "Data": f"touch {marker}",
            "Timeout": "10000",
        },
        "Originate Exec": {"Action": "Originate", "Channel": "PJSIP/1002", "Application": "Exec", "Data": "System(id)"},
        "Setvar SHELL": {"Action": "Setvar", "Variable": "X", "Value": f"${{SHELL(touch {marker})}}"},
        "GetConfig": {"Action": "GetConfig", "Filename": "manager.conf"},
        "UpdateConfig": {"Action": "UpdateConfig", "SrcFilename": "extensions.conf", "DstFilename": "x.conf"},
        "Filter": {"Action": "Filter", "Operation": "Add", "Filter": "Event: VarSet"},
        "Reload": {"Action": "Reload", "Module": "res_pjsip.so"},
        "ModuleLoad": {"Action": "ModuleLoad", "Module": "res_pjsip.so", "LoadType": "reload"},
        "DBPut": {"Action": "DBPut", "Family": "x", "Key": "y", "Val": "z"},
    }
    answers = {name: _ask(loop, product_ami, action) for name, action in refused.items()}
    messages = {name: (str(a.get("Response")), str(a.get("Message", ""))) for name, a in answers.items()}
    expected = {name: ("Error", "Permission denied") for name in refused}
    expected["Originate System"] = ("Error", "Originate Access Forbidden: app or data blacklisted")
    expected["Originate Exec"] = ("Error", "Originate Access Forbidden: app or data blacklisted")
    # A Setvar is allowed (call class), but the SHELL function is not run from AMI
    # (live_dangerously = no): the variable is not set to its output and no file appears.
    got_setvar = messages.pop("Setvar SHELL")
    expected.pop("Setvar SHELL")
    assert messages == expected
    # The value is stored as text (AMI's Setvar does not evaluate it): acknowledged, nothing run.
    assert got_setvar == ("Success", "Variable Set")
    assert not marker.exists()


def test_the_controllers_ami_user_gets_its_originate_response(
    hotline: Hotline, world: World, loop: LoopThread, product_ami: AmiLink
) -> None:
    """A callback's Originate waits for OriginateResponse; the user's event filter lets it through."""
    world.phone("1002").answers_after(0.5).hangs_up_after(1)
    answer = _ask(
        loop,
        product_ami,
        {
            "Action": "Originate",
            "Channel": "PJSIP/1002",
            "Application": "Wait",
            "Data": "1",
            "CallerID": "Hotline <12333>",
            "Async": "true",
            "Timeout": "15000",
        },
        timeout=30,
    )
    messages = answer if isinstance(answer, list) else [answer]
    assert [(m.get("Event"), m.get("Response")) for m in messages if m.get("Event") == "OriginateResponse"] == [
        ("OriginateResponse", "Success")
    ]


def test_sip_accounts_reload_through_the_cli(hotline: Hotline) -> None:
    hotline.ensure_switch()
    hotline.switch.reload_module("res_pjsip.so")
    with pytest.raises(SwitchError, match=r"did not reload res_nosuch\.so"):
        hotline.switch.reload_module("res_nosuch.so")


def test_the_ari_user_may_only_read(hotline: Hotline) -> None:
    """Nothing uses ARI; its user is read-only, so its password cannot originate a call."""
    import base64
    import urllib.error
    import urllib.request

    hotline.ensure_switch()
    secrets = hotline.secrets
    auth = base64.b64encode(f"{secrets.ari_user}:{secrets.ari_password}".encode()).decode()
    base = f"http://127.0.0.1:{hotline.settings.switch.http_port}/ari"

    def status(method: str, path: str) -> int:
        request = urllib.request.Request(base + path, method=method, headers={"Authorization": f"Basic {auth}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("GET", "/asterisk/info") == 200
    assert status("POST", "/channels?endpoint=PJSIP/1002&context=hotline-held&extension=s") == 403
