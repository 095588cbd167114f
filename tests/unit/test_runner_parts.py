"""The local runner's pure parts: route templates, retry delays, %SETTING% expressions, NCRONTAB schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.local.runner import RetryPolicy, RunnerError, resolve
from shared.local.runner.bindings import route_pattern
from shared.local.runner.timers import _cron
from shared.settings import Settings


@pytest.mark.parametrize(("template", "path", "params"), [
    ("sales", "sales", {}),
    ("sales", "sales/", {}),
    ("sales", "salesx", None),
    ("stock/{store}", "stock/S1", {"store": "S1"}),
    ("stock/{store}", "stock", None),
    ("stock/{store}", "stock/S1/x", None),
    ("x/{id:int?}", "x", {"id": None}),
    ("x/{id:int?}", "x/3", {"id": "3"}),
    ("files/{*rest}", "files/a/b.txt", {"rest": "a/b.txt"}),
    ("a.b/{c}", "aXb/1", None),  # literal text is literal
])
def test_route_templates(template, path, params):
    m = route_pattern(template).fullmatch(path)
    assert (m.groupdict() if m else None) == params


@given(st.integers(1, 50))
def test_exponential_backoff_doubles_from_the_minimum_and_never_exceeds_the_maximum(retry):
    p = RetryPolicy("exponential_backoff", 5, minimum_s=2, maximum_s=60)
    assert 2 <= p.delay(retry) <= 60
    assert p.delay(retry + 1) == min(60, 2 * p.delay(retry))


def test_retry_policy_from_the_decorator_setting():
    p = RetryPolicy.from_setting({"strategy": "fixed_delay", "max_retry_count": "3", "delay_interval": "00:01:30"})
    assert p == RetryPolicy("fixed_delay", 3, delay_s=90.0) and p.delay(7) == 90.0


def test_binding_expressions_resolve_app_settings():
    s = Settings.from_env({"EVENTHUB_NAME": "tills"})
    assert resolve("%EVENTHUB_NAME%", s) == "tills"
    assert resolve("%LAKE_CONTAINER%/raw/{name}", s) == "lake/raw/{name}"
    with pytest.raises(RunnerError, match="NOPE"):
        resolve("%NOPE%", s)
    with pytest.raises(RunnerError, match="unbalanced"):
        resolve("%LAKE_CONTAINER", s)


def test_ncrontab_has_six_fields_seconds_first():
    at = datetime(2026, 11, 27, 13, 50, 7, tzinfo=UTC)
    assert _cron("0 */15 * * * *").next_after(at) == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
    assert _cron("*/10 * * * * *").next_after(at) == datetime(2026, 11, 27, 13, 50, 10, tzinfo=UTC)
    assert _cron("0 0 2 * * MON-FRI").next_after(at) == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    for bad in ("*/15 * * * *", "0 61 * * * *", "every hour"):
        with pytest.raises(RunnerError, match="6-field NCRONTAB"):
            _cron(bad)
