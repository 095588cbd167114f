"""The docs stay true to the code and to each other.

- The rule and quarantine tables in docs/ingestion.md are the rules table itself (one list for code, manifest,
  docs), and the event reason codes in docs/stock-and-events.md are ``reasons_markdown()``.
- Every alert kind and every setting is documented, settings with their defaults.
- README.md is the front door: at most 300 lines; the rest lives in docs/.
- Every relative link in README.md and docs/*.md points to a file that exists, and to a heading that exists
  when it names one (GitHub's anchors).
- The docs stand on their own: they cite no handbook or facts file a newcomer does not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.local.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 300


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_rules_and_quarantine_tables_match_inventory_rules_markdown(capsys):
    assert main(["rules", "--markdown"]) == 0
    printed = capsys.readouterr().out.strip()
    doc = (DOCS / "ingestion.md").read_text()
    blocks = [b.strip() for b in printed.split("\n\n") if b.strip()]
    assert len(blocks) >= 2  # the rules table and the quarantine reasons table
    for block in blocks:
        assert block in doc, "docs/ingestion.md is stale: paste `inventory rules --markdown` into it"


def test_event_reasons_match_the_code():
    from shared.core.events import reasons_markdown

    doc = (DOCS / "stock-and-events.md").read_text()
    assert reasons_markdown() in doc, "docs/stock-and-events.md is stale: paste reasons_markdown() into it"


def test_every_alert_kind_has_a_row_in_the_alerts_table():
    from shared.core.alerts import ALERT_KINDS, SEVERITY_NAMES

    doc = (DOCS / "alerts-and-telemetry.md").read_text()
    missing = [k.name for k in ALERT_KINDS
               if f"| `{k.name}` | {SEVERITY_NAMES[k.severity]} ({k.severity}) |" not in doc]
    assert not missing, f"docs/alerts-and-telemetry.md: no row (or another severity) for {missing}"


def test_every_setting_is_documented_with_its_default():
    from shared.settings import SETTINGS

    doc = (DOCS / "settings.md").read_text()
    wrong = []
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "(empty)"
        if f"| `{s.name}` | {default} |" not in doc:
            wrong.append(s.name)
    assert not wrong, f"docs/settings.md: missing, or another default, for {wrong}"


def test_readme_is_the_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_cite_no_handbook(path: Path):
    text = path.read_text()
    assert not re.search(r"handbook|FACTS\.md", text, re.IGNORECASE), \
        f"{path.name} cites the handbook or FACTS.md: write the fact down in docs/ (e.g. docs/platform-notes.md)"


# --- links -----------------------------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def without_code(text: str) -> str:
    """The text outside fenced code blocks (whose lines are not headings or links)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and underscores
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(without_code(path.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def relative_links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", without_code(path.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


def test_slug_follows_github():
    assert slug("Dashboard: `inventory dashboard [--out FILE]`") == "dashboard-inventory-dashboard---out-file"
    assert slug("`make demo EMULATORS=1`") == "make-demo-emulators1"
    assert slug("Keeping the tables healthy: `maintain_lake`") == "keeping-the-tables-healthy-maintain_lake"
    assert slug("Untrusted SQLite on Python 3.11") == "untrusted-sqlite-on-python-311"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path):
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading in {dest.relative_to(ROOT).as_posix()})")
    assert not broken, f"{path.relative_to(ROOT).as_posix()}: broken links: {broken}"


def test_the_link_checker_sees_links_and_anchors():
    """Guards the checker itself: it must find this README's links and anchors, or it would pass on anything."""
    links = relative_links(README)
    assert "docs/architecture.md" in links and any("#" in t for t in links)
    assert {"the-two-commands", "what-the-demo-shows", "deploy"} <= anchors(README)


def test_code_cites_the_docs_not_a_handbook():
    # Comments cite docs/...: a newcomer has the repository, not a team handbook beside it.
    sources = [p for folder in ("shared", "tests", "bench", "agent", "infra", "scripts", "examples")
               for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".toml", ".bicep", ".sh", ".ps1", ".md")
               and "out" not in p.relative_to(ROOT).parts[:2]]
    citing = [p.relative_to(ROOT).as_posix() for p in sources if p != Path(__file__).resolve()
              and re.search(r"handbook|FACTS\.md", p.read_text(errors="replace"), re.IGNORECASE)]
    assert not citing, f"cite docs/... instead of the handbook or FACTS.md in: {citing}"


# Paths the docs name on purpose although they are not in this repository.
NOT_OURS = {"shared/services/ingest_dump.py": "what the ingest module was called before it became a package",
            "scripts/post-up.sh": "a file of the Event Grid quickstart the deploy follows"}


def test_every_path_the_docs_name_exists():
    named = re.compile(r"(?<![\w/.-])((?:shared|tests|bench|infra|scripts|agent|examples)/[\w./-]+)(?![\w*])")
    missing = []
    for doc in [README, *sorted(DOCS.glob("*.md"))]:
        for m in named.finditer(doc.read_text()):
            path = m.group(1).rstrip(".,:;")
            if path not in NOT_OURS and not (ROOT / path).exists():
                missing.append(f"{doc.name}: {path}")
    assert not missing, f"the docs name files that are not there (moved or renamed?): {missing}"
