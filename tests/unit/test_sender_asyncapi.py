"""The sender's AsyncAPI document (`faststream docs gen --factory wasched.sender.app:docs_app`)."""

from __future__ import annotations

from typing import Any

from wasched.sender.app import docs_app


def test_asyncapi_documents_what_the_sender_consumes_and_publishes() -> None:
    spec: dict[str, Any] = docs_app().schema.to_specification().to_jsonable()
    addresses = {channel["address"] for channel in spec["channels"].values()}
    assert {
        "wasched.due",
        "wasched.send",
        "wasched.pair",
        "wasched.outcome",
        "wasched.receipt",
        "wasched.status.sender",
        "wasched.heartbeat.sender",
    } <= addresses
    schemas = spec["components"]["schemas"]
    assert {"DueMessage", "SendRequest", "Outcome", "Receipt", "SenderStatus"} <= set(schemas)
    assert "scheduledTime" in schemas["DueMessage"]["properties"], "camelCase, as on the wire"
