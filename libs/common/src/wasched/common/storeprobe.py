"""What the store can do, found out once at start-up with a scratch object.

Whether a PUT's `If-Match` is enforced decides conditional writes against merge mode
(Backblaze B2 answers 501; some stores silently ignore the condition, which a PUT with
a wrong ETag reveals). In merge mode, whether the bucket keeps object versions decides
whether an edit lost in the last moment before a PUT can be found and put back.
"""

from __future__ import annotations

import logging

from wasched.common.s3calls import (
    Precondition,
    S3Calls,
    Signal,
    StoreAuthError,
    StoreUnavailable,
    Unsupported,
)

log = logging.getLogger("wasched.store")

WRONG_ETAG = '"00000000000000000000000000000000"'


async def enforces_if_match(s3: S3Calls, probe: str) -> tuple[bool, str]:
    """(whether a PUT with a wrong `If-Match` is refused, how the store answered)."""
    created: list[str | None] = []
    try:
        first = await s3("put_object", Key=probe, Body=b"probe")
        created.append(first.get("VersionId"))
        try:
            again = await s3("put_object", Key=probe, Body=b"probe", IfMatch=WRONG_ETAG)
        except Precondition:
            return True, "If-Match writes"
        except Unsupported:
            return False, "the store rejects conditional PUT; re-read-merge-write instead"
        created.append(again.get("VersionId"))
        return False, "the store ignored If-Match on PUT; re-read-merge-write instead"
    finally:
        for version in reversed(created):  # a versioned bucket keeps them otherwise
            extra = {"VersionId": version} if version and version != "null" else {}
            try:
                await s3("delete_object", Key=probe, **extra)
            except Signal:
                continue


async def keeps_versions(s3: S3Calls) -> bool | None:
    """Whether the bucket keeps object versions (None: the store would not say); logs what
    that means for merge mode."""
    try:
        answer = await s3("get_bucket_versioning")
    except (StoreUnavailable, StoreAuthError, Signal) as exc:
        log.warning(
            "could not tell whether bucket %r keeps object versions (%s); in merge mode an "
            "edit another writer saves between our read and our write can be lost",
            s3.bucket,
            exc,
        )
        return None
    if answer.get("Status") == "Enabled":
        log.info("bucket %r keeps object versions: overwritten edits are repaired", s3.bucket)
        return True
    log.warning(
        "bucket %r does not keep object versions: in merge mode an edit another writer saves "
        "in the moment between our last read and our write can be lost. Enable versioning "
        "on the bucket (Backblaze B2 keeps versions by default; S3/SeaweedFS/MinIO: "
        "put-bucket-versioning Status=Enabled) and set a lifecycle rule that expires old "
        "versions after a few days",
        s3.bucket,
    )
    return False
