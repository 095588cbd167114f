"""A dump's identity as the ingest records it: the sha256 of the bytes received (``received_sha256``) and, for
a gzip, of what it decompresses to (``sha256``, of which the dump id is the first 24 hex digits).

One place for both callers: the ingest names a dump by it, and the alerts recognise a dump sent again under
another name by it (docs/alerts-and-telemetry.md).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import zlib
from pathlib import Path
from typing import BinaryIO

from shared.ports.dumps import DumpRejected


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def is_gzip(path: Path) -> bool:
    """Whether the file is gzip-compressed (its magic bytes, not its name)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def gunzip_sha256(source: Path, max_bytes: int, out: BinaryIO | None = None) -> str:
    """The sha256 of what gzip file ``source`` decompresses to, streamed (into ``out`` too, when given).
    Raises :class:`DumpRejected`: ``too_large`` past ``max_bytes`` (a gzip bomb costs at most that much), and
    ``bad_gzip`` for a damaged or truncated stream (zlib's own error included: it is no OSError)."""
    h = hashlib.sha256()
    total = 0
    try:
        with gzip.open(source, "rb") as inp:
            while chunk := inp.read(1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise DumpRejected("too_large", f"the dump decompresses to more than {max_bytes} bytes "
                                       "(INGEST_MAX_DUMP_BYTES); a gzip bomb, or raise the limit")
                h.update(chunk)
                if out is not None:
                    out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DumpRejected("bad_gzip", f"the gzip stream is damaged or truncated: {exc}") from None
    return h.hexdigest()


def content_shas(local: Path, max_bytes: int) -> set[str]:
    """Every hash a manifest or quarantine record may know a file by: its own sha256 and, when it is gzip, that
    of what it decompresses to (not when that is damaged or over ``max_bytes``: the ingest quarantines such a
    file under its outer hash)."""
    shas = {sha256_file(local)}
    if is_gzip(local):
        with contextlib.suppress(DumpRejected):
            shas.add(gunzip_sha256(local, max_bytes))
    return shas
