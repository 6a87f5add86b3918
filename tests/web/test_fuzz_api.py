"""A fuzzer on the whole web API (issue 11 item 10; P2): schemathesis against /api/openapi.json
of a running server, with a session of each role and none.

The server is the product's whole route set with every handler reached (tests/web/served.py: the
real controller's ACD, views, flows and roster; the switch stood in for by an AMI that answers
Success). For every operation of the published document, schemathesis generates requests that
fit the document (positive) and, for the roles the operation lets in, requests that break it
(negative: wrong types, missing fields, values out of pattern). Every answer must

* not be a 5xx, whatever was sent;
* have a status, a content type and a body the document lists for that operation.

Bounded and deterministic: few examples per operation and role, ``derandomize=True`` (the same
examples every run), no example database, no deadline (a loaded 2-core machine is slow, not
wrong). The whole test takes well under three minutes.

Kept out, so the run does not undo itself: ``POST /api/logout`` is fuzzed only without a
session (with one it would end the session the rest of the run uses), and ``DELETE
/api/admin/agents/{agent}`` never removes agent 1001 (the agent account's own).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cc_core.web.openapi import OPERATIONS
from cc_core.web.security import CSRF_HEADER, SESSION_COOKIE
from tests.harness.loop import LoopThread
from tests.web.served import AGENT, ROLES, Served, serve

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Examples per operation and caller: for a role it lets in (fitting the document, fitting it with
# path ids that exist, breaking it), for one it refuses, and without a session.
ALLOWED, KNOWN, BROKEN, REFUSED, ANONYMOUS = 40, 20, 35, 3, 5


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    loop = LoopThread()
    try:
        with serve(tmp_path_factory.mktemp("fuzz") / "home", loop) as running:
            yield running
    finally:
        loop.close()


def _run(examples: int, strategy: st.SearchStrategy[Any], send: Callable[[Any], None]) -> str | None:
    """``examples`` cases of ``strategy`` through ``send``; the failure's text, or None."""

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        send(case)

    try:
        fuzz()
    except (Exception, BaseExceptionGroup) as exc:  # failed checks, with schemathesis's account of the case
        return f"{type(exc).__name__}: {exc}"
    return None


def known_ids(served: Served, path: str) -> dict[str, str]:
    """Path parameters naming things that exist, so handlers do their work past the look-up."""
    known = {
        "id": str(served.recording_id),
        "agent": AGENT,
        "name": "beijing" if "/calendars/" in path else "general" if "/queues/" in path else "main",
    }
    return {name: value for name, value in known.items() if "{" + name + "}" in path}


class Caller:
    """Sends a generated case with one role's session (or none) and checks the answer."""

    def __init__(self, served: Served, role: str | None, tally: Counter[str]) -> None:
        self.served, self.role, self.tally = served, role, tally
        self.http = requests.Session()
        token, csrf = served.sessions[role] if role is not None else ("", "")
        # The document's cookie scheme makes schemathesis generate a session cookie of its own:
        # the role's real one replaces it (none at all without a role).
        self.cookies = {SESSION_COOKIE: token} if role is not None else {}
        self.headers = {CSRF_HEADER: csrf} if role is not None else {}

    def send(self, case: Any) -> None:
        if (case.method, case.path, case.path_parameters) == ("DELETE", "/api/admin/agents/{agent}", {"agent": AGENT}):
            return  # the agent account's own agent stays
        case.headers = {**(case.headers or {}), **self.headers}
        case.cookies = dict(self.cookies)
        response = case.call(base_url=self.served.base_url, session=self.http, timeout=30)
        self.tally[f"{case.method} {case.path} {self.role or '-'} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)


@pytest.mark.timeout(240)  # the bound on the whole run (about a minute on an idle 2-core machine)
def test_no_input_gets_a_5xx_or_an_answer_the_document_does_not_list(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.base_url}/api/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    described = {(op.method.upper(), op.path) for op in operations}
    # Every route says what it takes and answers (cc_core/web/openapi.py's OPERATIONS), and
    # every one is fuzzed but the document itself (schemathesis leaves out the URL it loaded).
    assert described == set(OPERATIONS) - {("GET", "/api/openapi.json")}
    failures: list[str] = []
    tally: Counter[str] = Counter()
    for operation in operations:
        method, path = operation.method.upper(), operation.path
        allowed = operation.definition.raw.get("x-roles")
        callers: list[str | None] = [None]
        if allowed is not None and (method, path) != ("POST", "/api/logout"):
            callers += list(ROLES)
        for role in callers:
            caller = Caller(served, role, tally)
            if role is None or role in allowed:
                examples = ALLOWED if role is not None or allowed is None else ANONYMOUS
                plan = [("fitting", examples, operation.as_strategy())]
                known = known_ids(served, path)
                if known:
                    plan.append(("fitting, ids that exist", KNOWN, operation.as_strategy(path_parameters=known)))
                if operation.body or any(p.location in ("path", "query") for p in operation.iter_parameters()):
                    plan.append(("breaking", BROKEN, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)))
            else:
                plan = [("refused", REFUSED, operation.as_strategy())]
            for what, count, strategy in plan:
                failure = _run(count, strategy, caller.send)
                if failure is not None:
                    failures.append(f"{method} {path} as {role or 'no session'} ({what}):\n{failure}")
    answers = "\n".join(f"{key}: {n}" for key, n in sorted(tally.items()))
    assert failures == [], "\n\n".join([*failures, "Answers (operation, caller, status: how many):", answers])
    assert sum(tally.values()) >= 2500, answers
    # The handlers did their work, not only refuse: most operations answered 2xx to some
    # fitting request (not those whose success needs a call on the agent, a valid flow file or
    # a password: 27 of 35 on this code).
    succeeded = {key.rsplit(" ", 2)[0] for key in tally if key.rsplit(" ", 1)[1].startswith("2")}
    assert len(succeeded) >= 25, sorted(succeeded)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # Found by this fuzzer (issue 11): multipart without its boundary …
        ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=file\r\n\r\nabc\r\n--x--\r\n"),
        # … and a part whose header is not valid (raw bytes 0x7f and 0xf1 in the part's name).
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="\xc3\xa9\x7f\xf1"\r\n\r\n{}\r\n--x--\r\n',
        ),
    ],
)
def test_a_malformed_upload_is_a_400_with_the_reason(served: Served, content_type: str, body: bytes) -> None:
    status, answer = served.client("admin").json(
        "POST", "/api/admin/flows/upload", body, headers={"Content-Type": content_type}
    )
    assert status == 400 and answer["error"], (status, answer)
