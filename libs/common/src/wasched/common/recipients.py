"""Recipients: phone numbers in any common spelling, or WhatsApp JIDs."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"
_JID = re.compile(
    r"^(?P<user>[0-9]+(?:-[0-9]+)?)(?::[0-9]+)?@(?P<server>s\.whatsapp\.net|g\.us|lid)$"
)


class InvalidRecipient(ValueError):
    """`to` cannot be turned into a WhatsApp address; the text says why."""


@dataclass(frozen=True, slots=True)
class Recipient:
    user: str
    server: str

    @property
    def jid(self) -> str:
        return f"{self.user}@{self.server}"

    @property
    def is_group(self) -> bool:
        return self.server == GROUP_SERVER

    @property
    def e164(self) -> str | None:
        return f"+{self.user}" if self.server == USER_SERVER else None


def parse_recipient(to: object) -> Recipient:
    """Normalise `447957189696`, `+44 7957 189696`, `00447957189696` or a JID."""
    if not isinstance(to, str) or not to.strip():
        raise InvalidRecipient("recipient is empty")
    return _parse(to.strip())


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Recipient:
    """Cached: a schedule names the same contacts again and again, and phonenumbers'
    parsing costs ~30 µs a number. Small on purpose: the poller decides on a message
    again only when it changed or its time came (`index.PlanIndex`), so a big cache
    would only hold memory (a 65k-entry one: ~20 MB, and 100k distinct numbers thrashed it
    on every poll).

    Only the number's length is checked (`is_possible_number`), not its range: range
    metadata lags real allocations, and WhatsApp's `is_on_whatsapp` is the authority.
    phonenumbers is imported here, not at the top: services that only `mask` numbers
    (health) save its ~7 MB."""
    import phonenumbers

    if "@" in text:
        match = _JID.match(text)
        if not match:
            raise InvalidRecipient(
                f"not a WhatsApp address: {mask(text)} (expected digits@s.whatsapp.net or id@g.us)"
            )
        return Recipient(match["user"], match["server"])
    compact = re.sub(r"[\s().\-]", "", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not compact.startswith("+"):
        compact = "+" + compact
    if not re.fullmatch(r"\+[0-9]{6,17}", compact):
        raise InvalidRecipient(f"not a phone number: {mask(text)} (use international digits)")
    try:
        number = phonenumbers.parse(compact, None)
    except phonenumbers.NumberParseException as exc:
        reason = _parse_reasons().get(exc.error_type, "unreadable")
        raise InvalidRecipient(f"not a phone number: {mask(text)} ({reason})") from None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:  # "local only" is no WhatsApp id
        raise InvalidRecipient(
            f"invalid phone number {mask(text)}: wrong length for country code "
            f"+{number.country_code}"
        )
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Recipient(e164.removeprefix("+"), USER_SERVER)


def _parse_reasons() -> dict[int, str]:
    from phonenumbers import NumberParseException as E

    return {
        E.INVALID_COUNTRY_CODE: "unknown country code; start with it, e.g. 44 for the UK",
        E.TOO_SHORT_NSN: "too short",
        E.TOO_SHORT_AFTER_IDD: "too short",
        E.TOO_LONG: "too long",
        E.NOT_A_NUMBER: "not a number",
    }


def mask(to: str) -> str:
    """Hide all but the last 4 digits, for logs and the status page."""
    digits = re.sub(r"\D", "", to.split("@", 1)[0])
    if len(digits) <= 4:
        return "…" + digits
    return "…" + digits[-4:]
