"""The IVR runtime's other nodes, step by step (T6, T8, T11; issue 12).

Input collection with its checks and retries, the self-service http node (what is sent, what is
said, when it fails), time switches on every calendar state, queues with a requested agent,
voicemail, the survey, transfer, hang-up, goto within a flow and to another flow, and the step
limit that hands a looping call to a human. Exact step sequences throughout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cc_core.ivr import flow as flow_model
from cc_core.ivr.flow import (
    Collect,
    Goto,
    Hangup,
    Http,
    Node,
    Play,
    Prompt,
    Queue,
    Survey,
    TimeSwitch,
    Transfer,
    Voicemail,
)
from cc_core.ivr.runtime import (
    SURVEY_PROMPT,
    AskDigits,
    AskKey,
    CallContext,
    End,
    Fetch,
    RecordMessage,
    Say,
    ToNumber,
    ToQueue,
    Visit,
    fill,
    run,
)
from tests.ivr.runtime_script import NOON, flow, walk

ASK_ID = Prompt(text="请输入您的身份证号码，以井号键结束。", name="ask_id")
INVALID = Prompt(text="身份证号码有误。")
NO_INPUT = Prompt(text="我们没有收到您的输入。")
BYE = Prompt(text="再见。")
VALID_ID = "11010519491231002X"  # the example of GB 11643-1999
END_OK = [Visit("main", "ok", "hangup"), End(BYE)]
END_FAILED = [Visit("main", "failed", "hangup"), End(None)]


def collect_flow(**fields: Any) -> Any:
    base: dict[str, Any] = {
        "prompt": ASK_ID,
        "check": "id_card",
        "store": "id_card",
        "retries": 3,
        "invalid": INVALID,
        "no_input": NO_INPUT,
        "next": "ok",
        "on_fail": "failed",
    }
    return flow("main", "ask", Collect("ask", **(base | fields)), Hangup("ok", prompt=BYE), Hangup("failed"))


VISIT_ASK = Visit("main", "ask", "collect")
ASK_18 = AskDigits(ASK_ID, 8.0, 18)


# ---- collect ---------------------------------------------------------------------------------


def test_a_valid_id_card_is_stored_with_star_as_x() -> None:
    context = CallContext()
    steps = walk(collect_flow(), [VALID_ID.replace("X", "*")], context=context)
    assert steps == [VISIT_ASK, ASK_18, *END_OK]
    assert context.values == {"id_card": VALID_ID}


def test_a_wrong_checksum_is_refused_and_asked_again() -> None:
    context = CallContext()
    wrong = VALID_ID[:17] + "1"
    steps = walk(collect_flow(), [wrong, "", VALID_ID], context=context)
    assert steps == [VISIT_ASK, ASK_18, Say(INVALID), ASK_18, Say(NO_INPUT), ASK_18, *END_OK]
    assert context.values == {"id_card": VALID_ID}


def test_three_failed_tries_end_in_collect_failed_and_on_fail() -> None:
    context = CallContext()
    steps = walk(collect_flow(), ["", "123", None], context=context)
    assert steps == [
        VISIT_ASK,
        ASK_18,
        Say(NO_INPUT),
        ASK_18,
        Say(INVALID),
        ASK_18,
        Visit("main", "ask", "collect_failed"),
        *END_FAILED,
    ]
    assert context.values == {}


def test_one_try_and_no_prompts() -> None:
    assert walk(collect_flow(retries=1), ["1"]) == [
        VISIT_ASK,
        ASK_18,
        Visit("main", "ask", "collect_failed"),
        *END_FAILED,
    ]
    steps = walk(collect_flow(invalid=None, no_input=None, retries=2), ["", "1"])
    assert steps == [VISIT_ASK, ASK_18, ASK_18, Visit("main", "ask", "collect_failed"), *END_FAILED]


@pytest.mark.parametrize(
    ("check", "keyed", "stored", "max_digits"),
    [
        ("phone", "13800138000", "13800138000", 12),
        ("phone", "01012345678", "01012345678", 12),
        ("date", "19491001", "1949-10-01", 8),
        ("digits", "20", "20", 20),
    ],
)
def test_each_check_sets_its_key_limit_and_stores_its_normal_form(
    check: str, keyed: str, stored: str, max_digits: int
) -> None:
    context = CallContext()
    prompt = Prompt(text="请输入。")
    steps = walk(collect_flow(check=check, store="v", prompt=prompt, timeout=6.0), [keyed], context=context)
    assert steps == [VISIT_ASK, AskDigits(prompt, 6.0, max_digits), *END_OK]
    assert context.values == {"v": stored}


def test_digits_keep_to_the_node_s_length_bounds() -> None:
    node = {"check": "digits", "store": "n", "min_length": 4, "max_length": 6}
    context = CallContext()
    steps = walk(collect_flow(**node), ["123", "1234567", "1234"], context=context)
    ask6 = AskDigits(ASK_ID, 8.0, 6)
    assert steps == [VISIT_ASK, ask6, Say(INVALID), ask6, Say(INVALID), ask6, *END_OK]
    assert context.values == {"n": "1234"}
    context = CallContext()
    assert walk(collect_flow(**node), ["123456"], context=context) == [VISIT_ASK, ask6, *END_OK]
    assert context.values == {"n": "123456"}


def test_a_later_collection_of_the_same_name_replaces_the_value() -> None:
    flows = flow(
        "main",
        "a",
        Collect("a", prompt=ASK_ID, store="n", next="b", on_fail="failed"),
        Collect("b", prompt=ASK_ID, store="n", next="ok", on_fail="failed"),
        Hangup("ok", prompt=BYE),
        Hangup("failed"),
    )
    context = CallContext(values={"other": "x"})
    walk(flows, ["11", "22"], context=context)
    assert context.values == {"other": "x", "n": "22"}


# ---- http (self-service) ---------------------------------------------------------------------


def http_flow(**fields: Any) -> Any:
    base: dict[str, Any] = {
        "url": "http://127.0.0.1:8090/api/pension/status",
        "send": {"id": "id_card", "tel": "caller_number", "dn": "dialed_number", "none": "never_collected"},
        "timeout": 2.5,
        "say": "您的养老金{status}，金额{amount}元。",
        "next": "ok",
        "on_error": "failed",
    }
    return flow("main", "query", Http("query", **(base | fields)), Hangup("ok", prompt=BYE), Hangup("failed"))


CALL = CallContext(caller_number="13800138000", dialed_number="12333", values={"id_card": VALID_ID})
SENT = {"id": VALID_ID, "tel": "13800138000", "dn": "12333", "none": ""}
FETCH = Fetch("http://127.0.0.1:8090/api/pension/status", "GET", SENT, 2.5)
VISIT_QUERY = Visit("main", "query", "http")


def test_the_answer_is_said_with_its_fields_filled_in() -> None:
    steps = walk(http_flow(), [{"status": "已发放", "amount": 3200, "other": 1}], context=CALL)
    assert steps == [VISIT_QUERY, FETCH, Say(Prompt(text="您的养老金已发放，金额3200元。", name="<answer>")), *END_OK]


def test_a_post_sends_the_same_values() -> None:
    steps = walk(http_flow(method="POST", say=None), [{}], context=CALL)
    assert steps == [VISIT_QUERY, Fetch(FETCH.url, "POST", SENT, 2.5), *END_OK]


def test_a_collected_value_named_like_the_caller_number_wins() -> None:
    context = CallContext(caller_number="13800138000", values={"caller_number": "13900139000"})
    steps = walk(http_flow(send={"tel": "caller_number"}, say=None), [{}], context=context)
    assert steps[1] == Fetch(FETCH.url, "GET", {"tel": "13900139000"}, 2.5)


def test_no_answer_or_a_field_missing_takes_on_error() -> None:
    failed = [VISIT_QUERY, FETCH, Visit("main", "query", "http_failed"), *END_FAILED]
    assert walk(http_flow(), [None], context=CALL) == failed
    assert walk(http_flow(), [{"status": "已发放"}], context=CALL) == failed
    # Even with nothing to say, a failed call is a failure.
    assert walk(http_flow(say=None), [None], context=CALL) == failed


def test_an_answer_with_nothing_to_say_goes_on_quietly() -> None:
    assert walk(http_flow(say=None), [{"status": "x"}], context=CALL) == [VISIT_QUERY, FETCH, *END_OK]
    assert walk(http_flow(say=""), [{}], context=CALL) == [VISIT_QUERY, FETCH, *END_OK]


@pytest.mark.parametrize(
    ("template", "answer", "text"),
    [
        ("{a}元", {"a": 12}, "12元"),
        ("{a}{b}", {"a": "x", "b": "y", 3: "z"}, "xy"),
        ("无字段", {}, "无字段"),
        ("{a}", {}, None),  # missing field
        ("{a", {"a": 1}, None),  # malformed template (ValueError)
        ("{0}", {"a": 1}, None),  # positional field (IndexError)
        ("{a.b}", {"a": 1}, None),  # attribute of a value (AttributeError)
        ("{a[b]}", {"a": {"c": 1}}, None),  # item of a value (KeyError)
        ("{3}", {3: "non-string key"}, None),
    ],
)
def test_fill(template: str, answer: dict[Any, Any], text: str | None) -> None:
    assert fill(template, answer) == text


# ---- time switch -----------------------------------------------------------------------------


class FixedCalendar:
    """A calendar in one state; records the instants it was asked about."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.asked: list[datetime] = []

    def state_at(self, when: datetime) -> str:
        self.asked.append(when)
        return self.state


def time_flow(**fields: Any) -> Any:
    base: dict[str, Any] = {"calendar": "beijing", "open": "open_n", "closed": "closed_n"}
    nodes: list[Node] = [TimeSwitch("when", **(base | fields))]
    nodes += [Hangup(name) for name in ("open_n", "closed_n", "holiday_n", "emergency_n")]
    return flow("main", "when", *nodes)


def switch_to(state: str, **fields: Any) -> tuple[str, list[datetime]]:
    """Which exit a time switch takes in ``state``, and the instants its calendar was asked."""
    calendar = FixedCalendar(state)
    steps = walk(time_flow(**fields), calendars={"beijing": calendar}, clock=lambda: NOON)
    visit, decided, final, end = steps
    assert (visit, decided, end) == (
        Visit("main", "when", "time_switch"),
        Visit("main", "when", "decided", {"state": state}),
        End(None),
    )
    assert isinstance(final, Visit) and final.kind == "hangup"
    return final.node, calendar.asked


ALL_EXITS = {"holiday": "holiday_n", "emergency": "emergency_n"}


@pytest.mark.parametrize(
    ("state", "fields", "exit"),
    [
        ("open", ALL_EXITS, "open_n"),
        ("closed", ALL_EXITS, "closed_n"),
        ("holiday", ALL_EXITS, "holiday_n"),
        ("emergency", ALL_EXITS, "emergency_n"),
        ("open", {}, "open_n"),
        ("holiday", {}, "closed_n"),  # no holiday exit: closed
        ("emergency", {"holiday": "holiday_n"}, "holiday_n"),  # no emergency exit: holiday, then closed
        ("emergency", {}, "closed_n"),
        ("makeup_day", ALL_EXITS, "closed_n"),  # a state the switch does not know: closed
    ],
)
def test_a_time_switch_takes_the_exit_of_the_calendar_state(state: str, fields: dict[str, str], exit: str) -> None:
    node, asked = switch_to(state, **fields)
    assert node == exit
    assert asked == [NOON]


def test_the_time_switch_asks_the_calendar_it_names_at_the_clock_s_time() -> None:
    other, beijing = FixedCalendar("open"), FixedCalendar("closed")
    later = datetime(2026, 10, 1, 1, 0, tzinfo=UTC)
    steps = walk(time_flow(), calendars={"other": other, "beijing": beijing}, clock=lambda: later)
    assert steps[2] == Visit("main", "closed_n", "hangup")
    assert (beijing.asked, other.asked) == ([later], [])


# ---- queue, voicemail, survey, transfer, hang-up, play ----------------------------------------


def test_a_queue_hands_the_call_over_with_skill_and_priority() -> None:
    flows = flow("main", "q", Queue("q", queue="pension", skill="养老", priority=5))
    assert walk(flows) == [Visit("main", "q", "queue"), ToQueue("pension", "养老", 5, None)]


@pytest.mark.parametrize(
    ("agent_from", "values", "requested"),
    [
        ("work_no", {"work_no": "1001"}, "1001"),
        ("work_no", {"work_no": ""}, None),  # nothing keyed: no requested agent
        ("work_no", {}, None),
        (None, {"work_no": "1001"}, None),  # a value of that name, but the node does not ask for it
    ],
)
def test_a_queue_passes_the_requested_agent(
    agent_from: str | None, values: dict[str, str], requested: str | None
) -> None:
    flows = flow("main", "q", Queue("q", queue="general", agent_from=agent_from))
    steps = walk(flows, context=CallContext(values=values))
    assert steps == [Visit("main", "q", "queue"), ToQueue("general", None, 0, requested)]


def test_voicemail_records_then_goes_on_whatever_was_recorded() -> None:
    prompt = Prompt(text="请留言。")
    flows = flow("main", "vm", Voicemail("vm", prompt=prompt, max_seconds=90, next="ok"), Hangup("ok", prompt=BYE))
    expected = [Visit("main", "vm", "voicemail"), RecordMessage(prompt, 90), *END_OK]
    assert walk(flows, [17]) == expected
    assert walk(flows, [None]) == expected


def survey_flow(prompt: Prompt | None = None) -> Any:
    return flow("main", "s", Survey("s", prompt=prompt, next="ok"), Hangup("ok", prompt=BYE))


@pytest.mark.parametrize(
    ("key", "level"), [("1", "非常满意"), ("2", "满意"), ("3", "一般"), ("4", "不满意"), ("5", "非常不满意")]
)
def test_the_survey_records_each_level(key: str, level: str) -> None:
    context = CallContext()
    steps = walk(survey_flow(), [key], context=context)
    assert steps == [
        Visit("main", "s", "survey"),
        AskKey(SURVEY_PROMPT, 6.0, "12345"),
        Visit("main", "s", "survey_answer", {"score": key, "level": level}),
        *END_OK,
    ]
    assert context.survey == key


def test_the_survey_asks_twice_then_records_no_answer() -> None:
    context = CallContext()
    steps = walk(survey_flow(), ["9", ""], context=context)
    ask = AskKey(SURVEY_PROMPT, 6.0, "12345")
    assert steps == [
        Visit("main", "s", "survey"),
        ask,
        ask,
        Visit("main", "s", "survey_answer", {"score": None, "level": None}),
        *END_OK,
    ]
    assert context.survey is None
    context = CallContext()
    steps = walk(survey_flow(), ["0", "4"], context=context)
    assert steps[3] == Visit("main", "s", "survey_answer", {"score": "4", "level": "不满意"})
    assert context.survey == "4"


def test_the_survey_plays_the_node_s_own_prompt() -> None:
    own = Prompt(file="survey_zh.wav")
    assert walk(survey_flow(own), ["5"])[1] == AskKey(own, 6.0, "12345")


def test_the_survey_prompt_says_the_keys_of_the_levels() -> None:
    assert SURVEY_PROMPT == Prompt(
        text="请您对本次服务进行评价。非常满意请按1，满意请按2，一般请按3，不满意请按4，非常不满意请按5。",
        name="survey",
    )


def test_transfer_hangup_and_play() -> None:
    hello = Prompt(text="您好。")
    flows = flow("main", "hi", Play("hi", prompt=hello, next="out"), Transfer("out", number="95511"))
    assert walk(flows) == [Visit("main", "hi", "play"), Say(hello), Visit("main", "out", "transfer"), ToNumber("95511")]
    assert walk(flow("main", "h", Hangup("h", prompt=BYE))) == [Visit("main", "h", "hangup"), End(BYE)]


# ---- goto, step limit ------------------------------------------------------------------------


def test_goto_a_node_of_the_flow_and_goto_its_start() -> None:
    hello = Prompt(text="您好。")
    flows = flow(
        "main",
        "hi",
        Play("hi", prompt=hello, next="ask"),
        Collect("ask", prompt=ASK_ID, store="n", retries=1, next="ok", on_fail="again"),
        Goto("again"),  # no target: the flow's start
        Hangup("ok", prompt=BYE),
    )
    steps = walk(flows, ["x", "1"])
    ask = AskDigits(ASK_ID, 8.0, 20)
    assert steps == [
        Visit("main", "hi", "play"),
        Say(hello),
        Visit("main", "ask", "collect"),
        ask,
        Visit("main", "ask", "collect_failed"),
        Visit("main", "again", "goto"),
        Visit("main", "hi", "play"),
        Say(hello),
        Visit("main", "ask", "collect"),
        ask,
        *END_OK,
    ]


def test_goto_another_flow_starts_it_at_its_start() -> None:
    main = flow("main", "go", Goto("go", flow="after"), Hangup("start_of_main"))
    after = flow("after", "first", Play("first", prompt=BYE, next="last"), Hangup("last"))
    steps = walk({"main": main, "after": after})
    assert steps == [
        Visit("main", "go", "goto"),
        Visit("after", "first", "play"),
        Say(BYE),
        Visit("after", "last", "hangup"),
        End(None),
    ]
    # The flows are looked up by name, not taken in order: "after" can also be the one called.
    assert walk({"main": main, "after": after}, start="after")[0] == Visit("after", "first", "play")


def test_a_loop_is_cut_after_200_nodes_and_the_caller_goes_to_a_human() -> None:
    flows = flow("main", "a", Goto("a", target="b"), Goto("b", target="a"))
    steps = walk(flows, fallback_queue="overflow")
    visits = [(s.node, s.kind) for s in steps if isinstance(s, Visit)]
    assert len(visits) == 201
    assert visits[:4] == [("a", "goto"), ("b", "goto"), ("a", "goto"), ("b", "goto")]
    assert visits[198:] == [("a", "goto"), ("b", "goto"), ("a", "step_limit")]
    assert steps[-1] == ToQueue("overflow", None, 0)
    assert steps[-2] == Visit("main", "a", "step_limit")


def test_the_simulator_s_loop_goes_to_the_general_queue() -> None:
    # `hotline ivr simulate` calls run() without a fallback queue: the shipped one is "general".
    flows = {"main": flow("main", "a", Goto("a", target="a"))}
    steps = list(run(flows, "main", CallContext(), {}, lambda: NOON))
    assert len(steps) == 202
    assert steps[-1] == ToQueue("general", None, 0)


def test_a_loop_through_another_flow_is_cut_in_the_flow_it_reached() -> None:
    main = flow("main", "a", Goto("a", flow="after"))
    after = flow("after", "b", Goto("b", flow="main"))
    steps = walk({"main": main, "after": after})
    assert len(steps) == 202
    assert steps[-2:] == [Visit("main", "a", "step_limit"), ToQueue("general", None, 0)]


def test_a_node_kind_the_runtime_does_not_know_is_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    class Odd(Node):
        pass

    monkeypatch.setitem(flow_model.KIND_OF, Odd, "odd")
    with pytest.raises(AssertionError, match=r"^unknown node kind Odd$"):
        walk(flow("main", "x", Odd("x")))
