"""The telemetry port on Application Insights, through ``azure-monitor-opentelemetry`` (the OpenTelemetry
distro). The design card named ``opencensus-ext-azure``; Microsoft retired the OpenCensus exporters in
September 2024 and points to this distro instead.

- ``event(name, **props)`` becomes a **custom event** (``customEvents`` table; name = the event or alert
  kind, properties = custom dimensions): a log record carrying ``microsoft.custom_event.name``.
- ``metric(name, value, **dims)`` is recorded on an OpenTelemetry histogram of that name, exported to the
  ``customMetrics`` table with the dimensions (sum, count, min and max per export interval).
Alert rules (infra) query these two tables. Imported only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is
set, so local runs and cold start without it pay nothing.

**Once, not twice.** The exporter listens on the ``inventory`` logger, the parent of every logger of the app
(custom events on ``inventory.telemetry``, function failures on ``inventory.functions``). In Azure the Python
worker configures it (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``, logger name from
``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME=inventory``), so this adapter must not configure a second exporter;
elsewhere (``inventory serve`` with a connection string) it configures the distro itself. Either way the
``inventory`` logger stops propagating to the root logger: the worker's root handler forwards records to the
host, which would write each one again as a trace.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

EXPORTED_LOGGER = "inventory"
LOGGER_NAME = "inventory.telemetry"
_CUSTOM_EVENT = "microsoft.custom_event.name"  # the distro maps records with this attribute to customEvents


def _attribute(value: object) -> str | int | float | bool:
    """OpenTelemetry attributes are primitives: nested values travel as JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    return json.dumps(value, default=str, sort_keys=True)


class AzureMonitorTelemetry:
    def __init__(self, connection_string: str, *, credential: Any = None, configure: bool = True,
                 worker_configured: bool = False, meter_provider: Any = None) -> None:
        """``worker_configured``: the Functions worker already set the exporter up (see the module docstring).
        ``configure=False`` and ``meter_provider`` are for tests: they skip the process-wide set-up."""
        if configure and not worker_configured:
            from azure.monitor.opentelemetry import configure_azure_monitor

            # Live metrics off: a function app gets them from the host; the app's loggers only (not root), so
            # the SDKs' own logging is not shipped.
            configure_azure_monitor(connection_string=connection_string, credential=credential,
                                    logger_name=EXPORTED_LOGGER, enable_live_metrics=False)
        exported = logging.getLogger(EXPORTED_LOGGER)
        if exported.handlers:  # the exporter's handler is here: it ships each record once, root never sees it
            exported.propagate = False
        from opentelemetry import metrics

        self._log = logging.getLogger(LOGGER_NAME)
        self._log.setLevel(logging.INFO)
        self._meter = (meter_provider.get_meter("inventory") if meter_provider is not None
                       else metrics.get_meter("inventory"))
        self._histograms: dict[str, Any] = {}
        self._lock = threading.Lock()

    def event(self, name: str, **properties: object) -> None:
        attrs = {k: _attribute(v) for k, v in properties.items() if v is not None}
        self._log.info(name, extra={_CUSTOM_EVENT: name, **attrs})

    def metric(self, name: str, value: float, **dimensions: object) -> None:
        with self._lock:
            hist = self._histograms.get(name)
            if hist is None:
                hist = self._histograms[name] = self._meter.create_histogram(name)
        hist.record(value, {k: _attribute(v) for k, v in dimensions.items() if v is not None})
