"""Benchmark: moving many small files to and from the Blob lake, one at a time vs several at once.

    python bench/lake_transfers.py [--files 600] [--kb 64] [--rtt-ms 0,20]

A store's first ingest publishes one Parquet file per day and table (~600 for a year), and every night's
ingest downloads the store's curated sales files to find the lines already in the lake. Each file is one
request, so against Azure the round trip sets the pace, not the bandwidth. This starts Azurite (npm, in
memory, on loopback) and measures, in the same run:

* **publish**: ``Lake.put_files`` (how the aggregates and the ingest's scratch outputs reach the lake:
  ``parallel_files`` uploads at once) against one ``put_file`` after another;
* **local_copy**: ``BlobLake.local_copy`` with its default ``parallel_files`` against ``parallel_files=1``
  (one download after another).

Each at the round-trip times given: 0 is Azurite straight on loopback (then the two CPUs, shared by the
client and Azurite, are the limit); other values go through a proxy on loopback that delays every chunk by
half the round trip in each direction (propagation delay, no bandwidth limit), standing in for the network
between a function app and its storage account. Not a test: it prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import harness  # bench/harness.py, beside this file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
HOST = "127.0.0.1"
# The storage emulator's published development account and key: they only work against an emulator.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_for(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on {HOST}:{port} after {timeout_s} s")


class DelayProxy:
    """A TCP proxy on loopback that forwards every chunk ``one_way_s`` after it arrived, in order, in both
    directions: a network's propagation delay without its bandwidth limit. Runs its own event loop in a
    thread."""

    def __init__(self, target_port: int, one_way_s: float) -> None:
        self.target_port, self.one_way_s = target_port, one_way_s
        self.port = _free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, HOST, self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def forward() -> None:
            while (item := await queue.get()) is not None:
                due, chunk = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(forward())
        try:
            while chunk := await reader.read(1 << 16):
                queue.put_nowait((time.monotonic() + self.one_way_s, chunk))
        except ConnectionError:
            pass
        queue.put_nowait(None)
        await sender

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(HOST, self.target_port)
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w),
                                 return_exceptions=True)
        except asyncio.CancelledError:  # the proxy is closing: end quietly
            client_w.close()
            server_w.close()

    def close(self) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(5)
        self._loop.close()


def _lake(port: int, container: str, **kwargs: object):
    from shared.adapters.lake_blob import BlobLake

    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://{HOST}:{port}/devstoreaccount1;")
    lake = BlobLake.from_connection_string(conn, container)
    return BlobLake(lake.container, create_container=False, **kwargs) if kwargs else lake


def _stage(folder: Path, files: int, size: int) -> list[str]:
    """``files`` Parquet-sized files laid out as a first ingest stages them (curated sales by day)."""
    paths = []
    for i in range(files):
        path = f"curated/sales/store=S1/date=2025-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}-{i:04d}/d-0.parquet"
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def _timed(fn) -> harness.Stopwatch:
    return harness.timed(fn)[0]


def measure(port: int, files: int, size: int, work: Path) -> dict[str, harness.Stopwatch]:
    container = f"bench-{uuid.uuid4().hex[:12]}"
    lake = _lake(port, container)
    one_at_a_time = _lake(port, container, parallel_files=1)
    out: dict[str, harness.Stopwatch] = {}
    try:
        stage = work / "stage"
        paths = _stage(stage, files, size)
        out["publish, one at a time (before)"] = _timed(
            lambda: [lake.put_file(p, stage / p) for p in paths])
        out["publish, Lake.put_files"] = _timed(lambda: lake.put_files([(p, stage / p) for p in paths]))
        assert sorted(o.path for o in lake.list("curated/")) == sorted(paths)

        def copy(which) -> None:
            with which.local_copy(paths, into=work / "scratch") as local:
                assert len(local) == files and local[0].stat().st_size == size

        out["local_copy, one at a time (before)"] = _timed(lambda: copy(one_at_a_time))
        out[f"local_copy, {lake.parallel_files} at once"] = _timed(lambda: copy(lake))
    finally:
        lake.delete_container()
        shutil.rmtree(work / "stage", ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=600, help="files per run (a year of a store: ~600)")
    ap.add_argument("--kb", type=int, default=64, help="size of each file in KiB")
    ap.add_argument("--rtt-ms", default="0,20", help="round-trip times to emulate, comma-separated")
    args = ap.parse_args(argv)
    if not AZURITE.exists():
        print(f"Azurite is not installed ({AZURITE}): run `npm ci` first", file=sys.stderr)
        return 2
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="azurite-bench-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen([str(AZURITE), "--blobHost", HOST, "--blobPort", str(port), "--inMemoryPersistence",
                             "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    rows = []
    try:
        _wait_for(port)
        for rtt in [float(x) for x in args.rtt_ms.split(",") if x.strip()]:
            proxy = DelayProxy(port, rtt / 2000) if rtt > 0 else None
            with tempfile.TemporaryDirectory(prefix="lake-transfers-") as work:
                harness.say(f"round trip {rtt:g} ms: {args.files} files of {args.kb} KiB ...")
                figures = measure(proxy.port if proxy else port, args.files, args.kb << 10, Path(work))
            if proxy:
                proxy.close()
            rows += [(rtt, name, secs) for name, secs in figures.items()]
    finally:
        proc.terminate()
        proc.wait(10)
        os.unlink(log.name)
    print(f"### Many small files to and from the Blob lake: {args.files} files of {args.kb} KiB\n")
    print(f"{harness.provenance(harness.command(__file__, argv))} Azurite on loopback; client CPU s = user + "
          "system of this process (Azurite apart).\n")
    base: dict[tuple[float, str], float] = {}
    table = []
    for rtt, name, t in rows:
        kind = name.split(",")[0]
        if "before" in name:
            base[(rtt, kind)] = t.wall_s
        ratio = base.get((rtt, kind), t.wall_s) / t.wall_s
        table.append([f"{rtt:g}", name, f"{t.wall_s:.2f}", f"{t.cpu_s:.2f}", f"{args.files / t.wall_s:,.0f}",
                      f"{ratio:.1f}×"])
    print("\n".join(harness.md_table(["round trip ms", "path", "wall s", "client CPU s", "files/s",
                                      "vs one at a time"], table)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
