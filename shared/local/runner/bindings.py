"""The binding objects the local runner hands to the registered functions, built as the Functions host and
the Python worker build them: ``func.EventHubEvent``, ``azure.functions.timer.TimerRequest``,
``func.HttpRequest``, an ``azure.storage.blob.BlobClient`` (SDK-type blob binding), a ``func.Context`` with
the retry context. Nothing here knows what the functions do.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import azure.functions as func
from azure.functions._abc import RetryContext

from shared.ports.lake import Lake, LakeObject


class LocalRetryContext(RetryContext):
    """What the worker passes as ``context.retry_context``: which attempt this is (0 = the first)."""

    def __init__(self, retry_count: int, max_retry_count: int, exception: BaseException | None = None) -> None:
        self._count, self._max, self._exc = retry_count, max_retry_count, exception

    @property
    def retry_count(self) -> int:
        return self._count

    @property
    def max_retry_count(self) -> int:
        return self._max

    @property
    def exception(self) -> Any:
        return self._exc


class LocalContext(func.Context):
    """``func.Context`` for one invocation (abstract in azure.functions; the worker has its own)."""

    def __init__(self, function_name: str, retry: LocalRetryContext | None = None) -> None:
        self._name, self._retry, self._id = function_name, retry, str(uuid.uuid4())

    invocation_id = property(lambda self: self._id)
    function_name = property(lambda self: self._name)
    function_directory = property(lambda self: ".")
    trace_context = property(lambda self: None)
    thread_local_storage = property(lambda self: None)
    retry_context = property(lambda self: self._retry)


def eventhub_events(batch: Sequence[Any]) -> list[func.EventHubEvent]:
    """Embedded-queue events (``QueuedEvent``) as the trigger's ``func.EventHubEvent`` objects."""
    return [func.EventHubEvent(body=e.body, partition_key=e.partition_key, sequence_number=e.sequence,
                               enqueued_time=e.enqueued_at, offset=str(e.sequence)) for e in batch]


def blob_client(lake: Lake, path: str) -> Any:
    """What the SDK-type blob binding passes: a real ``azure.storage.blob.BlobClient`` when the lake is a Blob
    container (Azurite, Azure); for the folder lake, :class:`FolderBlobClient`."""
    container = getattr(lake, "container", None)
    if container is not None and hasattr(container, "get_blob_client"):
        return container.get_blob_client(path)
    return FolderBlobClient(lake, path)


@dataclass(frozen=True)
class _Properties:
    name: str
    size: int
    etag: str
    metadata: dict[str, str]
    last_modified: datetime | None


class _Download:
    def __init__(self, lake: Lake, path: str) -> None:
        self._lake, self._path = lake, path

    def readinto(self, stream: IO[bytes]) -> int:
        n = 0
        with self._lake.local_copy([self._path]) as (local,), open(local, "rb") as inp:
            while chunk := inp.read(1 << 20):
                stream.write(chunk)
                n += len(chunk)
        return n


class FolderBlobClient:
    """The members of ``azure.storage.blob.BlobClient`` a blob-triggered function uses (``blob_name``,
    ``container_name``, ``get_blob_properties``, ``download_blob(...).readinto``) over the folder lake, which
    has no Blob endpoint. An ``etag`` + ``match_condition`` on the download is honoured as the SDK does:
    a blob changed since its properties were read raises ``ResourceModifiedError``."""

    def __init__(self, lake: Lake, path: str, container_name: str = "lake") -> None:
        self._lake, self.blob_name, self.container_name = lake, path, container_name

    def _head(self) -> LakeObject:
        obj = self._lake.head(self.blob_name)
        if obj is None:
            from azure.core.exceptions import ResourceNotFoundError

            exc = ResourceNotFoundError(f"The specified blob does not exist: {self.blob_name}")
            exc.error_code = "BlobNotFound"  # as the storage SDK sets it
            raise exc
        return obj

    def get_blob_properties(self, **_: object) -> _Properties:
        obj = self._head()
        return _Properties(obj.path, obj.size, obj.etag, dict(obj.metadata), obj.last_modified)

    def download_blob(self, *, etag: str | None = None, match_condition: object = None, **_: object) -> _Download:
        if etag is not None and match_condition is not None:
            from azure.core import MatchConditions
            from azure.core.exceptions import ResourceModifiedError

            current = self._head().etag
            if match_condition == MatchConditions.IfNotModified and current != etag:
                raise ResourceModifiedError(f"{self.blob_name} changed since its etag {etag} was read")
        return _Download(self._lake, self.blob_name)


# -- HTTP routes ------------------------------------------------------------------------------------------

_PARAM = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}$")


def route_pattern(route: str) -> re.Pattern[str]:
    """A route template (``sales``, ``stock/{store}``, ``files/{*rest}``, ``x/{id:int?}``) as a regex over
    the path after ``/api/``. Constraints are not checked; an optional last segment may be missing."""
    regex = ""
    for i, segment in enumerate(s for s in route.strip("/").split("/") if s):
        sep = "/" if i else ""
        m = _PARAM.match(segment)
        if m is None:
            regex += sep + re.escape(segment)
        elif m.group(1):
            regex += f"(?:{sep}(?P<{m.group(2)}>.*))?"
        elif m.group(3):
            regex += f"(?:{sep}(?P<{m.group(2)}>[^/]+))?"
        else:
            regex += f"{sep}(?P<{m.group(2)}>[^/]+)"
    return re.compile(regex + "/?")


def http_request(method: str, url: str, headers: Mapping[str, str], params: Mapping[str, str],
                 route_params: Mapping[str, str], body: bytes) -> func.HttpRequest:
    return func.HttpRequest(method.upper(), url, headers=dict(headers), params=dict(params),
                            route_params={k: v for k, v in route_params.items() if v is not None}, body=body)
