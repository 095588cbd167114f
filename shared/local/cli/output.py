"""What every command shares: JSON on stdout, messages on stderr, argparse number types, a status line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable


def print_json(obj: object) -> None:
    """The command's machine-readable result, on stdout."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def err(msg: str) -> None:
    """A message for people, on stderr."""
    print(f"inventory: {msg}", file=sys.stderr)


def status_line() -> Callable[[str], None]:
    """Progress messages on stderr: a table's "rows read" count rewritten in place on a terminal, every
    other message on its own line; plain lines when stderr is not a terminal (logs, CI)."""
    if not sys.stderr.isatty():
        return lambda msg: print(msg, file=sys.stderr)
    inline = {"table": None}

    def say(msg: str) -> None:
        table = msg.split(":", 1)[0] if "rows read" in msg else None
        if inline["table"] is not None and table != inline["table"]:
            print(file=sys.stderr)  # keep the finished table's count on screen
        if table is None:
            print(msg, file=sys.stderr, flush=True)
        else:
            print(f"\r{msg:<60}", end="", file=sys.stderr, flush=True)
        inline["table"] = table

    return say


def number(kind: type, low: float | None, high: float | None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: ``kind`` (int or float) within [low, high] (``(low, high]`` with ``low_open``), so a
    value out of range is a usage error naming the option, not a traceback from deep inside."""
    lo = "" if low is None else ("above " if low_open else "at least ") + f"{low:g}"
    hi = "" if high is None else f"at most {high:g}"
    want = f"{'an integer' if kind is int else 'a number'} {' and '.join(x for x in (lo, hi) if x)}".strip()

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}") from None
        if value != value or (low is not None and (value <= low if low_open else value < low)) or (
                high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}")
        return value

    return parse


