"""Issue 11 item 6: the controller checks a callback's number before its AMI Originate.

The dialplan's trunk context cuts caller IDs down to digits and '+', and the callback list takes
only dialable numbers; a row with another number (an older version's, an import's) must still
never become an Originate's Exten (and so ``Dial(PJSIP/<number>@trunk)`` in the dialplan).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from cc_core.acd.model import AgentState
from cc_core.acd.store import AgentStore
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.store import CallStore
from cc_core.db.models import Callback
from tests.acd.test_wait_pass import T0, RecordingAmi, _acd
from tests.acd.test_wait_pass import stores as stores  # the fixture

Stores = tuple[CallStore, AgentStore, RecordingStore, CallbackStore]


@pytest.fixture
def ami() -> Iterator[RecordingAmi]:
    yield RecordingAmi()


def _forge(callbacks: CallbackStore, callback_id: int, number: str) -> None:
    with callbacks._sessions() as session, session.begin():
        session.execute(update(Callback).where(Callback.id == callback_id).values(number=number))


@pytest.mark.parametrize("number", ["139&PJSIP/1001", "139,tT", "139/evil", "139\r\nAction: Command", "12"])
def test_a_callback_to_a_forged_number_is_never_originated(stores: Stores, ami: RecordingAmi, number: str) -> None:
    acd = _acd(stores, ami)
    callbacks = stores[3]
    callback_id = callbacks.request("13800138000", "a.1", "abandoned", T0)
    _forge(callbacks, callback_id, number)

    async def scenario() -> None:
        assert callbacks.claim(callback_id, T0)
        await acd._place(callback_id, number, "2000")
        await asyncio.gather(*list(acd._tasks))

    asyncio.run(scenario())
    assert [a for a in ami.actions if a.get("Action") == "Originate"] == []
    view = callbacks.get(callback_id)
    assert view is not None and view.status == "cancelled"
    assert acd.agents["2000"].state is AgentState.AVAILABLE  # never rung


def test_a_callback_to_a_real_number_is_originated(stores: Stores, ami: RecordingAmi) -> None:
    acd = _acd(stores, ami)
    callbacks = stores[3]
    callback_id = callbacks.request("13800138000", "a.1", "abandoned", T0)

    async def scenario() -> None:
        assert callbacks.claim(callback_id, T0)
        await acd._place(callback_id, "13800138000", "2000")
        await asyncio.gather(*list(acd._tasks))

    asyncio.run(scenario())
    originates = [a for a in ami.actions if a.get("Action") == "Originate"]
    assert [(a["Context"], a["Exten"]) for a in originates] == [("hotline-callback", "13800138000")]


@pytest.mark.parametrize("number", ["١٣٨٠٠١٣٨٠٠٠", "13800&PJSIP/1001", "138,00", "１３８００１３８０００", "1234"])
def test_a_mobile_login_takes_only_a_dialable_number(stores: Stores, ami: RecordingAmi, number: str) -> None:
    """The mobile becomes an Originate's Channel, PJSIP/<number>@trunk: ASCII digits only."""
    from cc_core.acd.service import AgentError

    acd = _acd(stores, ami)
    with pytest.raises(AgentError, match="is not a phone number"):
        asyncio.run(acd.login("2000", f"m:{number}"))
    assert acd.agents["2000"].state is AgentState.AVAILABLE
