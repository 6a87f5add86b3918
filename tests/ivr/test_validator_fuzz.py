"""Fuzzing the loader and validator: whatever an admin (or a broken editor) saves, a reload gets
problems with a file, a line and a message — never an exception that stops the controller."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_core.ivr.flow import KINDS, Flow
from cc_core.ivr.loader import FlowError, Problem, load_flow, load_flows
from cc_core.ivr.validator import validate

GOOD_MAIN = (Path(__file__).resolve().parents[1] / "fixtures" / "ivr_good" / "main.yaml").read_bytes()

# Each test stays within a few seconds: small inputs, a bounded number of examples.
FAST = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def flow_folder() -> Iterator[Path]:
    """A throw-away ivr_flows/ with one prompt file and one calendar (tmp_path is per test, not per example)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "prompts").mkdir()
        (folder / "prompts" / "hold.wav").write_bytes(b"RIFF")
        (folder / "calendars").mkdir()
        (folder / "calendars" / "beijing.yaml").write_text("name: beijing\n")
        # The flow a `goto: {flow: other}` continues in.
        (folder / "other.yaml").write_text("flow: other\nstart: bye\nnodes:\n  bye:\n    hangup:\n")
        yield folder


def assert_sound(problems: list[Problem], path: Path, data: bytes) -> None:
    """Every problem names the file, a line inside it and a message."""
    last_line = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
    for problem in problems:
        assert problem.file == path
        assert 1 <= problem.line <= last_line, str(problem)
        assert problem.message.strip(), str(problem)
        assert "internal error" not in problem.message, str(problem)
        assert str(problem).startswith(f"{path}:{problem.line}: ")


def check_file(folder: Path, data: bytes, name: str = "fuzz.yaml") -> Flow | None:
    """Load ``data`` the way the controller does; assert the guarantees; the flow if it loaded."""
    path = folder / name
    path.write_bytes(data)
    try:
        flow = load_flow(path)
    except FlowError as exc:
        assert exc.problems
        assert_sound(exc.problems, path, data)
        return None
    problems = validate(
        flow, prompts_dir=folder / "prompts", known_flows={"fuzz", "other"}, known_calendars={"beijing"}
    )
    assert_sound(problems, path, data)
    flows, all_problems = load_flows(folder)
    assert_sound(all_problems, path, data)
    assert ("fuzz" in flows) == (not problems and flow.name == "fuzz")
    return flow


# ---- (a) bytes and text -----------------------------------------------------------------


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    with flow_folder() as folder:
        check_file(folder, data)


YAMLISH = st.text(
    alphabet=st.sampled_from([*"abflowstartnodesmenuplay:1#*&!|>-?{}[],'\"\n  \t中文\\%@`", "\x00", "\ufeff"]),
    max_size=400,
)


@FAST
@given(YAMLISH)
def test_random_yamlish_text(text: str) -> None:
    with flow_folder() as folder:
        check_file(folder, text.encode())


@FAST
@given(st.data())
def test_mutations_of_a_good_flow(data: st.DataObject) -> None:
    """Small edits of a real flow reach deep into the builder and the validator."""
    mutated = bytearray(GOOD_MAIN)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated)))
        cut = data.draw(st.integers(0, 12))
        insert = data.draw(
            st.sampled_from([b"", b"x", b"  ", b"\n", b":", b"- ", b"'1'", b"*", b"&a ", b"!t ", b"{", b"0", b"\xff"])
        )
        mutated[at : at + cut] = insert
    with flow_folder() as folder:
        check_file(folder, bytes(mutated))


# ---- (b) structured flows ---------------------------------------------------------------

NAMES = st.sampled_from(["welcome", "main_menu", "agent", "bye", "m1", "1", "", "主菜单", "on"]) | st.text(max_size=6)
KEYS = st.sampled_from(["1", "2", "0", "*", "#", "12", "", "a"]) | st.integers(-1, 20)
SCALARS: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-5, 100)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
    | NAMES
)
PROMPTS: st.SearchStrategy[Any] = st.one_of(
    NAMES,
    st.text(max_size=12),
    st.fixed_dictionaries({"file": st.sampled_from(["hold.wav", "x.wav", "../x.wav", "", "a/b.wav"])}),
    st.fixed_dictionaries({"text": st.text(max_size=5)}),
    SCALARS,
    st.lists(SCALARS, max_size=2),
)


def settings_of(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A kind's settings: the required keys (sometimes dropped), some optional ones, sometimes a stray key."""
    return st.fixed_dictionaries(
        {},
        optional={**required, **optional, "bogus": SCALARS, "timout": SCALARS},
    )


KIND_SETTINGS: dict[str, st.SearchStrategy[Any]] = {
    "menu": settings_of(
        {"prompt": PROMPTS, "choices": st.dictionaries(KEYS, NAMES, max_size=4), "on_fail": NAMES},
        {"timeout": SCALARS, "retries": SCALARS, "repeat": KEYS, "back": KEYS, "invalid": PROMPTS},
    ),
    "collect": settings_of(
        {"prompt": PROMPTS, "store": NAMES, "next": NAMES, "on_fail": NAMES},
        {"check": st.sampled_from(["digits", "id_card", "idcard"]), "min_length": SCALARS, "max_length": SCALARS},
    ),
    "http": settings_of(
        {"url": st.sampled_from(["http://h/x", "ftp://h", "http://", "x"]), "next": NAMES, "on_error": NAMES},
        {"method": st.sampled_from(["GET", "POST", "get"]), "send": st.dictionaries(NAMES, NAMES, max_size=2)},
    ),
    "time_switch": settings_of(
        {"calendar": st.sampled_from(["beijing", "x"]), "open": NAMES, "closed": NAMES}, {"holiday": NAMES}
    ),
    "queue": settings_of({"queue": NAMES}, {"skill": SCALARS, "priority": SCALARS}),
    "voicemail": settings_of({"prompt": PROMPTS, "next": NAMES}, {"max_seconds": SCALARS}),
    "survey": settings_of({"next": NAMES}, {"prompt": PROMPTS}),
    "transfer": settings_of({"number": st.sampled_from(["110", "010-1"]) | st.integers(0, 10**12)}, {}),
}

NODES: st.SearchStrategy[Any] = st.one_of(
    st.fixed_dictionaries({"play": PROMPTS}, optional={"next": NAMES}),
    st.fixed_dictionaries({"hangup": PROMPTS | st.none()}),
    st.fixed_dictionaries({"goto": NAMES | st.fixed_dictionaries({"flow": st.sampled_from(["other", "none"])})}),
    *(st.fixed_dictionaries({kind: body}, optional={"next": NAMES}) for kind, body in KIND_SETTINGS.items()),
    st.dictionaries(st.sampled_from([*KINDS, "next", "nxt"]), SCALARS | PROMPTS, max_size=3),
    SCALARS,
)

FLOWS: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {"nodes": st.dictionaries(NAMES, NODES, max_size=8)},
    optional={
        "flow": st.just("fuzz") | NAMES,
        "start": NAMES,
        "title": SCALARS,
        "prompts": st.dictionaries(NAMES, PROMPTS, max_size=3),
        "extra": SCALARS,
    },
)


@FAST
@given(FLOWS)
def test_random_flow_documents(document: dict[str, Any]) -> None:
    data = yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode()
    with flow_folder() as folder:
        check_file(folder, data)


ENDS = ("queue", "transfer", "hangup", "goto_flow")
MIDDLES = ("play", "menu", "collect", "http", "time_switch", "voicemail", "survey", "goto")


@st.composite
def good_flows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid flow: a chain n0 → n1 → … (every node reachable), other exits only forward (no
    loops), at most five menus, ending in a node that leaves the IVR."""
    count = draw(st.integers(1, 12))
    names = [f"n{i}" for i in range(count)]
    nodes: dict[str, Any] = {}
    menus = 0
    collected = False
    for i, name in enumerate(names):
        if i == count - 1:
            end = draw(st.sampled_from(ENDS))
            nodes[name] = {
                "queue": {"queue": {"queue": "general", "priority": draw(st.integers(0, 9))}},
                "transfer": {"transfer": {"number": draw(st.sampled_from(["110", "01063000000"]))}},
                "hangup": {"hangup": draw(st.sampled_from([None, "再见。", "greeting"]))},
                "goto_flow": {"goto": {"flow": "other"}},
            }[end]
            continue
        following = names[i + 1]
        forward = st.sampled_from(names[i + 1 :])
        kind = draw(st.sampled_from(MIDDLES))
        if kind == "menu" and menus == 5:
            kind = "play"
        if kind == "play":
            nodes[name] = {
                "play": draw(st.sampled_from(["您好。", "greeting", {"file": "hold.wav"}])),
                "next": following,
            }
        elif kind == "menu":
            menus += 1
            keys = draw(st.lists(st.sampled_from(sorted("0123456789")), min_size=1, max_size=4, unique=True))
            choices: dict[Any, str] = {int(keys[0]): following} | {key: draw(forward) for key in keys[1:]}
            nodes[name] = {"menu": {"prompt": "请选择。", "choices": choices, "repeat": "*", "on_fail": draw(forward)}}
        elif kind == "collect":
            collected = True
            check = draw(st.sampled_from(["digits", "id_card", "phone", "date"]))
            collect = {
                "prompt": "请输入。",
                "check": check,
                "store": "value",
                "next": following,
                "on_fail": draw(forward),
            }
            nodes[name] = {"collect": collect}
        elif kind == "http":
            send = {"v": "value"} if collected else {}
            http: dict[str, Any] = {"url": "https://example.org/q", "send": send, "next": following}
            nodes[name] = {"http": {**http, "on_error": draw(forward)}}
        elif kind == "time_switch":
            nodes[name] = {"time_switch": {"calendar": "beijing", "open": following, "closed": draw(forward)}}
        elif kind == "voicemail":
            nodes[name] = {"voicemail": {"prompt": "请留言。", "max_seconds": 60, "next": following}}
        elif kind == "survey":
            nodes[name] = {"survey": {"next": following}}
        else:
            nodes[name] = {"goto": following}
    return {"flow": "fuzz", "title": "模糊测试", "start": "n0", "prompts": {"greeting": "您好。"}, "nodes": nodes}


@FAST
@given(good_flows())
def test_generated_good_flows_load_without_problems(document: dict[str, Any]) -> None:
    data = yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode()
    with flow_folder() as folder:
        flow = check_file(folder, data)
        assert flow is not None
        assert validate(flow, prompts_dir=folder / "prompts", known_flows={"other"}, known_calendars={"beijing"}) == []
        assert set(flow.nodes) == set(document["nodes"])
