"""The ``inventory`` command (also ``python -m shared``): the same use cases the functions call.

Machine-readable results go to stdout as JSON; progress and messages go to stderr.
Exit codes: 0 done, 1 error (message on stderr), 2 dump quarantined (and argparse's usage errors).
"""

from __future__ import annotations

import argparse
import sys

from shared import __version__
from shared.local.cli import dumps, local, sales, timers
from shared.local.cli.output import err


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inventory", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"inventory {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for commands in (local, dumps, sales, timers):
        commands.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from shared.settings import configure_process

    configure_process()
    args = build_parser().parse_args(argv)
    from shared.core.ids import InvalidStoreId
    from shared.core.mapping import MappingError
    from shared.ports.lake import LakeError
    from shared.settings import SettingsError

    try:
        return args.func(args)
    except (InvalidStoreId, MappingError, FileNotFoundError, SettingsError, LakeError) as exc:
        err(str(exc))
        return 1
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:  # `inventory stock S1 | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # a full disk, an unreadable file, a folder where a file should be: not a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        err(f"{exc.strerror or exc}{where}")
        return 1
