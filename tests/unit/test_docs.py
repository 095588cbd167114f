"""The README's rule and quarantine tables are the rules table itself (one list for code, manifest, docs)."""

from __future__ import annotations

from pathlib import Path

from shared.local.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_readme_tables_match_inventory_rules_markdown(capsys):
    assert main(["rules", "--markdown"]) == 0
    printed = capsys.readouterr().out.strip()
    readme = (ROOT / "README.md").read_text()
    for block in printed.split("\n\n"):
        assert block.strip() in readme, "README is stale: paste `inventory rules --markdown` into it"


def test_readme_event_reasons_match_the_code():
    from shared.core.events import reasons_markdown

    assert reasons_markdown() in (ROOT / "README.md").read_text(), "README is stale: paste reasons_markdown()"
