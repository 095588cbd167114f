"""The Application Insights adapter maps our two calls onto what azure-monitor-opentelemetry exports:
custom events (log records named by ``microsoft.custom_event.name``) and histogram metrics."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.adapters.telemetry_azure import EXPORTED_LOGGER, LOGGER_NAME, AzureMonitorTelemetry

ROOT = Path(__file__).resolve().parents[2]


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_events_are_custom_events_and_metrics_histograms() -> None:
    reader = InMemoryMetricReader()
    t = AzureMonitorTelemetry("InstrumentationKey=x", configure=False, meter_provider=MeterProvider([reader]))
    cap = Capture()
    logging.getLogger(LOGGER_NAME).addHandler(cap)
    try:
        t.event("LowStock", storeId="S1", sku="A-1", onHand=2, details={"a": 1}, missing=None)
        t.metric("alerts_raised", 1, kind="LowStock", severity="warning")
        t.metric("alerts_raised", 1, kind="LowStock", severity="warning")
    finally:
        logging.getLogger(LOGGER_NAME).removeHandler(cap)
    [rec] = cap.records
    assert rec.getMessage() == "LowStock" and getattr(rec, "microsoft.custom_event.name") == "LowStock"
    assert (rec.storeId, rec.sku, rec.onHand, rec.details) == ("S1", "A-1", 2, '{"a": 1}')
    assert not hasattr(rec, "missing")
    data = reader.get_metrics_data()
    [metric] = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    [point] = metric.data.data_points
    assert metric.name == "alerts_raised" and point.count == 2 and point.sum == 2
    assert dict(point.attributes) == {"kind": "LowStock", "severity": "warning"}


def test_the_real_distro_is_configured_from_the_setting_and_never_blocks(tmp_path: Path) -> None:
    """Through the composition root, in a fresh process (the distro sets process-wide providers): an
    unreachable ingestion endpoint must not break or hang the app. The exporter keeps unsent telemetry in
    ``<temp folder>/Microsoft-AzureMonitor-…`` for a later retry: TMPDIR keeps that inside the test's folder."""
    code = ("from shared.bootstrap import build; c = build(); t = c.telemetry; "
            "print(type(t).__name__); t.event('LowStock', storeId='S1'); t.metric('alerts_raised', 1, kind='x')")
    env = {**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING":
           "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/",
           "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "INVENTORY_HOME": str(tmp_path / "home"),
           "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[0] == "AzureMonitorTelemetry"


def test_importing_the_app_stays_light() -> None:
    """Cold start: registering the functions must not import the heavy libraries (they load on first use)."""
    code = ("import sys, function_app; heavy = [m for m in ('pyarrow', 'duckdb', 'numpy', 'azure.cosmos', "
            "'azure.eventhub', 'azure.monitor.opentelemetry', 'adbc_driver_manager') if m in sys.modules]; "
            "print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def otel_handler_on_inventory():  # what configure_azure_monitor(logger_name="inventory") attaches, in memory
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    provider = LoggerProvider()
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return LoggingHandler(logger_provider=provider), exporter


def test_each_record_is_exported_once_and_never_reaches_the_root_logger() -> None:
    """In Azure the worker's root handler forwards records to the host, which would write them again: a record
    of the app's loggers must reach the exporter once and the root logger never."""
    handler, exporter = otel_handler_on_inventory()
    exported, root = logging.getLogger(EXPORTED_LOGGER), logging.getLogger()
    to_host = Capture()
    exported.addHandler(handler)
    root.addHandler(to_host)
    try:
        t = AzureMonitorTelemetry("InstrumentationKey=x", worker_configured=True,
                                  meter_provider=MeterProvider([InMemoryMetricReader()]))
        t.event("LowStock", storeId="S1")
        logging.getLogger("inventory.functions").error("function raise_alerts failed")
    finally:
        exported.removeHandler(handler)
        root.removeHandler(to_host)
        exported.propagate = True
    names = [r.log_record.attributes.get("microsoft.custom_event.name") for r in exporter.get_finished_logs()]
    assert names == ["LowStock", None]
    assert to_host.records == []


def test_without_an_exporter_on_the_app_logger_records_still_propagate() -> None:
    """The worker exporting the root logger instead (a different PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME): the
    app must not cut its records off from the only exporter there is."""
    root, to_root = logging.getLogger(), Capture()
    root.addHandler(to_root)
    try:
        t = AzureMonitorTelemetry("InstrumentationKey=x", worker_configured=True,
                                  meter_provider=MeterProvider([InMemoryMetricReader()]))
        t.event("LowStock", storeId="S1")
    finally:
        root.removeHandler(to_root)
    assert [r.getMessage() for r in to_root.records] == ["LowStock"]


def test_the_worker_configured_exporter_is_not_configured_twice(tmp_path: Path) -> None:
    """PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true: the worker set the distro up; the app adds no second
    exporter (two would ship every record twice). Without it, the app configures the distro itself."""
    code = ("from opentelemetry._logs import get_logger_provider; from shared.bootstrap import build; "
            "build().telemetry; print(type(get_logger_provider()).__name__)")
    base = {**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING":
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "INVENTORY_HOME": str(tmp_path / "home"),
            "TMPDIR": str(tmp_path)}
    providers = {}
    for flag in ("true", ""):
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**base, "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": flag})
        assert proc.returncode == 0, proc.stderr[-2000:]
        providers[flag] = proc.stdout.strip().splitlines()[-1]
    assert providers == {"true": "ProxyLoggerProvider", "": "LoggerProvider"}
