"""The admin pages' handlers (cc_core/web/admin.py; issue 6 item 5): their own tests (issue 12,
"First: tests that would catch a broken refactor").

Over the product's whole web API in-process (tests/web/served.py: the real controller, its flow
registry on a copy of ivr_flows/, roster edits written to its own hotline.toml, an AMI stand-in):
flows listed, read, validated, published and uploaded (and refused: a bad name, a flow with
problems, not multipart, not .yaml, not text); calendars; agents created, changed and removed;
a queue's settings changed and taken by the running ACD; bad input a 400 with the reason, never
a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.loop import LoopThread
from tests.web.served import Served, serve

SIMPLE_FLOW = """flow: {name}
title: 测试流程
start: hello
nodes:
  hello:
    hangup: "您好，再见。"
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    loop = LoopThread()
    try:
        with serve(tmp_path_factory.mktemp("admin") / "home", loop) as running:
            yield running
    finally:
        loop.close()


def admin(served: Served, method: str, path: str, body: object = None) -> tuple[int, object]:
    return served.client("admin").json(method, path, body)


# ---- flows -------------------------------------------------------------------------------------------


def test_flows_are_listed_and_read(served: Served) -> None:
    status, answer = admin(served, "GET", "/api/admin/flows")
    assert status == 200 and isinstance(answer, dict)
    assert {(f["name"], f["loaded"]) for f in answer["flows"]} >= {
        ("main", True),
        ("after_hours", True),
        ("holiday", True),
    }
    status, flow = admin(served, "GET", "/api/admin/flows/after_hours")
    assert status == 200 and isinstance(flow, dict)
    assert (flow["name"], flow["file"], flow["yaml"].splitlines()[2]) == (
        "after_hours",
        "after_hours.yaml",
        "flow: after_hours",
    )
    assert admin(served, "GET", "/api/admin/flows/nonesuch") == (404, {"error": "没有流程 nonesuch (no such flow)"})
    assert admin(served, "GET", "/api/admin/flows/Bad-Name") == (
        400,
        {"error": "流程名只能含小写字母、数字和下划线 (a-z, 0-9, _)"},
    )


def test_validate_reports_problems_with_their_line_and_writes_nothing(served: Served) -> None:
    broken = SIMPLE_FLOW.format(name="probe") + "  loose:\n    goto: nowhere\n"
    status, answer = admin(served, "POST", "/api/admin/flows/validate", {"name": "probe", "yaml": broken})
    assert status == 200 and isinstance(answer, dict)
    assert answer["ok"] is False and answer["problems"]
    assert all(p["file"] == "probe.yaml" and p["line"] >= 1 for p in answer["problems"])
    status, answer = admin(
        served, "POST", "/api/admin/flows/validate", {"name": "probe", "yaml": SIMPLE_FLOW.format(name="probe")}
    )
    assert (status, answer) == (200, {"ok": True, "problems": [], "warnings": []})
    assert not (served.controller.settings.flows_path / "probe.yaml").exists()
    assert admin(served, "POST", "/api/admin/flows/validate", {"name": "x-y", "yaml": ""}) == (
        400,
        {"error": "流程名只能含小写字母、数字和下划线 (a-z, 0-9, _)"},
    )
    assert admin(served, "POST", "/api/admin/flows/validate", {"name": "probe"}) == (
        400,
        {"error": "缺少 yaml (missing yaml)"},
    )


def test_a_flow_with_problems_is_not_published_and_a_good_one_is_loaded(served: Served) -> None:
    folder = served.controller.settings.flows_path
    broken = SIMPLE_FLOW.format(name="greeting").replace("start: hello", "start: nowhere")
    status, answer = admin(served, "PUT", "/api/admin/flows/greeting", {"yaml": broken})
    assert status == 422 and isinstance(answer, dict)
    assert answer["error"] == "流程有错误，未发布 (the flow has problems; nothing was written)"
    assert not (folder / "greeting.yaml").exists()
    assert "greeting" not in served.controller.registry.snapshot()
    status, answer = admin(served, "PUT", "/api/admin/flows/greeting", {"yaml": SIMPLE_FLOW.format(name="greeting")})
    assert status == 200 and isinstance(answer, dict)
    loaded = served.controller.registry.snapshot()["greeting"]
    assert answer == {"ok": True, "name": "greeting", "version": loaded.version[:12]}
    assert (folder / "greeting.yaml").read_text(encoding="utf-8") == SIMPLE_FLOW.format(name="greeting")


@pytest.mark.parametrize(
    ("filename", "content", "status", "error"),
    [
        ("upload.txt", b"flow: upload\n", 415, "只接受 .yaml 或 .yml 文件 (only .yaml or .yml files)"),
        ("Up-Load.yaml", b"flow: upload\n", 400, "文件名只能含小写字母、数字和下划线 (file name: a-z, 0-9, _)"),
        ("upload.yaml", b"flow: up\x00load\n", 415, "这不是文本文件 (not a text file)"),
        ("upload.yaml", b"\xff\xfeflow", 415, "流程文件须为 UTF-8 文本 (the file must be UTF-8 text)"),
    ],
)
def test_an_upload_that_is_not_a_yaml_text_file_is_refused(
    served: Served, filename: str, content: bytes, status: int, error: str
) -> None:
    got = served.client("admin").upload("/api/admin/flows/upload", filename, content)
    assert got == (status, {"error": error})
    assert not (served.controller.settings.flows_path / "upload.yaml").exists()


def test_an_upload_is_published_and_a_wrong_form_refused(served: Served) -> None:
    client = served.client("admin")
    assert client.upload("/api/admin/flows/upload", "note.yaml", b"x", field="other") == (
        400,
        {"error": "缺少文件字段 file，或表单项过多 (missing the file field, or too many parts)"},
    )
    status, answer = client.json("POST", "/api/admin/flows/upload", {"yaml": "x"})
    assert (status, answer) == (415, {"error": "请以 multipart/form-data 上传文件 (upload as multipart/form-data)"})
    status, answer = client.upload(
        "/api/admin/flows/upload", "uploaded.yaml", SIMPLE_FLOW.format(name="uploaded").encode()
    )
    assert status == 200 and isinstance(answer, dict) and (answer["ok"], answer["name"]) == (True, "uploaded")
    assert "uploaded" in served.controller.registry.snapshot()


def test_the_graph_of_a_loaded_flow_is_an_svg_without_scripts(served: Served) -> None:
    client = served.client("admin")
    status, body = client.request("GET", "/api/admin/flows/after_hours/graph")
    assert status == 200 and body.lstrip().startswith((b"<?xml", b"<svg"))
    assert client.headers["content-security-policy"] == "script-src 'none'"
    assert admin(served, "GET", "/api/admin/flows/nonesuch/graph") == (
        404,
        {"error": "流程 nonesuch 未加载 (not loaded)"},
    )


# ---- calendars -------------------------------------------------------------------------------------------


def test_calendars_are_listed_read_and_checked(served: Served) -> None:
    status, answer = admin(served, "GET", "/api/admin/calendars")
    assert status == 200 and isinstance(answer, dict)
    assert [(c["name"], c["loaded"]) for c in answer["calendars"]] == [("beijing", True)]
    status, calendar = admin(served, "GET", "/api/admin/calendars/beijing")
    assert status == 200 and isinstance(calendar, dict) and calendar["file"] == "beijing.yaml"
    assert admin(served, "GET", "/api/admin/calendars/nonesuch") == (
        404,
        {"error": "没有日历 nonesuch (no such calendar)"},
    )
    status, answer = admin(served, "POST", "/api/admin/calendars/validate", {"name": "beijing", "yaml": "hours: ["})
    assert status == 200 and isinstance(answer, dict) and answer["ok"] is False and answer["problems"][0]["line"] >= 1
    status, answer = admin(served, "PUT", "/api/admin/calendars/beijing", {"yaml": "hours: ["})
    assert status == 422 and isinstance(answer, dict)
    assert answer["error"] == "日历有错误，未发布 (the calendar has problems; nothing was written)"
    assert admin(served, "POST", "/api/admin/calendars/validate", {"name": "Bad Name", "yaml": ""}) == (
        400,
        {"error": "日历名只能含小写字母、数字和下划线 (a-z, 0-9, _)"},
    )


# ---- agents and queues --------------------------------------------------------------------------------------


def test_an_agent_is_created_changed_and_removed_and_the_acd_follows(served: Served) -> None:
    acd = served.controller.acd
    client = served.client("admin")
    status, created = client.json("POST", "/api/admin/agents", {"id": "1003", "name": "刘洋", "skills": {"pension": 2}})
    assert status == 201 and isinstance(created, dict)
    assert (created["agent"], created["username"], len(created["password"]) >= 12) == ("1003", "1003", True)
    assert client.headers["cache-control"] == "no-store"  # the password is shown once
    assert admin(served, "POST", "/api/admin/agents", {"id": "1003", "name": "又一个"})[0] == 409
    assert (acd.agents["1003"].name, dict(acd.agents["1003"].skills)) == ("刘洋", {"pension": 2})
    status, listed = admin(served, "GET", "/api/admin/agents")
    assert status == 200 and isinstance(listed, dict)
    assert [a["id"] for a in listed["agents"]] == ["1001", "1002", "1003"]
    assert admin(served, "PUT", "/api/admin/agents/1003", {"team": "二组", "chat_capacity": 2}) == (
        200,
        {"ok": True, "agent": "1003"},
    )
    assert (acd.agents["1003"].team, acd.agents["1003"].chat_capacity) == ("二组", 2)
    assert admin(served, "DELETE", "/api/admin/agents/1003") == (200, {"ok": True, "agent": "1003"})
    assert "1003" not in acd.agents


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"id": "12", "name": "短"}, "工号须为 3–6 位数字 (the agent id is 3–6 digits)"),
        ({"id": "１００５", "name": "全角"}, "工号须为 3–6 位数字 (the agent id is 3–6 digits)"),
        ({"id": 1005, "name": "数字"}, "工号须为 3–6 位数字 (the agent id is 3–6 digits)"),
        ({"id": "1005", "name": "多", "salary": 1}, "未知字段 (unknown fields): salary"),
        ({"id": "1005", "name": None}, "name 不能为 null (name may not be null; leave the field out to keep it)"),
        (
            {"id": "1005", "name": "空", "skills": {"pension": None}},
            "skills.pension 不能为 null (skills.pension may not be null; leave the field out to keep it)",
        ),
    ],
)
def test_a_bad_agent_is_a_400_and_is_not_created(served: Served, body: dict[str, object], error: str) -> None:
    assert admin(served, "POST", "/api/admin/agents", body) == (400, {"error": error})
    assert "1005" not in served.controller.acd.agents


def test_a_queue_change_is_taken_by_the_running_acd_and_bad_values_refused(served: Served) -> None:
    acd = served.controller.acd
    assert admin(served, "PUT", "/api/admin/queues/general", {"wrapup": 12, "strategy": "round_robin"}) == (
        200,
        {"ok": True, "queue": "general"},
    )
    assert (acd.queues["general"].wrapup_s, acd.queues["general"].strategy) == (12, "round_robin")
    status, listed = admin(served, "GET", "/api/admin/queues")
    assert status == 200 and isinstance(listed, dict)
    general = next(q for q in listed["queues"] if q["name"] == "general")
    assert (general["wrapup"], general["strategy"]) == (12, "round_robin")
    status, answer = admin(served, "PUT", "/api/admin/queues/general", {"strategy": "random"})
    assert status == 400 and isinstance(answer, dict) and "strategy" in answer["error"]
    assert admin(served, "PUT", "/api/admin/queues/general", {"colour": "red"}) == (
        400,
        {"error": "未知字段 (unknown fields): colour"},
    )
    assert acd.queues["general"].strategy == "round_robin"


def test_a_sip_password_for_an_unknown_agent_is_a_404(served: Served) -> None:
    assert admin(served, "POST", "/api/admin/agents/9999/sip-password", {}) == (
        404,
        {"error": "没有这个坐席 (no agent 9999)"},
    )
    status, answer = admin(served, "POST", "/api/admin/agents/1002/sip-password", {})
    assert status == 200 and isinstance(answer, dict) and (answer["agent"], answer["username"]) == ("1002", "1002")


def test_only_an_admin_may_edit(served: Served) -> None:
    for role in ("agent", "supervisor", "reviewer", "auditor"):
        status, _ = served.client(role).json("PUT", "/api/admin/queues/general", {"wrapup": 1})
        assert status == 403, role
    assert served.controller.acd.queues["general"].wrapup_s != 1
