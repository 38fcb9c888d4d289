"""Which kill cut which send: the rule that explains an `interrupted` message, or refuses to.

The sender sends one message at a time: it claims the id in the ledger, hands it to
WhatsApp, records the outcome, and only then claims the next. So a kill can cut at most
the send in flight, and that send is the last claim its process made before the kill.
An interrupted id is explained only by the first kill (of its holder, or a NATS outage,
which cuts every sender) after its claim, and only when no other id of that holder was
claimed in between. "Any kill within ten seconds" would explain everything when kills
come every second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CLOCK_SLACK_SECONDS = 0.05
"""A claim's time is the sender's clock, a kill's the test's: same host, a little slack."""
DEFAULT_TARGET = "sender"
ANY_TARGET = "*"
"""A kill of every sender at once (a NATS outage cuts whatever send is in flight)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """When an id was claimed in the ledger, and by which process (the kill target's name)."""

    at: float
    holder: str = DEFAULT_TARGET


@dataclass(frozen=True, slots=True)
class Kill:
    """A disruption that can cut a send in flight: SIGKILL of a sender, a NATS outage."""

    at: float
    target: str = DEFAULT_TARGET


def as_claims(claims: Mapping[str, float | Claim]) -> dict[str, Claim]:
    """Plain times are claims of the one sender."""
    return {i: c if isinstance(c, Claim) else Claim(float(c)) for i, c in claims.items()}


def as_kills(kills: Iterable[float | Kill]) -> list[Kill]:
    """In time order; plain times are kills of the one sender."""
    made = (k if isinstance(k, Kill) else Kill(float(k)) for k in kills)
    return sorted(made, key=lambda k: k.at)


def unexplained(ident: str, claims: dict[str, Claim], kills: list[Kill]) -> str | None:
    """Why no kill explains `ident` being interrupted (None: its own kill does)."""
    claim = claims.get(ident)
    if claim is None:
        return "the ledger holds no claim for it"
    cut = first_kill_after(claim, kills)
    if cut is None:
        return f"no kill of {claim.holder} came after its claim"
    later = [
        other
        for other, c in claims.items()
        if other != ident and c.holder == claim.holder and claim.at < c.at < cut.at
    ]
    if later:
        return (
            f"{later[0]} was claimed after it and before the first kill of {cut.target} "
            f"after its claim ({cut.at - claim.at:.3f}s later)"
        )
    return None


def first_kill_after(claim: Claim, kills: list[Kill]) -> Kill | None:
    for kill in kills:
        if kill.target in (claim.holder, ANY_TARGET) and kill.at >= claim.at - CLOCK_SLACK_SECONDS:
            return kill
    return None
