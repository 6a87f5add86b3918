"""Who may call what, checked against a table written once, independently of the code (issue 11
item 9; P2).

The table is the one in docs/web-api.md ("Who may call what"). test_api.py's walk reads each
handler's own ``roles`` attribute, so a handler that lets in one role too many passes there; here
the handlers' roles play no part: every route of the running product (tests/web/served.py, where
every handler is reached and does its real work) must answer

* 401 without a session (unless the table says ``anyone``),
* 403 to each role the table does not list for it,
* neither 401 nor 403 (nor a 5xx) to each role it does list,

and the routes of the app and the rows of the table must be the same set.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.hotline import REPO
from tests.harness.loop import LoopThread
from tests.web.served import ROLES, Served, serve

TABLE_HEADING = "## Who may call what"
ANYONE = "anyone"
_ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*$")

Table = dict[tuple[str, str], frozenset[str]]


def role_table(page: Path = REPO / "docs" / "web-api.md") -> Table:
    """``{(method, path): roles}`` from the page's role table (``anyone`` → the empty set)."""
    text = page.read_text(encoding="utf-8")
    assert TABLE_HEADING in text, f"{page} has no role table ({TABLE_HEADING!r})"
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    table: Table = {}
    for line in section.splitlines():
        found = _ROW.match(line)
        if found is None:
            continue
        method, path, cell = found.groups()
        roles = frozenset() if cell == ANYONE else frozenset(r.strip() for r in cell.split(","))
        assert roles <= set(ROLES), f"{method} {path}: unknown role in {cell!r}"
        assert (method, path) not in table, f"{method} {path} is in the table twice"
        table[(method, path)] = roles
    return table


def app_routes(served: Served) -> set[tuple[str, str]]:
    """Every ``/api`` route of the running app (HEAD is aiohttp's twin of each GET)."""
    routes = set()
    for route in served.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter") or "")
        if path.startswith("/api") and route.method != "HEAD":
            routes.add((route.method, path))
    return routes


def filled(served: Served, path: str) -> str:
    """The path with harmless values: agents and names that do not exist (nothing is removed
    or overwritten), the one recording, actions the agent's state refuses."""
    values = {
        "{id}": str(served.recording_id) if path.startswith("/api/recordings") else "999999",
        "{agent}": "9999",
        "{name}": "main" if path.startswith("/api/admin/flows") else "no_such_name",
        "{action}": {"/api/agent/call/{action}": "hold", "/api/agent/wrapup/{action}": "finish"}.get(path, "pause"),
    }
    for key, value in values.items():
        path = path.replace(key, value)
    assert "{" not in path, path
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    loop = LoopThread()
    try:
        with serve(tmp_path_factory.mktemp("roles") / "home", loop) as running:
            yield running
    finally:
        loop.close()


def test_the_table_parses_and_names_each_role() -> None:
    table = role_table()
    assert len(table) == 36
    assert table[("GET", "/api/recordings/{id}/download")] == {"auditor"}
    assert table[("POST", "/api/logout")] == frozenset()
    assert {role for roles in table.values() for role in roles} == set(ROLES)


def test_every_route_is_in_the_table_and_every_row_is_a_route(served: Served) -> None:
    table, routes = set(role_table()), app_routes(served)
    assert sorted(routes - table) == [], "routes the table does not list (add them to docs/web-api.md)"
    assert sorted(table - routes) == [], "rows of the table the app does not serve"


def test_every_route_lets_in_exactly_the_roles_of_the_table(served: Served) -> None:
    table = role_table()
    anonymous = served.client()
    wrong: list[str] = []
    for (method, path), allowed in sorted(table.items()):
        url = filled(served, path)
        body = {"reason": "x"} if method in ("POST", "PUT", "PATCH", "DELETE") else None
        status, _ = anonymous.request(method, url, body)
        if allowed and status != 401:
            wrong.append(f"{method} {path}: no session → {status}, not 401")
        if not allowed:
            if status in (401, 403) or status >= 500:
                wrong.append(f"{method} {path}: anyone may call it, but no session → {status}")
            continue  # logging out with a role's session would end it for the rest of the test
        for role in ROLES:
            status, _ = served.client(role).request(method, url, body)
            if role not in allowed and status != 403:
                wrong.append(f"{method} {path}: {role} is not in the table → {status}, not 403")
            if role in allowed and (status in (401, 403) or status >= 500):
                wrong.append(f"{method} {path}: {role} is in the table → {status}")
    assert wrong == []


def test_the_openapi_document_publishes_the_table(served: Served) -> None:
    """``x-roles`` in /api/openapi.json (read by API clients) says what the table says."""
    status, doc = served.client().json("GET", "/api/openapi.json")
    assert status == 200
    published = {
        (method.upper(), path): frozenset(op.get("x-roles", ()))
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    table = {(m, re.sub(r"\{([^}:]+)(?::[^}]*)?\}", r"{\1}", p)): roles for (m, p), roles in role_table().items()}
    assert published == table
