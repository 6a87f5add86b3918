"""The Asterisk implementation of :class:`cc_core.switch.actions.SwitchControl`.

The only place a domain's request becomes an AMI dictionary, and an AMI answer a typed result
(issue 12 item 5, docs/decisions/0015-switch-boundary.md). Calls and channels go over the AMI link
(:class:`cc_core.switch.ami.AmiLink`), with only the ``call`` and ``originate`` write classes the
controller's AMI user has (docs/security.md); the reload of agents' SIP accounts goes through the
switch's root-only CLI socket (:meth:`cc_core.switch.process.Switch.reload_module`), since over AMI
it would need the ``command`` class, which is a root shell (issue 11 item 5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cc_core.switch.actions import (
    ActionResult,
    Endpoint,
    Hangup,
    Originate,
    OriginateResult,
    Outside,
    Phone,
    Place,
    Redirect,
    SetVariables,
    SwitchAction,
    SwitchUnavailable,
)
from cc_core.switch.ami import header

# How long after the ring time an Originate's answer may take (the switch answers with
# OriginateResponse when the agent's phone answered or stopped ringing).
ORIGINATE_GRACE_S = 15
# Agents' SIP accounts: the module reloaded after their config was rendered again.
SIP_MODULE = "res_pjsip.so"
# The channel technology of every phone and trunk (chan_pjsip).
TECH = "PJSIP/"


class AmiActions(Protocol):
    """What :class:`AsteriskControl` needs of the AMI link (:class:`cc_core.switch.ami.AmiLink`)."""

    @property
    def connected(self) -> bool: ...

    async def action(
        self, action: Mapping[str, Any], *, as_list: bool | None = None, timeout: float | None = None
    ) -> Any: ...


def ami_action(action: SwitchAction | Originate) -> list[dict[str, Any]]:
    """The AMI actions that carry ``action`` out, in order (one per variable for
    :class:`SetVariables`: AMI's ``Setvar`` sets one)."""
    match action:
        case SetVariables(channel=channel, values=values):
            return [{"Action": "Setvar", "Channel": channel, "Variable": k, "Value": v} for k, v in values.items()]
        case Redirect(channel=channel, to=to, also=also):
            ami: dict[str, Any] = {"Action": "Redirect", "Channel": channel, **_place(to, "")}
            if also is not None:
                ami |= {"ExtraChannel": also[0], **_place(also[1], "Extra")}
            return [ami]
        case Hangup(channel=channel):
            return [{"Action": "Hangup", "Channel": channel}]
        case Originate():
            return [
                {
                    "Action": "Originate",
                    "Channel": dial_string(action.endpoint),
                    **_place(action.to, ""),
                    "Timeout": str(action.ring_s * 1000),
                    "CallerID": action.caller_id,
                    "ChannelId": action.channel_id,
                    "Async": "true",
                    "Variable": [f"{k}={v}" for k, v in action.variables.items()],
                }
            ]
    raise TypeError(f"not a switch action: {action!r}")


def _place(place: Place, prefix: str) -> dict[str, str]:
    return {
        f"{prefix}Context": place.context,
        f"{prefix}Exten": place.exten,
        f"{prefix}Priority": str(place.priority),
    }


def dial_string(endpoint: Endpoint) -> str:
    """Asterisk's dial string: ``PJSIP/1001`` for a phone, ``PJSIP/<number>@<trunk>`` outside."""
    match endpoint:
        case Phone(extension=extension):
            return f"{TECH}{extension}"
        case Outside(number=number, trunk=trunk):
            return f"{TECH}{number}@{trunk}"
    raise TypeError(f"not an endpoint: {endpoint!r}")


def _result(answer: Any) -> ActionResult:
    if str(header(answer, "Response")) == "Success":
        return ActionResult(True)
    return ActionResult(False, header(answer, "Message"))


class AsteriskControl:
    """Asterisk behind :class:`cc_core.switch.actions.SwitchControl`: AMI for calls, the CLI
    socket for reloads."""

    def __init__(self, link: AmiActions, reload_module: Callable[[str], None] | None = None) -> None:
        self._link = link
        self._reload_module = reload_module

    @property
    def connected(self) -> bool:
        return self._link.connected

    async def send(self, action: SwitchAction) -> ActionResult:
        result = ActionResult(True)
        for ami in ami_action(action):
            result = _result(await self._ask(ami))
            if not result.ok:
                return result
        return result

    async def originate(self, action: Originate) -> OriginateResult:
        [ami] = ami_action(action)
        answer = await self._ask(ami, timeout=action.ring_s + ORIGINATE_GRACE_S)
        messages = answer if isinstance(answer, list) else [answer]
        outcomes = [m for m in messages if header(m, "Event") == "OriginateResponse"]
        if any(header(m, "Response") == "Success" for m in outcomes):
            return OriginateResult(True)
        last = outcomes[-1] if outcomes else messages[-1] if messages else {}
        return OriginateResult(False, header(last, "Reason") or header(last, "Message") or "no answer")

    async def reload_accounts(self) -> None:
        if self._reload_module is None:
            raise SwitchUnavailable("this switch control cannot reload modules")
        await asyncio.to_thread(self._reload_module, SIP_MODULE)

    def dial_string(self, endpoint: Endpoint) -> str:
        return dial_string(endpoint)

    def phone_device(self, extension: str) -> str:
        return f"{TECH}{extension}"

    def endpoint_of_device(self, device: str) -> str | None:
        return device[len(TECH) :] if device.startswith(TECH) else None

    def endpoint_of_channel(self, channel: str) -> str:
        # PJSIP/<endpoint>-<sequence>, e.g. PJSIP/1001-0000002a
        return channel.removeprefix(TECH).rsplit("-", 1)[0]

    async def _ask(self, ami: Mapping[str, Any], timeout: float | None = None) -> Any:
        try:
            return await self._link.action(ami, timeout=timeout)
        except SwitchUnavailable:
            raise
        except TimeoutError as exc:
            raise SwitchUnavailable(f"the switch did not answer {ami['Action']} in time") from exc
