"""``{{variable}}`` templating with system variables in the agent's time zone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def system_variables(timezone: str, now: datetime | None = None) -> dict[str, str]:
    """``system_time`` and friends, as the agent's local clock shows them."""
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
    return {
        "system_time": local.strftime("%I:%M %p").lstrip("0"),
        "system_date": local.strftime("%B %d").replace(" 0", " "),
        "system_year": str(local.year),
        "system_weekday": local.strftime("%A"),
        "system_conversation_timezone": timezone,
        "system_iso_datetime": local.isoformat(timespec="seconds"),
    }


def render(template: str, variables: Mapping[str, str]) -> str:
    """Replace each ``{{name}}`` with its value; unknown names are left as written."""
    return _VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), template)
