"""Phone numbers the controller hands to the switch to dial (issue 11 item 6).

A number becomes part of a dial string — ``Dial(PJSIP/<number>@<trunk>)`` in the dialplan, the
``Exten`` of an AMI ``Originate`` — where ``&`` dials a second destination, ``,`` starts the
application's options, ``/`` or ``@`` changes the channel or the trunk, and a line break ends an
AMI header. Caller IDs come from the From header of a carrier's INVITE, which anyone can write;
the dialplan's trunk context already cuts them down to digits and ``+``, and this check runs
again in the controller before every Originate, so a number that reached the database some other
way (an older version, an import, a bug) is refused rather than dialled.
"""

from __future__ import annotations

import re

# An optional leading '+', then 3 to 20 ASCII digits: every Chinese number (a 3-digit service
# number, 11-digit mobiles, landlines with area code, +86 …) and nothing else.
_DIALABLE = re.compile(r"\+?[0-9]{3,20}")


class BadNumber(ValueError):
    """A number that must not be dialled; the message says why (Chinese first)."""


def is_dialable(number: str) -> bool:
    """Whether ``number`` may be dialled: ``+`` (only first) and 3 to 20 ASCII digits."""
    return _DIALABLE.fullmatch(number) is not None


def dialable(number: str) -> str:
    """``number`` if it may be dialled, else :class:`BadNumber` (its text is masked)."""
    if not is_dialable(number):
        shown = number if len(number) <= 4 else number[:2] + "…" + number[-2:]
        raise BadNumber(
            f"号码只能是 3–20 位数字，可带开头的 + (a number to dial is 3 to 20 digits, "
            f"with an optional leading '+'; got {shown!r}, {len(number)} characters)"
        )
    return number
