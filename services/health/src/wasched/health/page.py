"""The status page: one server-rendered HTML document that refreshes itself.

It can show a WhatsApp linking QR code, so the web side guards it with
`HEALTH_TOKEN`. Phone numbers appear only masked; every value is escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from html import escape

import segno

from wasched.common.clock import format_display, parse_utc
from wasched.common.events import Outcome, SenderStatus
from wasched.common.recipients import mask
from wasched.common.settings import Settings
from wasched.health.checks import SENDER_STALE_SECONDS, CheckResult, healthy
from wasched.health.state import LiveState, age, number

REFRESH_SECONDS = 5
_DIGIT_RUN = re.compile(r"\+?\d(?: ?\d){6,}")
_GOOD, _WAIT = {"connected"}, {"starting", "pairing", "connecting"}


def scrub(text: str) -> str:
    """Mask anything that looks like a phone number inside free text (error reasons)."""
    return _DIGIT_RUN.sub(lambda match: mask(match.group()), text)


def qr_svg(content: str) -> str:
    """Inline SVG (scales with CSS, dark on white so it scans in dark mode too)."""
    code = segno.make_qr(content)
    return code.svg_inline(
        scale=1, border=4, omitsize=True, dark="#000", light="#fff", svgclass="qr"
    )


def render_page(
    state: LiveState, results: list[CheckResult], now: datetime, settings: Settings, nats_up: bool
) -> str:
    live = state.status if state.status and age(state.status, now) <= SENDER_STALE_SECONDS else None
    title = live.event.state if live else "unknown"
    body = "\n".join(
        [
            _header(results, nats_up, settings),
            _whatsapp(state, live.event if live else None),
            _checks(results),
            _counts(state, settings),
            _series(state, settings),
            _recent(state.recent, settings),
            f"<footer>Updated {escape(format_display(now, settings.zone))} "
            f"({escape(settings.display_timezone)}); refreshes every {REFRESH_SECONDS} s.</footer>",
        ]
    )
    return _TEMPLATE.format(refresh=REFRESH_SECONDS, title=escape(title), css=_CSS, body=body)


def _header(results: list[CheckResult], nats_up: bool, settings: Settings) -> str:
    failing = [r for r in results if not r.ok]
    verdict = (
        '<span class="pill good">all checks pass</span>'
        if healthy(results)
        else f'<span class="pill bad">{len(failing)} of {len(results)} checks failing</span>'
    )
    nats = "" if nats_up else ' <span class="pill bad">not connected to NATS</span>'
    return f"<header><h1>wasched</h1>{verdict}{nats}</header>"


def _whatsapp(state: LiveState, status: SenderStatus | None) -> str:
    name = status.state if status else "unknown"
    tone = "good" if name in _GOOD else "wait" if name in _WAIT else "bad"
    rows = [f'<p><span id="state" class="state {tone}">{escape(name.replace("_", " "))}</span>']
    if status is None:
        rows.append(" no recent status from the sender")
    else:
        rows.append(f" via {escape(status.transport)}")
        if status.detail:
            rows.append(f" · {escape(scrub(status.detail[:300]))}")
        if status.until is not None:
            rows.append(f" · until {escape(status.until.isoformat())}")
    rows.append("</p>")
    if state.sender is not None:
        details = state.sender.event.details
        sent, flight = number(details, "sentSinceStart"), number(details, "inFlight")
        done = "sent since the sender started"
        if details.get("rehearsal") is True:  # counted nowhere else: they were not sent
            done = "rehearsed since the sender started (a rehearsal: nothing is recorded)"
        rows.append(f"<p class=muted>{_int(sent)} {done} · {_int(flight)} in flight</p>")
    if status is not None and status.state == "pairing":
        rows.append(_pairing(status))
    return f'<section id="whatsapp"><h2>WhatsApp</h2>{"".join(rows)}</section>'


def _pairing(status: SenderStatus) -> str:
    parts = ['<div class="pairing">']
    if status.qr:
        parts.append(
            f'<figure id="qr" aria-label="WhatsApp linking QR code">{qr_svg(status.qr)}</figure>'
        )
        parts.append(
            "<p>On the phone: WhatsApp → Settings → Linked devices → Link a device, "
            "then scan this code. It changes every few seconds; the page follows.</p>"
        )
    if status.pair_code:
        parts.append(
            f'<p>Or link with a phone number: enter the code <code id="pair-code">'
            f"{escape(status.pair_code)}</code> on the phone.</p>"
        )
    if not status.qr and not status.pair_code:
        parts.append("<p>Waiting for a QR code from the sender…</p>")
    parts.append("</div>")
    return "".join(parts)


def _checks(results: list[CheckResult]) -> str:
    items = "".join(
        f'<li class="{"good" if r.ok else "bad"}"><b>{escape(r.name.replace("_", " "))}</b> '
        f"{escape(scrub(r.detail))}</li>"
        for r in results
    )
    return f'<section id="checks"><h2>Health</h2><ul>{items}</ul></section>'


def _counts(state: LiveState, settings: Settings) -> str:
    details = state.poller.event.details if state.poller else {}
    last = details.get("lastSuccessAt")
    last_text = "—"
    if isinstance(last, str):
        try:
            last_text = format_display(parse_utc(last), settings.zone)
        except ValueError:
            last_text = "—"
    schedule = [
        ("pending", _int(number(details, "pending"))),
        ("overdue", _int(number(details, "overdue"))),
        ("oldest overdue", _seconds(number(details, "oldestOverdueSeconds"))),
        ("scheduled in NATS", _int(number(details, "scheduledInNats"))),
        ("ignored", _ignored(details.get("ignored"))),
        ("last successful poll", last_text),
        ("store writes", str(details.get("storeMode", "—"))),
    ]
    since = format_display(state.started_at, settings.zone)
    outcomes = [
        (key, str(state.counts.get(key, 0))) for key in ("sent", "failed", "expired", "cancelled")
    ]
    outcomes += [
        (kind, str(state.counts.get(f"receipt:{kind}", 0))) for kind in ("delivered", "read")
    ]
    return (
        '<section id="counts"><h2>Messages</h2>'
        f"{_dl('schedule', schedule)}"
        f"<h3>Counted by this health service since {escape(since)}</h3>{_dl('outcomes', outcomes)}</section>"
    )


def _series(state: LiveState, settings: Settings) -> str:
    """The next occurrence of the soonest repeating messages (the poller's heartbeat)."""
    reported = state.poller.event.details.get("series") if state.poller else None
    rows = []
    for item in reported if isinstance(reported, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        try:
            when = format_display(parse_utc(item.get("nextAt")), settings.zone)
        except ValueError:
            continue
        rows.append(f"<tr><td>{escape(when)}</td><td>{escape(item['id'][:60])}</td></tr>")
    if not rows:
        return ""
    return (
        '<section id="series"><h2>Next occurrences</h2><table>'
        "<thead><tr><th>next</th><th>repeating message</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _ignored(reported: object) -> str:
    """`2 (unknown status: 2)`: messages the poller leaves alone, by reason."""
    if not isinstance(reported, dict) or not reported:
        return "0"
    counts = {str(k): v for k, v in reported.items() if isinstance(v, int) and v}
    parts = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(counts.items()))
    return f"{sum(counts.values())} ({parts})" if parts else "0"


def _recent(recent: Iterable[Outcome], settings: Settings) -> str:
    outcomes = list(recent)
    if not outcomes:
        rows = '<tr><td colspan="5" class="muted">No outcomes yet.</td></tr>'
    else:
        rows = "".join(_outcome_row(o, settings) for o in outcomes)
    return (
        f'<section id="recent"><h2>Last {len(outcomes)} outcomes</h2><table>'
        "<thead><tr><th>time</th><th>id</th><th>to</th><th>status</th><th>reason</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _outcome_row(outcome: Outcome, settings: Settings) -> str:
    when = outcome.sent_at or outcome.at
    reason = outcome.error or (outcome.error_kind.value if outcome.error_kind else "")
    if outcome.lateness_seconds is not None and not reason:
        reason = f"{outcome.lateness_seconds:.1f} s after its time"
    cells = [
        format_display(when, settings.zone),
        outcome.id[:60],
        mask(outcome.to) if outcome.to else "—",
        outcome.status.value,
        scrub(reason[:300]),
    ]
    html = "".join(f"<td>{escape(cell)}</td>" for cell in cells)
    return f'<tr class="{escape(outcome.status.value)}">{html}</tr>'


def _dl(name: str, pairs: list[tuple[str, str]]) -> str:
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in pairs)
    return f'<dl class="{name}">{items}</dl>'


def _int(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} s"


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>wasched · {title}</title>
<style>{css}</style></head>
<body><main>
{body}
</main></body></html>
"""

_CSS = """
:root{color-scheme:light dark;--good:#1a7f37;--bad:#cf222e;--wait:#9a6700;--line:#8884}
body{font:15px/1.45 system-ui,sans-serif;margin:0;padding:1rem}
main{max-width:60rem;margin:auto}
header{display:flex;gap:.75rem;align-items:center;flex-wrap:wrap}
h1{font-size:1.4rem;margin:0 .5rem 0 0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
h3{font-size:.95rem;margin:1rem 0 .4rem}
.pill,.state{padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.good{--c:var(--good)}.bad{--c:var(--bad)}.wait{--c:var(--wait)}
.pill,.state{background:var(--c)}
ul{list-style:none;padding:0}li{padding:.2rem 0 .2rem 1.2rem;position:relative}
li::before{content:"";position:absolute;left:0;top:.6rem;width:.6rem;height:.6rem;border-radius:50%;background:var(--c)}
dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:.5rem;margin:0}
dl div{border:1px solid var(--line);border-radius:.4rem;padding:.4rem .6rem}
dt{font-size:.8rem;opacity:.75}dd{margin:0;font-size:1.15rem;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid var(--line);vertical-align:top}
tr.failed td:nth-child(4),tr.expired td:nth-child(4){color:var(--bad);font-weight:600}
.muted,footer{opacity:.7}footer{margin-top:1.5rem;font-size:.85rem}
#qr{margin:1rem 0;width:min(80vw,20rem)}#qr svg{display:block;width:100%;height:auto;shape-rendering:crispEdges}
code{font-size:1.3rem;letter-spacing:.15rem}
"""
