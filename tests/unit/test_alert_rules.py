"""Every alert kind the app can raise has a KQL rule in infra/alerts/, and every rule names a signal the
app emits."""

from __future__ import annotations

import re
from pathlib import Path

from shared.core.alerts import ALERT_KINDS

RULES = Path(__file__).resolve().parents[2] / "infra" / "alerts"
OTHER_SIGNALS = {"EventBatchSetAside", "events_deadlettered",  # emitted by services/apply_sales.py
                 "FunctionFailed"}  # by triggers/failures.py


def test_each_alert_kind_has_a_rule_that_queries_it() -> None:
    for kind in ALERT_KINDS:
        text = (RULES / f"{kind.name}.kql").read_text()
        assert f'name == "{kind.name}"' in text and "customEvents" in text


def test_each_rule_names_a_signal_the_app_emits() -> None:
    known = {k.name for k in ALERT_KINDS} | OTHER_SIGNALS
    app = "\n".join(p.read_text() for p in (RULES.parents[1] / "shared").rglob("*.py"))
    for path in RULES.glob("*.kql"):
        names = set(re.findall(r'name == "([^"]+)"', path.read_text()))
        assert names and names <= known, path.name
        for name in names - {k.name for k in ALERT_KINDS}:
            assert f'"{name}"' in app, f"{name} in {path.name} is not emitted by the app"


def test_each_rule_selects_the_telemetry_it_names() -> None:
    """Every rule runs (tests/support/kql.py) over a record of the kind it names and returns it, grouped by
    the rule's dimension; a record of another name is not selected."""
    from tests.support.kql import custom_events, custom_metrics, run_rule

    for path in RULES.glob("*.kql"):
        text = path.read_text()
        [name] = set(re.findall(r'name == "([^"]+)"', text))
        dims = {"storeId": "S1", "sku": "A-1", "severity": "warning", "reason": "why", "functionName": "f",
                "error": "OSError", "path": "p", "events": 3, "dumpId": "d", "linesChanged": 2}
        records = [{"type": "event", "name": name, "time": "t", "properties": dims},
                   {"type": "event", "name": "Other", "time": "t", "properties": dims}]
        records += [{"type": "metric", "name": name, "value": 60, "time": "t", "dimensions": {"reason": "r"}},
                    {"type": "metric", "name": "other", "value": 60, "time": "t", "dimensions": {"reason": "r"}}]
        rows = run_rule(path, {"customEvents": custom_events(records), "customMetrics": custom_metrics(records)})
        assert len(rows) == 1, path.name
