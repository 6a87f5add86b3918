"""The IVR runtime's menus, step by step (T6; issue 12, "tests that would catch a broken refactor").

Each test compares the whole sequence of steps a call goes through with exact values, so a
menu's retries off by one, the ``*`` repeat key disabled or counted as a failed try, the
``invalid``/``no_input`` prompts swapped or said after the last try, or the ``back`` key going
to the wrong menu each fail a test here (the mutation run of docs/testing.md checks it).
"""

from __future__ import annotations

from cc_core.ivr.flow import Flow, Goto, Hangup, Menu, Prompt, Queue
from cc_core.ivr.runtime import AskKey, End, Say, ToQueue, Visit
from tests.ivr.runtime_script import flow, walk

MENU = Prompt(text="查询请按1，人工服务请按2。", name="main_menu")
INVALID = Prompt(text="您的输入有误。", name="invalid")
NO_INPUT = Prompt(text="我们没有收到您的按键。")
BYE = Prompt(text="再见。")


def menu(**fields: object) -> Menu:
    base: dict[str, object] = {
        "prompt": MENU,
        "choices": {"1": "query", "2": "agent"},
        "timeout": 5.0,
        "retries": 3,
        "invalid": INVALID,
        "no_input": NO_INPUT,
        "on_fail": "agent",
    }
    return Menu("main_menu", **(base | fields))  # type: ignore[arg-type]


def menu_flow(node: Menu) -> Flow:
    return flow("main", "main_menu", node, Hangup("query", prompt=BYE), Queue("agent", queue="general"))


def ask(keys: str = "12", timeout: float = 5.0, prompt: Prompt = MENU) -> AskKey:
    return AskKey(prompt, timeout, keys)


VISIT_MENU = Visit("main", "main_menu", "menu")
TO_AGENT = [Visit("main", "agent", "queue"), ToQueue("general", None, 0, None)]
TO_QUERY = [Visit("main", "query", "hangup"), End(BYE)]


def test_a_valid_key_at_the_first_try_takes_its_choice() -> None:
    assert walk(menu_flow(menu()), ["1"]) == [VISIT_MENU, ask(), *TO_QUERY]
    assert walk(menu_flow(menu()), ["2"]) == [VISIT_MENU, ask(), *TO_AGENT]


def test_three_retries_mean_three_questions_then_on_fail() -> None:
    # Two "invalid" between the three questions, none after the last: on_fail follows at once.
    steps = walk(menu_flow(menu(on_fail="query")), ["9", "8", "7"])
    assert steps == [VISIT_MENU, ask(), Say(INVALID), ask(), Say(INVALID), ask(), *TO_QUERY]


def test_the_last_try_can_still_succeed() -> None:
    steps = walk(menu_flow(menu()), ["9", "", "1"])
    assert steps == [VISIT_MENU, ask(), Say(INVALID), ask(), Say(NO_INPUT), ask(), *TO_QUERY]


def test_no_input_and_invalid_each_say_their_own_prompt() -> None:
    steps = walk(menu_flow(menu(retries=4)), ["", "9", "", "5"])
    assert steps == [
        VISIT_MENU,
        ask(),
        Say(NO_INPUT),
        ask(),
        Say(INVALID),
        ask(),
        Say(NO_INPUT),
        ask(),
        *TO_AGENT,
    ]


def test_one_retry_is_one_question_and_no_prompt() -> None:
    assert walk(menu_flow(menu(retries=1)), ["9"]) == [VISIT_MENU, ask(), *TO_AGENT]
    assert walk(menu_flow(menu(retries=1)), [""]) == [VISIT_MENU, ask(), *TO_AGENT]


def test_a_menu_without_problem_prompts_only_asks_again() -> None:
    steps = walk(menu_flow(menu(invalid=None, no_input=None, retries=2)), ["", "9"])
    assert steps == [VISIT_MENU, ask(), ask(), *TO_AGENT]
    steps = walk(menu_flow(menu(invalid=None, retries=2)), ["9", ""])
    assert steps == [VISIT_MENU, ask(), ask(), *TO_AGENT]
    steps = walk(menu_flow(menu(no_input=None, retries=2)), ["", "9"])
    assert steps == [VISIT_MENU, ask(), ask(), *TO_AGENT]


def test_the_repeat_key_asks_again_without_using_a_try() -> None:
    node = menu(repeat="*")
    # Five questions with retries 3: the two repeats are not failed tries, and no prompt is said.
    steps = walk(menu_flow(node), ["9", "*", "9", "*", "9"])
    keys = "12*"
    assert steps == [
        VISIT_MENU,
        ask(keys),
        Say(INVALID),
        ask(keys),
        ask(keys),
        Say(INVALID),
        ask(keys),
        ask(keys),
        *TO_AGENT,
    ]
    assert walk(menu_flow(node), ["*", "*", "*", "1"]) == [VISIT_MENU, *[ask(keys)] * 4, *TO_QUERY]


def test_without_a_repeat_key_star_is_an_invalid_try() -> None:
    steps = walk(menu_flow(menu()), ["*", "*", "*"])
    assert steps == [VISIT_MENU, ask(), Say(INVALID), ask(), Say(INVALID), ask(), *TO_AGENT]


def test_the_keys_listened_for_are_the_choices_then_repeat_then_back() -> None:
    node = menu(choices={"3": "query", "1": "agent", "0": "agent"}, repeat="*", back="#", timeout=7.5)
    assert walk(menu_flow(node), ["3"]) == [VISIT_MENU, ask("310*#", 7.5), *TO_QUERY]
    node = menu(back="#")
    assert walk(menu_flow(node), ["1"]) == [VISIT_MENU, ask("12#"), *TO_QUERY]


SUB = Prompt(text="养老金请按1，返回请按井号。", name="sub_menu")


def two_levels(**sub: object) -> Flow:
    fields: dict[str, object] = {
        "prompt": SUB,
        "choices": {"1": "query"},
        "retries": 2,
        "invalid": INVALID,
        "back": "#",
        "repeat": "*",
        "on_fail": "agent",
    }
    return flow(
        "main",
        "main_menu",
        menu(choices={"1": "sub_menu", "2": "agent"}),
        Menu("sub_menu", **(fields | sub)),  # type: ignore[arg-type]
        Hangup("query", prompt=BYE),
        Queue("agent", queue="general"),
    )


VISIT_SUB = Visit("main", "sub_menu", "menu")
ASK_SUB = AskKey(SUB, 5.0, "1*#")


def test_back_returns_to_the_menu_that_led_here() -> None:
    steps = walk(two_levels(), ["1", "#", "2"])
    assert steps == [VISIT_MENU, ask(), VISIT_SUB, ASK_SUB, VISIT_MENU, ask(), *TO_AGENT]


def test_back_then_down_again_then_back_again() -> None:
    # The menu above is pushed again on the way down, so a second "back" still finds it.
    steps = walk(two_levels(), ["1", "#", "1", "#", "1", "1"])
    assert steps == [
        VISIT_MENU,
        ask(),
        VISIT_SUB,
        ASK_SUB,
        VISIT_MENU,
        ask(),
        VISIT_SUB,
        ASK_SUB,
        VISIT_MENU,
        ask(),
        VISIT_SUB,
        ASK_SUB,
        *TO_QUERY,
    ]


def test_back_in_the_first_menu_is_an_invalid_try() -> None:
    node = menu(back="#", retries=2)
    steps = walk(menu_flow(node), ["#", "#"])
    assert steps == [VISIT_MENU, ask("12#"), Say(INVALID), ask("12#"), *TO_AGENT]


def test_a_failed_sub_menu_goes_to_its_on_fail_not_back() -> None:
    steps = walk(two_levels(on_fail="query"), ["1", "9", "9"])
    assert steps == [VISIT_MENU, ask(), VISIT_SUB, ASK_SUB, Say(INVALID), ASK_SUB, *TO_QUERY]


def test_a_goto_within_the_flow_keeps_the_menu_to_go_back_to() -> None:
    flows = flow(
        "main",
        "main_menu",
        menu(choices={"1": "jump", "2": "agent"}),
        Goto("jump", target="sub_menu"),
        Menu("sub_menu", prompt=SUB, choices={"1": "query"}, back="#", on_fail="agent"),
        Hangup("query", prompt=BYE),
        Queue("agent", queue="general"),
    )
    steps = walk(flows, ["1", "#", "2"])
    assert steps == [
        VISIT_MENU,
        ask(),
        Visit("main", "jump", "goto"),
        VISIT_SUB,
        AskKey(SUB, 5.0, "1#"),
        VISIT_MENU,
        ask(),
        *TO_AGENT,
    ]


def test_another_flow_starts_with_no_menu_to_go_back_to() -> None:
    main = flow("main", "main_menu", menu(choices={"1": "other", "2": "agent"}), Goto("other", flow="after"))
    after = flow(
        "after",
        "sub_menu",
        Menu("sub_menu", prompt=SUB, choices={"1": "bye"}, back="#", retries=2, invalid=INVALID, on_fail="bye"),
        Hangup("bye"),
    )
    steps = walk({"main": main, "after": after}, ["1", "#", "#"])
    assert steps == [
        VISIT_MENU,
        ask(),
        Visit("main", "other", "goto"),
        Visit("after", "sub_menu", "menu"),
        AskKey(SUB, 5.0, "1#"),
        Say(INVALID),
        AskKey(SUB, 5.0, "1#"),
        Visit("after", "bye", "hangup"),
        End(None),
    ]
