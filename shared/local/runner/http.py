"""The HTTP trigger: the app's routes on ``http://<host>:<port>/api/…`` with each route's auth level checked
against the runner's keys (``x-functions-key`` header or ``?code=``), plus the host's admin endpoints
``POST /admin/functions/<name>`` (run a timer now) and ``GET /admin/host/status``."""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared.local.runner import bindings
from shared.local.runner.functions import Function, RunnerError

if TYPE_CHECKING:
    from shared.local.runner.core import Runner

HTTP_MAX_BODY = 100 * 1024 * 1024  # the Functions host's request body limit (100 MB)


@dataclass(frozen=True)
class HostKeys:
    master: str
    default: str

    def accepts(self, key: str, *, admin: bool) -> bool:
        ok = secrets.compare_digest(key.encode(), self.master.encode())
        return ok or (not admin and secrets.compare_digest(key.encode(), self.default.encode()))


def host_keys(path: Path) -> HostKeys:
    """The runner's master and default function key, made on first use and kept readable by the user only."""
    try:
        d = json.loads(path.read_text())
        return HostKeys(d["masterKey"], d["functionKeys"]["default"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        keys = HostKeys(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"masterKey": keys.master, "functionKeys": {"default": keys.default}}, out, indent=2)
        os.replace(tmp, path)
        return keys


def http_server(runner: Runner, host: str, port: int) -> ThreadingHTTPServer:
    """A server, bound to ``host:port`` (0: a free port) but not yet serving, for the runner's HTTP-triggered
    functions and the admin endpoints; each request in a daemon thread."""
    routes = [(f, bindings.route_pattern(f.trigger.get("route") or f.name)) for f in runner.of("httpTrigger")]
    server = ThreadingHTTPServer((host, port), functools.partial(_HttpHandler, runner, routes))
    server.daemon_threads = True
    return server


class _BadFraming(ValueError):
    """A request whose body cannot be delimited (a Content-Length or chunk size that is not a number)."""


class _HttpHandler(BaseHTTPRequestHandler):
    server_version = "inventory-runner"
    protocol_version = "HTTP/1.1"

    def __init__(self, runner: Runner, routes: list[tuple[Function, re.Pattern[str]]], *args: Any) -> None:
        self.runner, self.routes = runner, routes
        super().__init__(*args)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None,
              mimetype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for k, v in (headers or {}).items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        if "content-type" not in sent:
            self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"error": code, "message": message}))

    def _key(self, params: dict[str, str]) -> str:
        return self.headers.get("x-functions-key") or params.get("code", "")

    def _body(self) -> bytes | None:
        """The request's body; None when it is larger than the host accepts. Raises :class:`_BadFraming` for a
        Content-Length or chunk size that is not a non-negative number (the connection cannot be read on)."""
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                return self._chunked_body()
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            raise _BadFraming("the request's Content-Length or chunk size is not a number") from None
        if length < 0:
            raise _BadFraming(f"the request's Content-Length is negative ({length})")
        if length > HTTP_MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _chunked_body(self) -> bytes | None:
        """A ``Transfer-Encoding: chunked`` body; None past the host's limit. A chunk size that is not a
        non-negative hexadecimal number raises ``ValueError``."""
        chunks, total = [], 0
        while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) != 0:
            if size < 0:
                raise ValueError(size)
            total += size
            if total > HTTP_MAX_BODY:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _read_body(self) -> bytes | None:
        """:meth:`_body`, answering 413 or 400 (and closing the connection) when it cannot be had: then None."""
        try:
            body = self._body()
        except _BadFraming as exc:
            self.close_connection = True
            self._error(400, "bad_request", str(exc))
            return None
        if body is None:
            self.close_connection = True
            self._error(413, "payload_too_large", f"the host accepts bodies up to {HTTP_MAX_BODY:,} bytes")
        return body

    def _handle(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        path = url.path
        if path.startswith("/admin/"):
            return self._admin(path, params)
        if not path.startswith("/api/"):
            return self._error(404, "not_found", f"no route {path}; the app's routes are under /api/")
        rest = path[len("/api/"):]
        for f, pattern in self.routes:
            m = pattern.fullmatch(rest)
            if m is not None:
                return self._call(f, m, params, url.path)
        return self._error(404, "not_found", f"no function at {path}")

    def _call(self, f: Function, m: re.Match[str], params: dict[str, str], path: str) -> None:
        """The request on ``f``'s route (``m``): method and key checked, then the function's response."""
        methods = [x.upper() for x in f.trigger.get("methods") or []]
        if methods and self.command not in methods:
            return self._error(405, "method_not_allowed", f"{f.name} accepts {', '.join(methods)}")
        level = str(f.trigger.get("authLevel", "FUNCTION")).upper()
        if level != "ANONYMOUS" and not self.runner.keys.accepts(self._key(params), admin=level == "ADMIN"):
            return self._send(401, b"", mimetype="text/plain")
        body = self._read_body()
        if body is None:
            return None
        req = bindings.http_request(self.command, f"{self.runner.base_url}{self.path}", dict(self.headers),
                                    params, m.groupdict(), body)
        try:
            resp = self.runner.invoke(f, req, f"{self.command} {path}")
        except Exception:
            return self._send(500, b"", mimetype="text/plain")
        if isinstance(resp, func.HttpResponse):
            return self._send(resp.status_code, resp.get_body(), dict(resp.headers), resp.mimetype or "text/plain")
        return self._send(200 if resp is not None else 204, str(resp or ""), mimetype="text/plain")

    def _admin(self, path: str, params: dict[str, str]) -> None:
        if not self.runner.keys.accepts(self._key(params), admin=True):
            return self._send(401, b"", mimetype="text/plain")
        if path == "/admin/host/status" and self.command == "GET":
            return self._send(200, json.dumps({"state": "Running", "functions": [f.name for f in
                                                                                  self.runner.functions]}))
        name = path[len("/admin/functions/"):] if path.startswith("/admin/functions/") else ""
        if not name or self.command != "POST":
            return self._error(404, "not_found", "admin endpoints: GET /admin/host/status, "
                                                 "POST /admin/functions/<name>")
        if self._read_body() is None:
            return None
        try:
            f = self.runner.function(name)
        except RunnerError as exc:
            return self._error(404, "not_found", str(exc))
        if f.kind != "timerTrigger":
            return self._error(400, "not_supported", f"{name} is a {f.kind}: upload a blob or send events to "
                                                     "trigger it")
        # The host answers 202 at once and runs the function; here the reply waits, so a script knows when
        # the run is over (the status code says whether it succeeded).
        before = self.runner.stats.failed.get(name, 0)
        self.runner.run_timer(f, why="run on demand (POST /admin/functions)")
        failed = self.runner.stats.failed.get(name, 0) > before
        return self._send(500 if failed else 202, b"", mimetype="text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle
