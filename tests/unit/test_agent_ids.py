"""The store id rule and the raw dump path exist twice, in the app (shared/core/ids.py) and in the store agent
(agent/inventory_agent/ids.py), so that neither depends on the other. They must agree exactly; and neither
side may import the other."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from inventory_agent import ids as agent_ids

from shared.core import ids as app_ids
from shared.core import layout

ROOT = Path(__file__).resolve().parents[2]

store_ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{0,66}", fullmatch=True),  # near the rule, both sides of the length limits
    st.text(alphabet=st.sampled_from("Ss01_-./\\ \n\t\x00=é%"), max_size=8),  # separators, escapes, non-ASCII
    st.text(max_size=70),
    st.none(), st.integers(), st.binary(max_size=4),
)


def outcome(validate, value):
    try:
        return ("ok", validate(value))
    except ValueError as exc:
        return ("refused", type(exc).__name__)


@given(store_ids)
@example("S001")
@example("S001\n")  # $ in a regex also matches before a final newline: fullmatch must be used on both sides
@example("x" * 64)
@example("x" * 65)
@example("")
def test_both_store_id_validators_agree(value):
    assert outcome(agent_ids.validate_store_id, value) == outcome(app_ids.validate_store_id, value)


@given(store_ids, st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
       st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{0,130}", fullmatch=True), st.text(max_size=20)))
@example("S1", date(2026, 11, 27), "S1-0123456789abcdef.sqlite.gz")
@example("S1", date(2026, 11, 27), ".hidden")
def test_both_raw_paths_agree(store, day, name):
    def build(module):
        try:
            return module.raw_dump_path(store, day, name)
        except ValueError as exc:
            return f"refused: {type(exc).__name__}"

    agent, app = build(agent_ids), build(layout)
    assert agent == app
    if not agent.startswith("refused"):
        assert layout.parse_raw_dump_path(agent) == (store, day, name)


def test_both_name_the_same_error_for_a_bad_store_id():
    with pytest.raises(ValueError) as agent_error:
        agent_ids.validate_store_id("../x")
    with pytest.raises(ValueError) as app_error:
        app_ids.validate_store_id("../x")
    assert str(agent_error.value) == str(app_error.value)


def _imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")) if folder.is_dir() else [folder]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_agent_imports_nothing_of_the_app():
    offenders = [p for p, names in _imported_modules(ROOT / "agent" / "inventory_agent").items() if "shared" in names]
    assert offenders == []


@pytest.mark.parametrize("part", ["function_app.py", "shared/core", "shared/services", "shared/adapters",
                                  "shared/triggers", "shared/bootstrap.py", "shared/settings.py"])
def test_the_deployed_app_does_not_import_the_agent(part):
    offenders = [p for p, names in _imported_modules(ROOT / part).items() if "inventory_agent" in names]
    assert offenders == [], "the function app is deployed without the agent (requirements.txt)"
