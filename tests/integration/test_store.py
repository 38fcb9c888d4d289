"""The schedule store against real S3 servers (SeaweedFS and moto)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import boto3
import pytest

from tests.conftest import TEST_BUCKET, make_settings
from tests.support.s3proxy import B2LikeProxy, S3Proxy
from wasched.cli.servers import S3Server, ensure_bucket, free_port
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


async def test_missing_or_empty_object_is_an_unavailable_schedule_not_an_empty_one(
    store: ScheduleStore, s3: S3Server
) -> None:
    with pytest.raises(DocumentError, match="does not exist"):
        await store.load()
    with pytest.raises(DocumentError, match="does not exist"):
        await store.update(mark_sent("a"))
    put_raw(s3, store.key, b"")
    with pytest.raises(DocumentError, match="is empty"):
        await store.load()
    with pytest.raises(DocumentError, match="is empty"):
        await store.update(mark_sent("a"))
    assert get_raw(s3, store.key) == b""  # nothing written over it


async def test_a_first_install_creates_the_document_only_where_there_is_none(
    store: ScheduleStore, s3: S3Server
) -> None:
    def add(doc: Document) -> bool:
        doc.messages.append({"id": "first", "status": "pending"})
        return True

    await store.update(add, create=True)
    assert [m["id"] for m in json.loads(get_raw(s3, store.key))["messages"]] == ["first"]


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


async def test_creating_the_document_does_not_clobber_one_that_reappeared(
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

    await store.update(mutate, create=True)
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


VERSIONED_BUCKET = "wasched-versioned"


@pytest.fixture
def versioned(s3: S3Server) -> str:
    """A bucket that keeps every version of an object, as B2 does by default."""
    ensure_bucket(s3, VERSIONED_BUCKET)
    raw_client(s3).put_bucket_versioning(
        Bucket=VERSIONED_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    return VERSIONED_BUCKET


def merge_settings(s3: S3Server, prefix: str, endpoint: str, bucket: str = TEST_BUCKET):
    return make_settings(s3, prefix).model_copy(
        update={"s3_endpoint": endpoint, "s3_bucket": bucket}
    )


async def test_merge_mode_looks_again_right_before_its_put(s3: S3Server, prefix: str) -> None:
    with B2LikeProxy(s3.endpoint) as proxy:
        async with open_store(merge_settings(s3, prefix, proxy.endpoint)) as store:
            await store.detect_conditional_writes()
            put_raw(s3, store.key, doc_bytes("a"))
            raced = False

            def mutate(doc: Document) -> bool:
                nonlocal raced
                if not raced:  # the web UI saves while we work on our copy
                    raced = True
                    put_raw(s3, store.key, doc_bytes("a", "from-web-ui"))
                return bool(apply_patches(doc, [Patch("a", {"status": "sent"})]))

            await store.update(mutate)
    stored = json.loads(get_raw(s3, store.key))
    assert {m["id"]: m["status"] for m in stored["messages"]} == {
        "a": "sent",
        "from-web-ui": "pending",
    }


async def test_an_edit_our_blind_put_overwrote_comes_back_from_the_object_versions(
    s3: S3Server, prefix: str, versioned: str
) -> None:
    key = f"{prefix}scheduled.json"
    client = raw_client(s3)
    client.put_object(Bucket=versioned, Key=key, Body=doc_bytes("a", "b"))
    with B2LikeProxy(s3.endpoint) as proxy:
        landed: list[str] = []

        def other_writer(path: str) -> None:  # lands after our last look, before our PUT
            if not landed and path.endswith("scheduled.json"):
                data = json.loads(client.get_object(Bucket=versioned, Key=key)["Body"].read())
                data["messages"][1]["message"] = "edited by the web UI"
                data["messages"].append({"id": "added-by-ui", "status": "pending"})
                client.put_object(Bucket=versioned, Key=key, Body=json.dumps(data).encode())
                landed.append(path)

        proxy.before_put = other_writer
        settings = merge_settings(s3, prefix, proxy.endpoint, versioned)
        async with open_store(settings) as store:
            await store.detect_conditional_writes()
            assert store.versioning is True
            await store.update(mark_sent("a"))
            assert landed
            assert store.stats.repairs == 1
    stored = {
        m["id"]: m
        for m in json.loads(client.get_object(Bucket=versioned, Key=key)["Body"].read())["messages"]
    }
    assert stored["a"]["status"] == "sent"
    assert stored["b"]["message"] == "edited by the web UI"
    assert "added-by-ui" in stored


async def test_merge_mode_without_object_versions_says_what_it_risks(
    s3: S3Server, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with B2LikeProxy(s3.endpoint) as proxy:
        async with open_store(merge_settings(s3, prefix, proxy.endpoint)) as store:
            with caplog.at_level("WARNING", logger="wasched.store"):
                await store.detect_conditional_writes()
    assert store.versioning is False
    warned = [r.getMessage() for r in caplog.records if "versioning" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "can be lost" in warned[0] and "Enable versioning" in warned[0]


async def test_a_store_that_ignores_if_match_is_used_in_merge_mode(
    s3: S3Server, prefix: str
) -> None:
    with S3Proxy(s3.endpoint, ignore_conditional_put=(s3.access_key, s3.secret_key)) as proxy:
        async with open_store(merge_settings(s3, prefix, proxy.endpoint)) as store:
            assert await store.detect_conditional_writes() is False
            assert store.mode == "merge"
        assert proxy.ignored >= 1
