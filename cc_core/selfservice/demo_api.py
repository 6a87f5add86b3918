"""A small demo of the business system the default flow queries (T8), so ``hotline up`` works
out of the box: pension-payment and contribution status by ID-card number.

The answers are invented but stable (derived from a hash of the ID number); a real deployment
points the flow's ``http.url`` at the bureau's system instead. Bound to loopback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import date

from aiohttp import web

from cc_core.ivr.checks import check_id_card


def _seed(id_number: str) -> int:
    return int(hashlib.sha256(id_number.encode()).hexdigest()[:8], 16)


def pension_status(id_number: str, today: date) -> dict[str, str]:
    """This month's pension payment of a (fictional) retiree."""
    seed = _seed(id_number)
    amount = 2000 + seed % 4000 + (seed % 100) / 100
    return {
        "month": str(today.month),
        "paid_on": f"{today.year}年{today.month}月15日",
        "amount": f"{amount:.2f}",
        "status": "已发放" if today.day >= 15 else "待发放",
    }


def contribution_status(id_number: str, today: date) -> dict[str, str]:
    """Contribution months and the last paid month of a (fictional) insured person."""
    seed = _seed(id_number)
    last = date(today.year, today.month, 1)
    return {
        "months": str(12 + seed % 300),
        "last_month": f"{last.year}年{last.month}月",
        "status": "正常缴费" if seed % 7 else "暂停缴费",
    }


Lookup = Callable[[str, date], dict[str, str]]


def _handler(lookup: Lookup) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        id_number = check_id_card(request.query.get("id_number", ""))
        if id_number is None:
            return web.json_response({"error": "invalid id_number"}, status=400)
        return web.json_response(lookup(id_number, date.today()), dumps=_dumps)

    return handle


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def make_app() -> web.Application:
    """The demo business system: GET /api/pension/status and /api/contribution/status."""
    app = web.Application()
    app.router.add_get("/api/pension/status", _handler(pension_status))
    app.router.add_get("/api/contribution/status", _handler(contribution_status))
    return app
