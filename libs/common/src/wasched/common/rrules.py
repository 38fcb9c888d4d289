"""Reading a `repeat` value: an RFC 5545 RRULE, checked part by part, evaluated by dateutil.

dateutil evaluates the rule; this module only makes bad input fail with a message
that names the part at fault. dateutil accepts some values that can never match
(`BYMONTH=13`, `BYMONTHDAY=40`) and then searches up to year 9999 for an
occurrence, so ranges and the RFC's "MUST NOT" combinations are checked first.

`COUNT` and `UNTIL` are taken out of the rule and applied by the series itself
(`recurrence.py`): the first occurrence is always `scheduledTime` (even when the
rule would not produce it), and `UNTIL` may be an instant, a wall time or a date.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.rrule import DAILY, HOURLY, MINUTELY, MONTHLY, SECONDLY, WEEKLY, YEARLY, rrule
from dateutil.rrule import rrulestr as _rrulestr

MAX_RULE_CHARS = 500

FREQS = {
    "YEARLY": YEARLY,
    "MONTHLY": MONTHLY,
    "WEEKLY": WEEKLY,
    "DAILY": DAILY,
    "HOURLY": HOURLY,
    "MINUTELY": MINUTELY,
    "SECONDLY": SECONDLY,
}
_STEP_UNITS = {
    WEEKLY: timedelta(weeks=1),
    DAILY: timedelta(days=1),
    HOURLY: timedelta(hours=1),
    MINUTELY: timedelta(minutes=1),
    SECONDLY: timedelta(seconds=1),
}
_RANGES = {
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
"""name → (lowest, highest, negative values allowed)."""
_DATE_PARTS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY")
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_UNTIL = re.compile(r"(\d{8})(?:T(\d{6})(Z?))?")
_CRON = re.compile(r"(\S+\s+){4,5}\S+")
_OTHER_LINES = ("DTSTART", "EXDATE", "RDATE", "EXRULE")


class RuleError(ValueError):
    """A `repeat` that cannot be used; names the part at fault when there is one."""

    def __init__(self, reason: str, part: str | None = None) -> None:
        super().__init__(f"{part}: {reason}" if part else reason)
        self.part = part
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Until:
    """The inclusive end of a series: an instant (`...Z`), or a wall time in the series'
    zone (`UNTIL=20271231T090000`; a date means the end of that day)."""

    instant: datetime | None = None
    wall: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    """Normalised: upper case, no `RRULE:` prefix."""
    freq: int
    count: int | None
    until: Until | None
    step: timedelta | None
    """The fixed wall-clock distance between occurrences, for rules without BYxxx parts
    (lets a series skip ahead instead of iterating from its first occurrence)."""
    _core: str = field(repr=False)

    def build(self, dtstart: datetime, *, cache: bool = False) -> rrule:
        """The dateutil rule (without COUNT/UNTIL) from a naive wall `dtstart`; with `cache`,
        it keeps what it generated, so iterating it again is a list walk."""
        built: Any = _rrulestr(self._core, dtstart=dtstart, cache=cache)
        return built


def parse_rule(value: object) -> Rule:
    """Check a `repeat` value and return the rule, or raise `RuleError`."""
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"expected an RRULE such as FREQ=WEEKLY;BYDAY=MO, got {value!r}")
    text = value.strip()
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"the rule is {len(text)} characters; at most {MAX_RULE_CHARS}")
    upper = text.upper()
    for name in _OTHER_LINES:
        if re.search(rf"(^|[\s;]){name}[:;=]", upper):
            raise RuleError(_other_line(name), name)
    if "=" not in upper and _CRON.fullmatch(text):
        raise RuleError(
            "this looks like a cron expression; repeat takes an RFC 5545 RRULE, "
            "e.g. FREQ=WEEKLY;BYDAY=MO (the time of day comes from scheduledTime)"
        )
    parts = _split(upper.removeprefix("RRULE:"))
    freq = _freq(parts)
    for name, raw in parts.items():
        _check_part(name, raw, freq)
    _check_combinations(parts, freq)
    count = _positive(parts, "COUNT")
    until = _until(parts["UNTIL"]) if "UNTIL" in parts else None
    if count is not None and until is not None:
        raise RuleError("COUNT and UNTIL cannot be used together (RFC 5545)", "COUNT")
    core = ";".join(f"{k}={v}" for k, v in parts.items() if k not in {"COUNT", "UNTIL"})
    step = None
    if freq in _STEP_UNITS and not any(name.startswith("BY") for name in parts):
        step = _STEP_UNITS[freq] * (_positive(parts, "INTERVAL") or 1)
    try:
        _rrulestr(core, dtstart=datetime(2000, 1, 1))
    except ValueError as exc:
        raise RuleError(str(exc)) from None
    return Rule(
        text=";".join(f"{k}={v}" for k, v in parts.items()),
        freq=freq,
        count=count,
        until=until,
        step=step,
        _core=core,
    )


def check_occurs(rule: Rule, wall_first: datetime) -> None:
    """Raise `RuleError` when the rule has no occurrence after the first one (e.g. the 30th
    of February), rather than letting every evaluation search up to year 9999."""
    probe = rule.build(wall_first)
    if rule.freq not in {YEARLY, MONTHLY} and any(p in rule.text for p in _DATE_PARTS):
        # Days first, one year per step: fast even when no day ever matches.
        days = [f"{k}={v}" for k, v in _split(rule.text).items() if k in _DATE_PARTS]
        yearly = _rrulestr("FREQ=YEARLY;" + ";".join(days), dtstart=wall_first)
        if yearly.after(wall_first) is None:
            raise RuleError("the rule matches no day after the first occurrence")
    if probe.after(wall_first) is None:
        raise RuleError("the rule has no occurrence after the first one (scheduledTime)")


def _split(text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for piece in text.split(";"):
        if not piece.strip():
            continue
        name, sep, raw = piece.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name:
            raise RuleError(f"expected NAME=VALUE, got {piece.strip()!r}")
        if name in parts:
            raise RuleError("given twice", name)
        parts[name] = raw
    return parts


def _freq(parts: dict[str, str]) -> int:
    if "FREQ" not in parts:
        raise RuleError("FREQ is required, e.g. FREQ=WEEKLY or FREQ=YEARLY")
    freq = FREQS.get(parts["FREQ"])
    if freq is None:
        raise RuleError(f"{parts['FREQ']!r} is not one of {', '.join(FREQS)}", "FREQ")
    return freq


def _check_part(name: str, raw: str, freq: int) -> None:
    if name in {"FREQ", "UNTIL"}:
        return
    if name in {"COUNT", "INTERVAL"}:
        _positive({name: raw}, name)
    elif name == "WKST":
        if raw not in _WEEKDAYS:
            raise RuleError(f"expected one of {', '.join(_WEEKDAYS)}, got {raw!r}", name)
    elif name == "BYDAY":
        _byday(raw, freq)
    elif name in _RANGES:
        _int_list(name, raw, *_RANGES[name])
    else:
        known = "FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY, "
        raise RuleError(
            f"not supported (supported: {known}BYWEEKNO, BYSETPOS, BYHOUR, BYMINUTE, "
            "BYSECOND, WKST)",
            name,
        )


def _byday(raw: str, freq: int) -> None:
    for item in raw.split(","):
        match = _BYDAY.fullmatch(item.strip())
        if not match:
            raise RuleError(f"expected weekdays like MO,WE or 1MO, -1FR; got {item!r}", "BYDAY")
        if match[1] is None:
            continue
        if freq not in {MONTHLY, YEARLY}:
            raise RuleError(
                f"{item!r}: a numbered weekday needs FREQ=MONTHLY or FREQ=YEARLY", "BYDAY"
            )
        limit = 5 if freq == MONTHLY else 53
        if not 1 <= abs(int(match[1])) <= limit:
            raise RuleError(f"{item!r}: the number must be 1 to {limit} or -1 to -{limit}", "BYDAY")


def _int_list(name: str, raw: str, low: int, high: int, signed: bool) -> None:
    for item in raw.split(","):
        try:
            number = int(item)
        except ValueError:
            raise RuleError(f"expected whole numbers, got {item!r}", name) from None
        ok = low <= number <= high or (signed and -high <= number <= -low)
        if not ok:
            span = f"{low} to {high}" + (f" or -{low} to -{high}" if signed else "")
            raise RuleError(f"{number} is out of range ({span})", name)


def _check_combinations(parts: dict[str, str], freq: int) -> None:
    """RFC 5545's "MUST NOT" rules, plus the 30th-of-February kind of rule."""
    if "BYWEEKNO" in parts and freq != YEARLY:
        raise RuleError("only with FREQ=YEARLY", "BYWEEKNO")
    if "BYYEARDAY" in parts and freq in {DAILY, WEEKLY, MONTHLY}:
        raise RuleError("not with FREQ=DAILY, WEEKLY or MONTHLY", "BYYEARDAY")
    if "BYMONTHDAY" in parts and freq == WEEKLY:
        raise RuleError("not with FREQ=WEEKLY", "BYMONTHDAY")
    if "BYSETPOS" in parts:
        if freq not in {MONTHLY, YEARLY}:
            raise RuleError("supported with FREQ=MONTHLY or FREQ=YEARLY only", "BYSETPOS")
        if not any(k.startswith("BY") and k != "BYSETPOS" for k in parts):
            raise RuleError("needs another BYxxx part to choose from", "BYSETPOS")
    if "BYMONTH" in parts and "BYMONTHDAY" in parts:
        months = [int(m) for m in parts["BYMONTH"].split(",")]
        days = [int(d) for d in parts["BYMONTHDAY"].split(",")]
        longest = {m: calendar.monthrange(2000, m)[1] for m in months}  # 2000: a leap year
        if not any(abs(d) <= longest[m] for m in months for d in days):
            raise RuleError(
                f"{parts['BYMONTHDAY']} never falls in BYMONTH={parts['BYMONTH']}",
                "BYMONTHDAY",
            )


def _positive(parts: dict[str, str], name: str) -> int | None:
    if name not in parts:
        return None
    raw = parts[name]
    if not raw.isdigit() or int(raw) < 1:
        raise RuleError(f"expected a whole number of at least 1, got {raw!r}", name)
    return int(raw)


def _until(raw: str) -> Until:
    match = _UNTIL.fullmatch(raw)
    if not match:
        raise RuleError(
            f"expected 20271231, 20271231T090000 (wall time) or 20271231T090000Z, got {raw!r}",
            "UNTIL",
        )
    try:
        if match[2] is None:
            day = datetime.strptime(match[1], "%Y%m%d")
            return Until(wall=day.replace(hour=23, minute=59, second=59, microsecond=999_999))
        moment = datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise RuleError(f"{raw!r} is not a valid date: {exc}", "UNTIL") from None
    return Until(instant=moment.replace(tzinfo=UTC)) if match[3] else Until(wall=moment)


def _other_line(name: str) -> str:
    if name == "DTSTART":
        return "not allowed inside repeat: the first occurrence is scheduledTime"
    return "not supported: to leave out single occurrences, list them in skip"
