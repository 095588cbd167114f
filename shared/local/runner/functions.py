"""What the app registers: the functions of ``function_app.py`` with their trigger bindings and retry
policies, read from the same function JSON the worker sends to the host, and the ``%NAME%`` binding
expressions resolved against the settings."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import azure.functions as func

from shared.local.runner import bindings

APP_ROOT = Path(__file__).resolve().parents[3]  # where function_app.py and host.json live
SUPPORTED = ("blobTrigger", "eventHubTrigger", "timerTrigger", "httpTrigger")


class RunnerError(RuntimeError):
    """The app cannot be run locally as configured; the message says what to change."""


@functools.cache
def app_functions() -> tuple[Any, ...]:
    """``function_app.app.get_functions()``, once per process (a second call raises in azure-functions).
    The app is imported from the project root, as the host does, whatever the current directory."""
    import sys

    if not (APP_ROOT / "function_app.py").is_file():
        raise RunnerError(f"no function_app.py in {APP_ROOT}: run the runner from a checkout of the project")
    if str(APP_ROOT) not in sys.path:
        sys.path.insert(0, str(APP_ROOT))
    import function_app

    return tuple(function_app.app.get_functions())


@dataclass(frozen=True)
class RetryPolicy:
    strategy: str  # fixed_delay | exponential_backoff
    max_retry_count: int
    delay_s: float = 0.0
    minimum_s: float = 0.0
    maximum_s: float = 0.0

    def delay(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1 = the first retry)."""
        if self.strategy == "fixed_delay":
            return self.delay_s
        return min(self.maximum_s, self.minimum_s * 2 ** (retry - 1))

    @classmethod
    def from_setting(cls, d: dict[str, str]) -> RetryPolicy:
        return cls(d["strategy"], int(d["max_retry_count"]), seconds(d.get("delay_interval")),
                   seconds(d.get("minimum_interval")), seconds(d.get("maximum_interval")))


def seconds(span: str | None) -> float:
    """``hh:mm:ss`` (the host's TimeSpan) as seconds."""
    if not span:
        return 0.0
    h, m, s = span.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass(frozen=True)
class Function:
    """One registered function: its trigger binding and how to call it."""

    name: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    retry: RetryPolicy | None

    @property
    def kind(self) -> str:
        return self.trigger["type"]

    def call(self, arg: object, context: func.Context | None = None) -> object:
        params = inspect.signature(self.user_function).parameters
        kwargs: dict[str, object] = {self.trigger["name"]: arg}
        for name, p in params.items():
            if name == "context" or p.annotation in (func.Context, "func.Context"):
                kwargs[name] = context or bindings.LocalContext(self.name)
        result = self.user_function(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
        return result


class Invoke(Protocol):
    """The runner's one invocation of ``f`` (logged and counted); what each trigger calls."""

    def __call__(self, f: Function, arg: object, detail: str, context: func.Context | None = None) -> object: ...


def discover(functions: tuple[Any, ...] | None = None) -> list[Function]:
    """The app's functions with their trigger bindings; refuses bindings the runner cannot honour."""
    found = []
    for fn in functions if functions is not None else app_functions():
        name = fn.get_function_name()
        bindings_ = json.loads(fn.get_function_json())["bindings"]
        triggers = [b for b in bindings_ if b["type"].endswith("Trigger")]
        others = [b for b in bindings_ if not b["type"].endswith("Trigger") and b["type"] != "http"]
        if len(triggers) != 1 or triggers[0]["type"] not in SUPPORTED:
            raise RunnerError(f"function {name}: trigger {[b['type'] for b in triggers]} is not supported by the "
                              f"local runner (it runs {', '.join(SUPPORTED)}); use `func start` for it")
        if others:
            raise RunnerError(f"function {name}: {others[0]['type']} bindings are not supported by the local "
                              "runner; use the SDK through the composition root (shared/bootstrap.py) instead")
        setting = fn.get_setting("retry_policy")
        retry = RetryPolicy.from_setting(setting.get_dict_repr()) if setting is not None else None
        found.append(Function(name, triggers[0], fn.get_user_function(), retry))
    return found


def resolve(value: str, settings: Any) -> str:
    """``%NAME%`` app-setting references resolved the way the host does; an unknown name is an error."""
    def one(part: str) -> str:
        try:
            return settings.get(part)
        except KeyError:
            raise RunnerError(f"binding expression %{part}% names no setting; declare it in shared/settings.py") \
                from None
    parts = value.split("%")
    if len(parts) % 2 == 0:
        raise RunnerError(f"unbalanced % in binding expression {value!r}")
    return "".join(one(p) if i % 2 else p for i, p in enumerate(parts))
