"""The schedule store against real S3 servers (SeaweedFS and moto)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import boto3
import pytest

from tests.conftest import TEST_BUCKET, make_settings
from tests.support.s3proxy import B2LikeProxy
from wasched.cli.servers import S3Server, free_port
from wasched.common.document import Document, DocumentError, Patch, apply_patches
from wasched.common.settings import load_settings
from wasched.common.store import ScheduleStore, StoreAuthError, StoreUnavailable, open_store


def raw_client(server: S3Server):  # the "other writer": plain GET/PUT like the web UI
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )


def put_raw(server: S3Server, key: str, body: bytes) -> None:
    raw_client(server).put_object(Bucket=TEST_BUCKET, Key=key, Body=body)


def get_raw(server: S3Server, key: str) -> bytes:
    return raw_client(server).get_object(Bucket=TEST_BUCKET, Key=key)["Body"].read()


def doc_bytes(*ids: str, status: str = "pending") -> bytes:
    return json.dumps(
        {
            "messages": [
                {
                    "id": i,
                    "to": "447957189696",
                    "message": "hi",
                    "scheduledTime": "2030-01-01T00:00:00Z",
                    "status": status,
                }
                for i in ids
            ]
        }
    ).encode()


@pytest.fixture
async def store(s3: S3Server, prefix: str) -> AsyncIterator[ScheduleStore]:
    async with open_store(make_settings(s3, prefix)) as st:
        yield st


def mark_sent(key: str):
    def mutate(doc: Document) -> bool:
        return bool(apply_patches(doc, [Patch(key, {"status": "sent"})]))

    return mutate


async def test_missing_object_is_an_empty_schedule(store: ScheduleStore) -> None:
    snap = await store.load()
    assert snap.doc.messages == []
    assert not snap.exists


async def test_unchanged_object_costs_no_body(store: ScheduleStore, s3: S3Server) -> None:
    put_raw(s3, store.key, doc_bytes("a", "b"))
    first = await store.load()
    assert first.changed and len(first.doc.messages) == 2
    bodies, downloaded = store.stats.bodies_read, store.stats.bytes_downloaded
    for _ in range(3):
        again = await store.load()
        assert not again.changed
        assert [m["id"] for m in again.doc.messages] == ["a", "b"]
    assert store.stats.bodies_read == bodies
    assert store.stats.bytes_downloaded == downloaded
    assert store.stats.not_modified == 3
    put_raw(s3, store.key, doc_bytes("a", "b", "c"))
    changed = await store.load()
    assert changed.changed and len(changed.doc.messages) == 3


async def test_write_racing_an_external_write_keeps_both(
    store: ScheduleStore, s3: S3Server
) -> None:
    put_raw(s3, store.key, doc_bytes("a"))
    await store.detect_conditional_writes()
    assert store.mode == "conditional"
    raced = False

    def mutate(doc: Document) -> bool:
        nonlocal raced
        if not raced:  # another writer (the web UI) saves between our GET and our PUT
            raced = True
            put_raw(s3, store.key, doc_bytes("a", "from-web-ui"))
        return bool(apply_patches(doc, [Patch("a", {"status": "sent"})]))

    await store.update(mutate)
    stored = json.loads(get_raw(s3, store.key))
    assert {m["id"]: m["status"] for m in stored["messages"]} == {
        "a": "sent",
        "from-web-ui": "pending",
    }
    assert store.stats.conflicts == 1


async def test_stores_without_conditional_put_use_merge_mode(s3: S3Server, prefix: str) -> None:
    with B2LikeProxy(s3.endpoint) as proxy:
        settings = make_settings(s3, prefix).model_copy(update={"s3_endpoint": proxy.endpoint})
        async with open_store(settings) as store:
            assert await store.detect_conditional_writes() is False
            assert store.mode == "merge"
            put_raw(s3, store.key, doc_bytes("a"))
            await store.load()
            put_raw(s3, store.key, doc_bytes("a", "from-web-ui"))  # after our last read
            await store.update(mark_sent("a"))
        assert proxy.rejected == 1  # only the start-up probe tried a conditional PUT
    stored = json.loads(get_raw(s3, store.key))
    assert {m["id"]: m["status"] for m in stored["messages"]} == {
        "a": "sent",
        "from-web-ui": "pending",
    }


async def test_store_switches_to_merge_when_a_conditional_put_is_refused(
    s3: S3Server, prefix: str
) -> None:
    with B2LikeProxy(s3.endpoint) as proxy:
        settings = make_settings(s3, prefix).model_copy(update={"s3_endpoint": proxy.endpoint})
        async with open_store(settings) as store:  # no probe: assumes conditional
            put_raw(s3, store.key, doc_bytes("a"))
            await store.update(mark_sent("a"))
            assert store.mode == "merge"
    assert json.loads(get_raw(s3, store.key))["messages"][0]["status"] == "sent"


@pytest.mark.parametrize(
    "body", [b'{"messages": [{"id": "a",', b"not json at all", b'[{"id": "a"}]']
)
async def test_corrupt_document_is_never_overwritten(
    store: ScheduleStore, s3: S3Server, body: bytes
) -> None:
    put_raw(s3, store.key, body)
    with pytest.raises(DocumentError):
        await store.load()
    with pytest.raises(DocumentError):
        await store.update(mark_sent("a"))
    assert get_raw(s3, store.key) == body


async def test_creating_the_document_does_not_clobber_a_concurrent_create(
    store: ScheduleStore, s3: S3Server
) -> None:
    created = False

    def mutate(doc: Document) -> bool:
        nonlocal created
        if not created:
            created = True
            put_raw(s3, store.key, doc_bytes("from-web-ui"))
        doc.messages.append({"id": "ours", "status": "pending"})
        return True

    await store.update(mutate)
    ids = [m["id"] for m in json.loads(get_raw(s3, store.key))["messages"]]
    assert sorted(ids) == ["from-web-ui", "ours"]


async def test_wrong_credentials_are_fatal(seaweed: S3Server, prefix: str) -> None:
    settings = make_settings(seaweed, prefix).model_copy(
        update={
            "s3_secret_access_key": load_settings(
                _env_file=None, s3_secret_access_key="wrong"
            ).s3_secret_access_key
        }
    )
    async with open_store(settings) as store:
        with pytest.raises(StoreAuthError, match="refused our credentials"):
            await store.load()
    assert "wrong" not in str(store.stats)


async def test_missing_bucket_is_fatal(s3: S3Server, prefix: str) -> None:
    settings = make_settings(s3, prefix).model_copy(update={"s3_bucket": "no-such-bucket-here"})
    async with open_store(settings) as store:
        with pytest.raises(StoreAuthError, match="no-such-bucket-here"):
            await store.load()


async def test_unreachable_store_is_retryable(prefix: str, s3: S3Server) -> None:
    settings = make_settings(s3, prefix).model_copy(
        update={"s3_endpoint": f"http://127.0.0.1:{free_port()}"}
    )
    async with open_store(settings) as store:
        with pytest.raises(StoreUnavailable, match="S3 unreachable"):
            await store.load()
