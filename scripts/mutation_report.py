"""Write the latest mutation scores into docs/testing.md (``make mutation`` runs this after ``mutmut run``).

Reads mutmut's results (``mutants/**/*.py.meta``: the exit code of the unit tests against each mutant) and
the mutants judged equivalent (``tests/mutation_equivalents.toml``: name -> why no test can tell it apart),
and replaces the block between the markers in docs/testing.md with one row per module of shared/core:
killed, survived, equivalent, the score over the non-equivalent ones, and the survivors still to kill.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "testing.md"
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.toml"
BEGIN, END = "<!-- mutation-scores:begin -->", "<!-- mutation-scores:end -->"
TARGETS = {"shared.core.stock", "shared.core.events", "shared.core.rules"}  # >= 95 % (issue 20)


def statuses(folders: list[Path]) -> dict[str, str]:
    """mutant name -> mutmut's status (killed, survived, no tests, timeout, ...), from mutmut's folders."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in (m for folder in folders for m in folder.rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code is not None:  # not checked: outside this run's selection (make mutation MUTANTS=...)
                out[name] = status_by_exit_code[code]
    return out


def module_of(mutant: str) -> str:
    return mutant.rsplit(".", 1)[0]


def table(found: dict[str, str], equivalent: dict[str, str]) -> tuple[str, list[str]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for name, status in sorted(found.items()):
        key = "equivalent" if name in equivalent else status
        counts[module_of(name)][key] += 1
        if key != "killed" and key != "equivalent":
            survivors.append(f"{name}: {status}")
    rows = ["| module | mutants | killed | survived | other | equivalent | score |", "|---|---|---|---|---|---|---|"]
    for module, c in sorted(counts.items()):
        total = sum(c.values())
        other = total - c["killed"] - c["survived"] - c["equivalent"]
        live = total - c["equivalent"]
        score = f"{100 * c['killed'] / live:.1f} %" if live else "n/a"
        mark = " (target 95 %)" if module in TARGETS else ""
        rows.append(f"| `{module}`{mark} | {total} | {c['killed']} | {c['survived']} | {other} | "
                    f"{c['equivalent']} | {score} |")
    return "\n".join(rows), survivors


def main(argv: list[str]) -> int:
    """argv: mutmut's result folders (default ``mutants/``; several: runs of one module each, merged), then
    optionally ``--how TEXT``: how the run was made, if not by ``make mutation``."""
    how = "`make mutation`"
    if "--how" in argv:
        at = argv.index("--how")
        how, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    found = statuses([Path(a) for a in argv] or [ROOT / "mutants"])
    if not found:
        print("no mutmut results under mutants/: run `make mutation`", file=sys.stderr)
        return 1
    equivalent = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
    rows, survivors = table(found, equivalent)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [BEGIN, f"Latest run: {how}, commit {commit}, {when}. Score = killed / (mutants - "
             "equivalent); *other* = no test reached it, or a timeout.", "", rows, ""]
    lines += ["Survivors still to kill:", ""] + [f"- `{s}`" for s in survivors] if survivors else \
        ["No survivors left but the equivalents (`tests/mutation_equivalents.toml`)."]
    lines.append(END)
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    DOC.write_text(text[:start] + "\n".join(lines) + text[end:])
    print(rows)
    print(f"{len(survivors)} survivor(s); docs/testing.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
