"""Every alert kind the app can raise has a KQL rule in infra/alerts/, and every rule names a signal the
app emits."""

from __future__ import annotations

import re
from pathlib import Path

from shared.core.alerts import ALERT_KINDS

RULES = Path(__file__).resolve().parents[2] / "infra" / "alerts"
OTHER_SIGNALS = {"EventBatchSetAside", "events_deadlettered"}  # emitted by services/apply_sales.py


def test_each_alert_kind_has_a_rule_that_queries_it() -> None:
    for kind in ALERT_KINDS:
        text = (RULES / f"{kind.name}.kql").read_text()
        assert f'name == "{kind.name}"' in text and "customEvents" in text


def test_each_rule_names_a_signal_the_app_emits() -> None:
    known = {k.name for k in ALERT_KINDS} | OTHER_SIGNALS
    app = "\n".join(p.read_text() for p in (RULES.parents[1] / "shared").rglob("*.py"))
    for path in RULES.glob("*.kql"):
        names = set(re.findall(r'name == "([^"]+)"', path.read_text()))
        if path.stem == "FunctionFailures":
            continue  # the host's own request telemetry
        assert names and names <= known, path.name
        for name in names - {k.name for k in ALERT_KINDS}:
            assert f'"{name}"' in app, f"{name} in {path.name} is not emitted by the app"
