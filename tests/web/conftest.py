"""Browser tests keep evidence of a failure: the report of each phase is put on the test item,
so a fixture can tell after the test whether it failed (see test_browser.evidence)."""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
