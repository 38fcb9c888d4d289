"""One message in hand: how far it got, what it may end in, and the parts it needs."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.kv import KeyValue

from wasched.common.events import Outcome
from wasched.common.ledger import Claim, interrupted_outcome
from wasched.sender.account import Account
from wasched.sender.content import Contents
from wasched.sender.inbound import Job
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.liveness import Liveness
from wasched.sender.lookups import Lookups
from wasched.sender.receipts import ReceiptIndex
from wasched.sender.records import Records
from wasched.sender.transport import Transport

RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Retry:
    """Nothing was handed to WhatsApp; let JetStream deliver it again later."""

    reason: str
    delay: float = RETRY_SECONDS


@dataclass(frozen=True, slots=True)
class Skip:
    """An out-of-date hand-over: ack it, send nothing, publish no outcome."""

    reason: str


Verdict = Outcome | Retry | Skip


@dataclass(slots=True)
class Attempt:
    """How far one message got, for a shutdown or an error that has to end it."""

    job: Job
    claim: Claim | None = None
    sending: bool = False
    """From the moment the transport is called: anything may have reached WhatsApp."""
    outcome: Outcome | None = None
    settled: bool = False
    jid: str | None = None


@dataclass
class Parts:
    """What the send path works with (built once by the runtime)."""

    kv: KeyValue
    records: Records
    liveness: Liveness
    lookups: Lookups
    account: Account
    index: ReceiptIndex
    transport: Transport
    lifecycle: Lifecycle
    contents: Contents


def interrupted(job: Job, version: str | None = None, said: str | None = None) -> Outcome:
    """`failed` / `interrupted` for this job, with what the client said if anything."""
    outcome = interrupted_outcome(job.id)
    error = f"{outcome.error} ({said})" if said else outcome.error
    return outcome.model_copy(
        update={"version": version or job.version, "error": error, "to": job.to}
    )
