"""``inventory-agent``: one upload per run, one log line per run, exit 0 (uploaded or already there) or 1.

The line goes to stderr (systemd's journal, Task Scheduler's history shows the exit code) and, with
``log_file``, is appended to that file too. Its fields are ``key=value``, so it can be searched::

    2026-11-28T01:42:10Z inventory-agent 0.1.0 store=S042 result=uploaded path=raw/store=S042/date=2026-11-28/...
        bytes=5123456 uncompressed_bytes=20480000 sha256=... seconds=14.2 destination=https://.../lake

``result`` is ``uploaded``, ``already-present`` (the same content is in the lake for that day: nothing sent)
or ``error`` (then ``error="..."`` says what and what to do).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from inventory_agent import __version__
from inventory_agent.config import (
    CONNECTION_STRING_ENV,
    SETTINGS,
    Key,
    build_destination,
    load_settings,
    read_config_file,
)
from inventory_agent.errors import AgentError
from inventory_agent.ids import STORE_ID_PATTERN
from inventory_agent.upload import UploadResult, upload_dump

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


@contextlib.contextmanager
def progress_bar(name: str, *, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(bytes_sent, bytes_total)`` callback drawing a tqdm bar on stderr; none unless stderr is a
    terminal (a scheduled run's log stays one line)."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="B", unit_scale=True, desc=f"upload {name}", file=sys.stderr,
               disable=True if quiet else None, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()


def _field(value: str) -> str:
    """As it is, or JSON-quoted when it is empty or has spaces, quotes, control or non-ASCII characters in it:
    the line is plain ASCII, whatever the console's encoding (a Windows code page)."""
    plain = value and value.isascii() and value.isprintable() and " " not in value and '"' not in value
    return value if plain else json.dumps(value)


def log_line(store: str | None, fields: dict[str, object]) -> str:
    """The run's line: UTC time, program and version, store, then ``key=value`` fields (quoted if needed)."""
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    shown = store if isinstance(store, str) and STORE_ID_PATTERN.fullmatch(store) else json.dumps(store or "")
    rest = " ".join(f"{k}={_field(str(v))}" for k, v in fields.items())
    return f"{stamp} inventory-agent {__version__} store={shown} {rest}"


def _emit(line: str, log_file: Path | None) -> None:
    print(line, file=sys.stderr, flush=True)
    if log_file is None:
        return
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as exc:
        print(f"inventory-agent: cannot append to the log file {log_file} ({exc.strerror or exc})", file=sys.stderr)


def _result_fields(r: UploadResult, seconds: float, destination: str) -> dict[str, object]:
    return {"result": "uploaded" if r.uploaded else "already-present", "path": r.path, "bytes": r.size,
            "uncompressed_bytes": r.uncompressed_bytes, "sha256": r.sha256, "snapshot_at":
            r.snapshot_at.replace(microsecond=0).isoformat().replace("+00:00", "Z"), "seconds": f"{seconds:.1f}",
            "destination": destination}


def _setting_help(key: Key) -> str:
    line = f"  {key.name:<17} {key.env:<33} {key.help}"
    return line + (f"; else {key.fallback_env}" if key.fallback_env else "")


def _log_file_anyway(flags: dict[str, str | None], config: str | None) -> Path | None:
    """Where the line goes if the settings themselves are wrong: the flag, the variable, or the config file's
    ``log_file`` if the file can be read (on Windows the log file is the only place a run's line is kept)."""
    given = flags.get("log_file") or os.environ.get("INVENTORY_AGENT_LOG_FILE", "").strip()
    if given:
        return Path(given)
    with contextlib.suppress(AgentError):
        if config and (in_file := read_config_file(Path(config)).get("log_file")):
            return Path(in_file)
    return None


def build_parser() -> argparse.ArgumentParser:
    settings = "\n".join(_setting_help(k) for k in SETTINGS)
    p = argparse.ArgumentParser(
        prog="inventory-agent",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Snapshot the store's live SQLite database (consistent while the POS writes), check it, gzip "
                    "it and upload it to raw/store=<id>/date=<day>/ in the lake. Run it nightly (systemd timer or "
                    "Task Scheduler: agent/deploy/). Exit 0: uploaded, or the same content was already there; "
                    "1: error (the log line says what); 2: wrong usage.",
        epilog=f"Settings (a flag wins over the variable, the variable over the config file; a variable after "
               f"'else' is read last):\n{settings}\n"
               f"  (Azurite/tests)   {CONNECTION_STRING_ENV:<33} a storage connection string, environment only\n\n"
               "Guide: docs/agent.md in the inventory pipeline's repository.")
    p.add_argument("--config", metavar="FILE", help="the config file (TOML), e.g. /etc/inventory-agent/agent.toml "
                   "or C:\\ProgramData\\inventory-agent\\agent.toml (also INVENTORY_AGENT_CONFIG)")
    p.add_argument("--db", dest="database", metavar="PATH", help="the store's SQLite database")
    p.add_argument("--store", dest="store_id", metavar="ID", help="the store id")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--account-url", dest="account_url", metavar="URL", help="https://<account>.blob.core.windows.net")
    where.add_argument("--folder", metavar="DIR", help="upload into a local folder instead (trials)")
    p.add_argument("--container", metavar="NAME", help="the lake container (default: lake)")
    p.add_argument("--home", metavar="DIR", help="the agent's working folder (snapshots go to <home>/tmp)")
    p.add_argument("--log-file", dest="log_file", metavar="FILE", help="also append the run's line to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress bar, even on a terminal")
    p.add_argument("--verbose", action="store_true", help="also log the Azure SDK's requests (troubleshooting)")
    p.add_argument("--version", action="version", version=f"inventory-agent {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The Azure SDK logs a warning per failed token attempt: the run's line already says it, in one line.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("azure").setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    flags = {k.name: getattr(args, k.name, None) for k in SETTINGS}
    config = args.config or os.environ.get("INVENTORY_AGENT_CONFIG", "").strip() or None
    started = time.monotonic()
    store, log_file = flags.get("store_id"), _log_file_anyway(flags, config)
    try:
        settings = load_settings(flags, Path(config) if config else None)
        store, log_file = settings.store_id, settings.log_file
        destination = build_destination(settings)
        destination.check()  # the identity gets its token before minutes of snapshot
        with progress_bar(settings.database.name, quiet=args.quiet) as progress:
            result = upload_dump(settings.database, settings.store_id, destination, scratch=settings.scratch,
                                 progress=progress)
    except KeyboardInterrupt:
        _emit(log_line(store, {"result": "error", "seconds": f"{time.monotonic() - started:.1f}",
                               "error": "interrupted"}), log_file)
        return EXIT_INTERRUPTED
    except (AgentError, OSError) as exc:  # ours, with the fix in the message; a full disk, a missing file
        _emit(log_line(store, {"result": "error", "seconds": f"{time.monotonic() - started:.1f}",
                               "error": str(exc)}), log_file)
        return EXIT_ERROR
    except Exception as exc:  # a bug: the line, then the traceback for the report
        _emit(log_line(store, {"result": "error", "seconds": f"{time.monotonic() - started:.1f}",
                               "error": f"unexpected {type(exc).__name__}: {exc}"}), log_file)
        traceback.print_exc()
        return EXIT_ERROR
    _emit(log_line(store, _result_fields(result, time.monotonic() - started, destination.describe())), log_file)
    return EXIT_OK
