"""Business calendars and business time: shared by the IVR, tickets' SLA and chat (issue 12 item 6).

A calendar (:mod:`cc_core.calendars.calendar`) says whether the hotline is open, closed, on a
public holiday or in an emergency at a moment; business time (:mod:`cc_core.calendars.business`)
counts its opening hours between two moments, for tickets' SLA; the local day
(:mod:`cc_core.calendars.days`) turns a moment into the hotline's calendar day in the product's
time zone (the ``timezone`` setting). All are pure: nothing here reads the clock, a database or the network, so any
package may use them — they lived in ``ivr/`` before, where tickets and chat could not reach
them without importing the IVR.
"""

from cc_core.calendars.business import add_business_time, business_seconds, open_periods
from cc_core.calendars.calendar import (
    MAX_FILE_BYTES,
    Calendar,
    CalendarError,
    DateSpan,
    Emergency,
    Interval,
    State,
    load_calendar,
    load_calendars,
)

__all__ = [
    "MAX_FILE_BYTES",
    "Calendar",
    "CalendarError",
    "DateSpan",
    "Emergency",
    "Interval",
    "State",
    "add_business_time",
    "business_seconds",
    "load_calendar",
    "load_calendars",
    "open_periods",
]
