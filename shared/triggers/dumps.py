"""Blob trigger for nightly dumps: translate the binding (stream the blob to a scratch file), call the use case."""


import logging
from pathlib import Path

import azure.functions as func

# SDK-type binding: the function receives an azure.storage.blob.BlobClient instead of the blob's bytes, so
# a multi-GB dump is streamed to disk in chunks and never crosses the host-worker gRPC channel whole.
import azurefunctions.extensions.bindings.blob as blob

from shared.triggers.failures import reports_failure

bp = func.Blueprint()
log = logging.getLogger("inventory.dumps")


@bp.function_name("ingest_dump")
@bp.blob_trigger(
    arg_name="client",
    path="%LAKE_CONTAINER%/raw/{name}",
    connection="LAKE",
    # Flex Consumption supports only the Event Grid-based blob trigger (no container polling).
    source=func.BlobSource.EVENT_GRID,
)
@reports_failure
def ingest_dump(client: blob.BlobClient) -> None:
    """A dump landed under raw/: ingest it, then make it the store's stock baseline. Quarantines are results,
    not failures (no retry); unexpected errors (lake unreachable, ...) raise so the host retries and finally
    poisons the message."""
    from shared.bootstrap import use_cases

    receipt = use_cases().receive_dump(client.blob_name, lambda local: _download(client, local))
    if receipt is None:
        log.warning("dump %s is gone (deleted before it could be read): nothing to ingest", client.blob_name)
        return
    result, rebase = receipt.ingest, receipt.rebase
    if rebase is None:
        log.warning("dump %s quarantined: %s: %s", client.blob_name, result.reason_code, result.reason)
        return
    log.info("dump %s %s as %s; stock of store %s: %s", client.blob_name, result.status, result.dump_id,
             result.store_id, rebase.status)


def _download(client: blob.BlobClient, local: Path) -> dict[str, str] | None:
    """Stream the blob to ``local`` in chunks, pinned to the etag first seen; its metadata, or None if it is gone."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        props = client.get_blob_properties()
        with open(local, "wb") as out:
            client.download_blob(max_concurrency=2, etag=props.etag, match_condition=_if_not_modified()).readinto(out)
    except ResourceNotFoundError as exc:
        if getattr(exc, "error_code", None) != "BlobNotFound":  # e.g. ContainerNotFound: a real fault
            raise
        # Deleted before it was read (by hand, or a lifecycle rule before a late redelivery): retrying cannot
        # help, and the host's retries would end in a poison message and a page for nothing.
        return None
    return dict(props.metadata or {})


def _if_not_modified() -> "MatchConditions":  # noqa: F821 (imported lazily)
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
