"""`wasched status`: the health service's `/health` checks, for people and for HEALTHCHECKs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class StatusError(RuntimeError):
    """The health service could not be asked."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


_OK_WORDS = {"ok", "pass", "passing", "healthy", "up", "true"}
_SKIP = {"ok", "pass", "passed", "status", "healthy", "name"}


def _is_ok(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        for key in ("ok", "pass", "passed", "healthy", "status"):
            if key in value:
                return _is_ok(value[key])
        return False
    return str(value).strip().lower() in _OK_WORDS


def _detail(value: object) -> str:
    if not isinstance(value, dict):
        return "" if isinstance(value, bool) else str(value)
    for key in ("detail", "message", "reason", "error"):
        if value.get(key):
            return str(value[key])
    parts = [f"{k}={v}" for k, v in value.items() if k not in _SKIP and v is not None]
    return ", ".join(parts)


def parse_checks(body: dict[str, Any]) -> list[Check]:
    """Read `checks` as {name: {ok, ...}} or [{name, ok, ...}] (both forms are accepted)."""
    raw = body.get("checks", {})
    items: list[tuple[str, object]]
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [(str(c.get("name", "?")), c) for c in raw if isinstance(c, dict)]
    else:
        items = []
    return [Check(name, _is_ok(value), _detail(value)) for name, value in items]


def render(checks: list[Check], healthy: bool) -> str:
    head = "wasched is healthy" if healthy else "wasched is NOT healthy"
    lines = [head]
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        lines.append(f"  {mark} {check.name}" + (f": {check.detail}" if check.detail else ""))
    return "\n".join(lines)


def summary(checks: list[Check], healthy: bool) -> str:
    """One line for `--check`."""
    if healthy:
        return "healthy"
    failing = [c.name for c in checks if not c.ok] or ["unknown"]
    return "unhealthy: " + ", ".join(failing)


def fetch(url: str, token: str | None, timeout: float = 5.0) -> tuple[bool, dict[str, Any]]:
    """(healthy, body) from `/health`: 200 is healthy, 503 is not, anything else is an error."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return True, _json(response.read(), url)
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return False, _json(exc.read(), url)
        raise StatusError(f"{url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusError(
            f"cannot reach the health service at {url} ({reason}): is wasched running?"
        ) from None


def _json(data: bytes, url: str) -> dict[str, Any]:
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        raise StatusError(f"{url} did not answer JSON") from None
    return body if isinstance(body, dict) else {"checks": body}
