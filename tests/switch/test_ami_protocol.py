"""The AMI byte stream to typed events, without a switch: framing, UTF-8 and translation.

TCP delivers the stream in arbitrary pieces; whatever the cut (inside a header, inside the
``\\r\\n\\r\\n`` between messages, inside a Chinese caller name), the events handed on must be
the same, and 张三 must arrive as 张三.
"""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from panoramisk.actions import Action
from panoramisk.message import Message

from cc_core.switch.ami import _Action, _Protocol, parse_block
from cc_core.switch.events import (
    TRANSLATORS,
    BridgeEntered,
    BridgeLeft,
    ChannelCreated,
    ChannelHungUp,
    ChannelStateChanged,
    ConferenceJoined,
    ConferenceLeft,
    DeviceStateChanged,
    DialEnded,
    DialStarted,
    DtmfReceived,
    QueueCallerJoined,
    QueueCallerLeft,
    SwitchEvent,
    UserEvent,
    from_ami,
)

GREETING = "Asterisk Call Manager/9.0.0\r\n"
UID = "1732861234.15"


def message(**headers: str) -> str:
    """One AMI message; ``Cause_txt`` is written ``Cause-txt``."""
    return "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items()) + "\r\n"


NEWCHANNEL = message(
    Event="Newchannel",
    Privilege="call,all",
    Channel="PJSIP/carrier-00000001",
    ChannelState="4",
    ChannelStateDesc="Ring",
    CallerIDNum="13800138000",
    CallerIDName="张三",
    ConnectedLineNum="<unknown>",
    ConnectedLineName="<unknown>",
    Language="zh",
    AccountCode="",
    Context="from-trunk",
    Exten="12333",
    Priority="1",
    Uniqueid=UID,
    Linkedid=UID,
)
STREAM = (
    GREETING
    + message(Response="Success", ActionID="action/login/1/1", Message="Authentication accepted")
    + message(Event="FullyBooted", Privilege="system,all", Uptime="12", LastReload="12", Status="Fully Booted")
    + NEWCHANNEL
    + message(
        Event="Newstate",
        Privilege="call,all",
        Channel="PJSIP/carrier-00000001",
        ChannelState="6",
        ChannelStateDesc="Up",
        CallerIDName="张三",
        Uniqueid=UID,
    )
    + message(Event="VarSet", Channel="PJSIP/carrier-00000001", Variable="备注", Value="key: value: 社保", Uniqueid=UID)
    + message(Event="DTMFEnd", Channel="PJSIP/carrier-00000001", Digit="5", DurationMs="120", Direction="Received")
    + message(Event="UserEvent", UserEvent="HotlineFallback", Uniqueid=UID, Caller="13800138000", Reason="FAILURE")
    + message(Event="QueueCallerJoin", Queue="hotline-fallback", Position="1", Count="1", Uniqueid=UID)
    + message(Event="DeviceStateChange", Privilege="call,all", Device="PJSIP/1001", State="RINGING")
    + message(Event="BridgeEnter", BridgeUniqueid="b-1", BridgeType="basic", Uniqueid=UID)
    + message(Event="BridgeLeave", BridgeUniqueid="b-1", BridgeType="basic", Uniqueid=UID)
    + message(
        Event="Hangup",
        Channel="PJSIP/carrier-00000001",
        Uniqueid=UID,
        Linkedid=UID,
        Cause="16",
        Cause_txt="Normal Clearing",
    )
).encode("utf-8")


class DummyTransport:
    """Just enough of a transport for the protocol: it records what is written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def protocol() -> tuple[_Protocol, list[dict[str, str]]]:
    proto = _Protocol()
    proto.connection_made(DummyTransport())
    events: list[dict[str, str]] = []
    proto.on_event = events.append
    return proto, events


def feed(pieces: list[bytes]) -> tuple[_Protocol, list[dict[str, str]]]:
    proto, events = protocol()
    for piece in pieces:
        proto.data_received(piece)
    return proto, events


def expected_events() -> list[dict[str, str]]:
    return feed([STREAM])[1]


# ---- parse_block -------------------------------------------------------------------------


def test_parse_block_splits_at_the_first_colon_space_only() -> None:
    block = "Event: VarSet\r\nVariable: 备注\r\nValue: key: value: 社保\r\nAccountCode: \r\nno separator here"
    assert parse_block(block) == {"Event": "VarSet", "Variable": "备注", "Value": "key: value: 社保", "AccountCode": ""}


def test_parse_block_the_first_duplicate_wins_and_empty_block() -> None:
    assert parse_block("Event: X\r\nVariable: a=1\r\nVariable: b=2") == {"Event": "X", "Variable": "a=1"}
    assert parse_block("") == {}


def test_a_user_event_body_cannot_replace_the_switchs_own_headers() -> None:
    """Issue 11 item 6: the switch writes the channel's headers before a UserEvent's body; a body
    (built from a caller ID or a variable) that repeats Uniqueid, Event or File loses to them."""
    block = (
        "Event: UserEvent\r\nPrivilege: user,all\r\nChannel: PJSIP/carrier-00000001\r\n"
        "Uniqueid: 1732861234.15\r\nUserEvent: HotlineRecording\r\n"
        "File: /srv/hotline/cc/spool/monitor/2026-12-04/1732861234.15.wav\r\nAgent: 1001\r\n"
        "Uniqueid: 1.666\r\nEvent: Hangup\r\nFile: /etc/shadow\r\nUserEvent: HotlineCallbackResult"
    )
    headers = parse_block(block)
    assert headers["Uniqueid"] == "1732861234.15"
    assert headers["Event"] == "UserEvent"
    assert headers["UserEvent"] == "HotlineRecording"
    assert headers["File"] == "/srv/hotline/cc/spool/monitor/2026-12-04/1732861234.15.wav"
    event = from_ami(headers)
    assert isinstance(event, UserEvent)
    assert (event.name, event.uniqueid, event.fields["File"]) == (
        "HotlineRecording",
        "1732861234.15",
        "/srv/hotline/cc/spool/monitor/2026-12-04/1732861234.15.wav",
    )
    # Through the protocol too (the controller's fast event path).
    _proto, events = feed([(GREETING + block + "\r\n\r\n").encode("utf-8")])
    assert [(e["Uniqueid"], e["File"]) for e in events] == [("1732861234.15", headers["File"])]


# ---- the protocol's framing --------------------------------------------------------------


def test_whole_stream_gives_each_event_once_in_order_and_skips_responses() -> None:
    proto, events = feed([STREAM])
    assert [e["Event"] for e in events] == [
        "FullyBooted",
        "Newchannel",
        "Newstate",
        "VarSet",
        "DTMFEnd",
        "UserEvent",
        "QueueCallerJoin",
        "DeviceStateChange",
        "BridgeEnter",
        "BridgeLeave",
        "Hangup",
    ]
    assert proto.version == "9.0.0"
    assert events[1] == parse_block(NEWCHANNEL.strip("\r\n"))
    assert events[1]["CallerIDName"] == "张三"
    assert events[3]["Value"] == "key: value: 社保"
    assert events[-1]["Cause-txt"] == "Normal Clearing"


def test_a_split_at_every_byte_offset_gives_identical_events() -> None:
    want = expected_events()
    name_at = STREAM.index("张三".encode())
    for inside in (name_at + 1, name_at + 2, name_at + 4):  # these cuts fall inside 张 or 三
        with pytest.raises(UnicodeDecodeError):
            STREAM[:inside].decode("utf-8")
    for cut in range(len(STREAM) + 1):
        proto, events = feed([STREAM[:cut], STREAM[cut:]])
        assert events == want, f"cut at byte {cut}"
        assert all("\ufffd" not in v for e in events for v in e.values()), f"cut at byte {cut}"
        if cut == 0 or cut >= len(GREETING) - 1:
            assert proto.version == "9.0.0", f"cut at byte {cut}"


def test_byte_by_byte_gives_identical_events() -> None:
    _, events = feed([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert events == expected_events()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_number_of_cuts_gives_identical_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    _, events = feed([STREAM[a:b] for a, b in pairwise(points)])
    assert events == expected_events()


def test_invalid_utf8_is_replaced_not_dropped_and_framing_survives() -> None:
    bad = message(Event="Newchannel", CallerIDName="\udcff", Uniqueid="1.1")
    raw = bad.encode("utf-8", "surrogateescape") + NEWCHANNEL.encode("utf-8")
    _, events = feed([raw[:20], raw[20:]])
    assert [e["Uniqueid"] for e in events] == ["1.1", UID]
    assert events[0]["CallerIDName"] == "\ufffd"
    assert events[1]["CallerIDName"] == "张三"


def test_greeting_line_sets_the_version_and_is_not_an_event() -> None:
    proto, events = feed([GREETING.encode()])
    assert proto.version == "9.0.0"
    assert events == []
    proto.data_received(NEWCHANNEL.encode())
    assert [e["Event"] for e in events] == ["Newchannel"]
    # A later line that looks like a greeting is just text, not a new version.
    proto.data_received(b"Asterisk Call Manager/1.0\r\n")
    assert proto.version == "9.0.0"


def test_a_greeting_split_before_its_line_end_keeps_the_version() -> None:
    raw = GREETING.encode() + NEWCHANNEL.encode()
    cut = len(GREETING) - 1  # between \r and \n
    proto, events = feed([raw[:cut], raw[cut:]])
    assert proto.version == "9.0.0"
    assert [e["Event"] for e in events] == ["Newchannel"]


def test_events_answering_a_pending_action_go_to_the_action_not_on_event() -> None:
    async def scenario() -> tuple[Any, list[dict[str, str]], bytes]:
        proto, events = protocol()
        action = _Action({"Action": "CoreShowChannels"}, as_list=True)
        future = proto.send(action, as_list=True)
        action_id = action.id
        raw = (
            message(Response="Success", ActionID=action_id, EventList="start", Message="Channels will follow")
            + message(Event="CoreShowChannel", ActionID=action_id, Channel="PJSIP/1001-00000002", CallerIDName="李四")
            + NEWCHANNEL  # a live event in the middle of the list
            + message(Event="CoreShowChannelsComplete", ActionID=action_id, EventList="Complete", ListItems="1")
        ).encode()
        for i in range(0, len(raw), 7):
            proto.data_received(raw[i : i + 7])
        answer = await asyncio.wait_for(future, 1)
        return answer, events, proto.transport.written[0]

    answer, events, sent = asyncio.run(scenario())
    assert [e["Event"] for e in events] == ["Newchannel"]
    assert [m.get("Event", "") for m in answer] == ["", "CoreShowChannel", "CoreShowChannelsComplete"]
    assert answer[1]["CallerIDName"] == "李四"
    assert sent.startswith(b"Action: CoreShowChannels\r\n")


# ---- _Action.multi -----------------------------------------------------------------------


def _dtmf_answer(action: Action) -> Message:
    return Message({"Response": "Success", "ActionID": action.id, "Message": "DTMF successfully queued"})


def test_play_dtmf_answer_completes_the_action() -> None:
    async def scenario() -> tuple[bool, Any, bool]:
        action = _Action({"Action": "PlayDTMF", "Channel": "PJSIP/1001-00000002", "Digit": "5"})
        answer = _dtmf_answer(action)
        done = action.add_message(answer)
        return done, action.future.result(), action.multi

    done, result, multi = asyncio.run(scenario())
    assert done is True
    assert result["Message"] == "DTMF successfully queued"
    assert multi is False


def test_panoramisk_alone_fails_on_that_answer() -> None:
    async def scenario() -> None:
        action = Action({"Action": "PlayDTMF", "Channel": "PJSIP/1001-00000002", "Digit": "5"})
        action.add_message(_dtmf_answer(action))

    with pytest.raises(KeyError):
        asyncio.run(scenario())


def test_async_originate_still_waits_for_its_originate_response() -> None:
    async def scenario() -> tuple[bool, bool, Any]:
        action = _Action({"Action": "Originate", "Channel": "PJSIP/1001", "Async": "true"})
        queued = Message({"Response": "Success", "ActionID": action.id, "Message": "Originate successfully queued"})
        first = bool(action.add_message(queued))
        done_early = action.future.done()
        result = Message({"Event": "OriginateResponse", "ActionID": action.id, "Response": "Success"})
        action.add_message(result)
        return first, done_early, action.future.result()

    first, done_early, result = asyncio.run(scenario())
    assert first is False and done_early is False
    assert [m.get("Event", "") for m in result] == ["", "OriginateResponse"]


def test_explicit_as_list_wins() -> None:
    async def scenario() -> bool:
        action = _Action({"Action": "QueueStatus"}, as_list=True)
        action.responses.append(Message({"Response": "Success", "Message": "Queue status will follow"}))
        return bool(action.multi)

    assert asyncio.run(scenario()) is True


# ---- from_ami ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            parse_block(NEWCHANNEL.strip("\r\n")),
            ChannelCreated(UID, UID, "PJSIP/carrier-00000001", "13800138000", "张三", "12333", "from-trunk", 4),
        ),
        (
            {
                "Event": "Newstate",
                "Uniqueid": UID,
                "Channel": "PJSIP/c-1",
                "ChannelState": "6",
                "ChannelStateDesc": "Up",
            },
            ChannelStateChanged(UID, "PJSIP/c-1", 6, "Up"),
        ),
        (
            {
                "Event": "Hangup",
                "Uniqueid": UID,
                "Linkedid": "1.0",
                "Channel": "PJSIP/c-1",
                "Cause": "16",
                "Cause-txt": "Normal Clearing",
            },
            ChannelHungUp(UID, "1.0", "PJSIP/c-1", 16, "Normal Clearing"),
        ),
        ({"Event": "Hangup", "Uniqueid": UID, "Cause": ""}, ChannelHungUp(UID, "", "", None, "")),
        ({"Event": "Hangup", "Uniqueid": UID, "Cause": "x"}, ChannelHungUp(UID, "", "", None, "")),
        ({"Event": "Hangup", "Uniqueid": UID, "Cause": "0"}, ChannelHungUp(UID, "", "", 0, "")),
        (
            {"Event": "DTMFEnd", "Uniqueid": UID, "Digit": "#", "Direction": "Received"},
            DtmfReceived(UID, "#", "Received"),
        ),
        ({"Event": "BridgeEnter", "Uniqueid": UID, "BridgeUniqueid": "b-1"}, BridgeEntered(UID, "b-1")),
        ({"Event": "BridgeLeave", "Uniqueid": UID, "BridgeUniqueid": "b-1"}, BridgeLeft(UID, "b-1")),
        (
            {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "INUSE"},
            DeviceStateChanged("PJSIP/1001", "INUSE"),
        ),
        (
            {"Event": "QueueCallerJoin", "Uniqueid": UID, "Queue": "hotline-fallback", "Position": "3"},
            QueueCallerJoined(UID, "hotline-fallback", 3),
        ),
        ({"Event": "QueueCallerJoin", "Uniqueid": UID, "Queue": "q"}, QueueCallerJoined(UID, "q", 0)),
        ({"Event": "QueueCallerLeave", "Uniqueid": UID, "Queue": "q"}, QueueCallerLeft(UID, "q", abandoned=False)),
        ({"Event": "QueueCallerAbandon", "Uniqueid": UID, "Queue": "q"}, QueueCallerLeft(UID, "q", abandoned=True)),
        (
            {
                "Event": "UserEvent",
                "UserEvent": "HotlineFallback",
                "Privilege": "user,all",
                "Uniqueid": UID,
                "Caller": "13800138000",
                "Reason": "FAILURE",
            },
            UserEvent("HotlineFallback", UID, {"Caller": "13800138000", "Reason": "FAILURE"}),
        ),
        ({"Event": "Newstate", "Uniqueid": UID, "ChannelState": "?"}, ChannelStateChanged(UID, "", 0, "")),
        (
            {
                "Event": "DialBegin",
                "Uniqueid": UID,
                "DestUniqueid": "1700000000.43",
                "DestChannel": "PJSIP/1001-00000002",
                "DialString": "1001",
            },
            DialStarted(UID, "1700000000.43", "PJSIP/1001-00000002", "1001"),
        ),
        (
            {"Event": "DialEnd", "Uniqueid": UID, "DestUniqueid": "1.2", "DestChannel": "PJSIP/1001-2"},
            DialEnded(UID, "1.2", "PJSIP/1001-2", ""),
        ),
        (
            {"Event": "DialEnd", "Uniqueid": UID, "DestUniqueid": "1.2", "DestChannel": "c", "DialStatus": "NOANSWER"},
            DialEnded(UID, "1.2", "c", "NOANSWER"),
        ),
        (
            {"Event": "ConfbridgeJoin", "Conference": UID, "Uniqueid": "1.3", "Channel": "PJSIP/1002-3"},
            ConferenceJoined(UID, "1.3", "PJSIP/1002-3"),
        ),
        ({"Event": "ConfbridgeLeave", "Conference": UID, "Uniqueid": "1.3"}, ConferenceLeft(UID, "1.3", "")),
    ],
)
def test_from_ami_translates(headers: dict[str, str], expected: SwitchEvent) -> None:
    assert from_ami(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"Event": "VarSet", "Uniqueid": UID, "Variable": "x", "Value": "1"},
        {"Event": "Newexten", "Uniqueid": UID},
        {"Event": "DTMFBegin", "Uniqueid": UID, "Digit": "5"},
        {"Event": "FullyBooted"},
        {"Event": "newchannel", "Uniqueid": UID},  # AMI names are case-exact
        {"Event": ""},
        {"Response": "Success"},
        {},
    ],
)
def test_from_ami_ignores_what_the_controller_does_not_use(headers: dict[str, str]) -> None:
    assert from_ami(headers) is None


def test_every_translator_is_covered_here() -> None:
    assert set(TRANSLATORS) == {
        "Newchannel",
        "Newstate",
        "Hangup",
        "DTMFEnd",
        "BridgeEnter",
        "BridgeLeave",
        "DeviceStateChange",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "UserEvent",
        "DialBegin",
        "DialEnd",
        "ConfbridgeJoin",
        "ConfbridgeLeave",
    }


def test_stream_to_typed_events_end_to_end() -> None:
    typed = [e for e in (from_ami(h) for h in expected_events()) if e is not None]
    assert [type(e).__name__ for e in typed] == [
        "ChannelCreated",
        "ChannelStateChanged",
        "DtmfReceived",
        "UserEvent",
        "QueueCallerJoined",
        "DeviceStateChanged",
        "BridgeEntered",
        "BridgeLeft",
        "ChannelHungUp",
    ]
    created = typed[0]
    assert isinstance(created, ChannelCreated) and created.caller_name == "张三"
