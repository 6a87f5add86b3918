"""EventBus: typed publish/subscribe, inline sync handlers, scheduled async ones, isolation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cc_core.bus import EventBus
from cc_core.switch.events import AmiConnected, AmiDisconnected, ChannelHungUp, SwitchEvent

UP = AmiConnected(reconnect=False)
DOWN = AmiDisconnected(reason="connection refused")


def test_sync_handlers_run_inline_in_subscription_order() -> None:
    bus = EventBus()
    calls: list[tuple[str, object]] = []
    bus.subscribe(AmiConnected, lambda e: calls.append(("first", e)))
    bus.subscribe(AmiConnected, lambda e: calls.append(("second", e)))
    bus.subscribe(AmiDisconnected, lambda e: calls.append(("other type", e)))
    bus.publish(UP)
    assert calls == [("first", UP), ("second", UP)]  # before publish() returned
    assert bus.published == 1


def test_no_subscriber_is_fine_and_still_counted() -> None:
    bus = EventBus()
    bus.publish(DOWN)
    bus.publish("not even an event")
    assert bus.published == 2


def test_base_class_subscription_receives_subclasses_after_exact_type() -> None:
    bus = EventBus()
    calls: list[str] = []
    bus.subscribe(SwitchEvent, lambda e: calls.append(f"switch:{type(e).__name__}"))
    bus.subscribe(object, lambda e: calls.append(f"object:{type(e).__name__}"))
    bus.subscribe(AmiConnected, lambda e: calls.append("exact"))
    bus.publish(UP)
    bus.publish(ChannelHungUp("1.1", "1.1", "PJSIP/x", 16, "Normal Clearing"))
    bus.publish(42)
    assert calls == [
        "exact",
        "switch:AmiConnected",
        "object:AmiConnected",
        "switch:ChannelHungUp",
        "object:ChannelHungUp",
        "object:int",
    ]


def test_a_raising_sync_handler_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    calls: list[str] = []

    def broken(event: AmiConnected) -> None:
        raise RuntimeError("database is locked")

    bus.subscribe(AmiConnected, lambda e: calls.append("before"))
    bus.subscribe(AmiConnected, broken)
    bus.subscribe(AmiConnected, lambda e: calls.append("after"))
    bus.subscribe(SwitchEvent, lambda e: calls.append("base"))
    with caplog.at_level(logging.ERROR, logger="cc_core.bus"):
        bus.publish(UP)
    assert calls == ["before", "after", "base"]
    [record] = caplog.records
    assert "broken" in record.getMessage() and "AmiConnected" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_async_handlers_are_scheduled_not_awaited_and_drain_waits_for_them() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        calls: list[str] = []

        async def slow_write(event: AmiDisconnected) -> None:
            calls.append("async started")
            await asyncio.sleep(0.05)
            calls.append(f"async done: {event.reason}")

        bus.subscribe(AmiDisconnected, slow_write)
        bus.subscribe(AmiDisconnected, lambda e: calls.append("sync"))
        bus.publish(DOWN)
        calls.append("publish returned")
        await bus.drain()
        calls.append("drained")
        return calls

    assert asyncio.run(scenario()) == [
        "sync",
        "publish returned",
        "async started",
        "async done: connection refused",
        "drained",
    ]


def test_a_failing_async_handler_is_logged_and_does_not_stop_others(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        calls: list[str] = []

        async def broken(event: AmiConnected) -> None:
            await asyncio.sleep(0)
            raise ValueError("bad row")

        async def fine(event: AmiConnected) -> None:
            await asyncio.sleep(0.01)
            calls.append("fine")

        bus.subscribe(AmiConnected, broken)
        bus.subscribe(AmiConnected, fine)
        bus.publish(UP)
        await bus.drain()
        return calls

    with caplog.at_level(logging.ERROR, logger="cc_core.bus"):
        assert asyncio.run(scenario()) == ["fine"]
    [record] = caplog.records
    assert "async event handler failed" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


def test_drain_also_waits_for_handlers_scheduled_by_handlers() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        calls: list[str] = []

        async def on_up(event: AmiConnected) -> None:
            await asyncio.sleep(0.01)
            bus.publish(DOWN)  # schedules another async handler while draining

        async def on_down(event: AmiDisconnected) -> None:
            await asyncio.sleep(0.01)
            calls.append("down handled")

        bus.subscribe(AmiConnected, on_up)
        bus.subscribe(AmiDisconnected, on_down)
        bus.publish(UP)
        await bus.drain()
        return calls

    assert asyncio.run(scenario()) == ["down handled"]


def test_drain_without_work_returns_and_cancelled_handlers_do_not_block_it() -> None:
    async def scenario() -> bool:
        bus = EventBus()
        await asyncio.wait_for(bus.drain(), 1)

        async def forever(event: AmiConnected) -> None:
            await asyncio.sleep(3600)

        bus.subscribe(AmiConnected, forever)
        bus.publish(UP)
        await asyncio.sleep(0)
        for task in list(bus._tasks):
            task.cancel()
        await asyncio.wait_for(bus.drain(), 1)
        return not bus._tasks

    assert asyncio.run(scenario()) is True
