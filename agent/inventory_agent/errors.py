"""What can go wrong, as exceptions whose message names the thing, the problem and the fix."""

from __future__ import annotations


class AgentError(RuntimeError):
    """The agent could not produce or upload a dump. The command line prints the message and exits 1."""


class InvalidStoreId(AgentError, ValueError):
    """A store id that would be unsafe or ambiguous in a lake path."""

    def __init__(self, store_id: object) -> None:
        super().__init__(
            f"invalid store id {store_id!r}: a store id is 1-64 characters of letters, digits, "
            "'_' or '-' (it becomes part of lake paths such as raw/store=<id>/)"
        )
        self.store_id = store_id


class NotASQLiteDatabase(AgentError):
    """The source file is not a SQLite 3 database."""


class SnapshotCheckFailed(AgentError):
    """The consistent copy failed ``PRAGMA quick_check``: the source database itself is damaged."""


class UploadFailed(AgentError):
    """The destination refused the upload or could not be reached (after retries)."""


class ConfigError(AgentError):
    """The agent's settings are missing, contradictory or malformed."""
