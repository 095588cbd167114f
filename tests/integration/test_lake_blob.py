"""The Lake contract, run on both lakes: the folder (local default) and Blob storage (Azurite).

Every test taking the ``lake`` fixture runs twice; what passes on the folder must pass on the blob lake,
so the local default is a faithful stand-in. Tests at the bottom cover what only the Blob lake has.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared.adapters.lake_folder import FolderLake
from shared.ports.lake import LakeError

MB = 1 << 20


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MB):
            h.update(chunk)
    return h.hexdigest()


# -- bytes and files --------------------------------------------------------------------------------


def test_put_and_get_bytes(lake):
    assert lake.put_bytes("manifests/store=S1/a.json", b'{"rows": 3}') is True
    assert lake.get_bytes("manifests/store=S1/a.json") == b'{"rows": 3}'


def test_empty_object_round_trips(lake, tmp_path):
    assert lake.put_bytes("x/empty", b"") is True
    assert lake.get_bytes("x/empty") == b""
    lake.get_to_file("x/empty", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b""
    assert lake.head("x/empty").size == 0


def test_put_file_and_get_to_file(lake, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(300_000))
    sent: list[int] = []
    assert lake.put_file("raw/store=S1/date=2026-11-27/d.sqlite.gz", src, progress=sent.append) is True
    assert sum(sent) == src.stat().st_size

    received: list[int] = []
    out = tmp_path / "out.bin"
    lake.get_to_file("raw/store=S1/date=2026-11-27/d.sqlite.gz", out, progress=received.append)
    assert out.read_bytes() == src.read_bytes()
    assert sum(received) == src.stat().st_size


def test_metadata_round_trips_through_head(lake, tmp_path):
    meta = {"sha256": "ab" * 32, "snapshot_at": "2026-11-27T03:00:00Z", "source_name": "pos main.db"}
    lake.put_bytes("m/bytes", b"1", metadata=meta)
    src = tmp_path / "f"
    src.write_bytes(b"22")
    lake.put_file("m/file", src, metadata=meta)

    for path, size in (("m/bytes", 1), ("m/file", 2)):
        obj = lake.head(path)
        assert obj is not None
        assert (obj.path, obj.size, obj.metadata) == (path, size, meta)
        assert obj.etag


def test_overwrite_false_is_a_no_op_that_keeps_the_original(lake, tmp_path):
    meta = {"sha256": "original"}
    assert lake.put_bytes("raw/x", b"original", metadata=meta, overwrite=False) is True
    assert lake.put_bytes("raw/x", b"other", metadata={"sha256": "other"}, overwrite=False) is False

    other = tmp_path / "other"
    other.write_bytes(b"other file")
    sent: list[int] = []
    assert (
        lake.put_file("raw/x", other, metadata={"sha256": "x"}, overwrite=False, progress=sent.append)
        is False
    )
    assert sent == []  # nothing was transferred for an object that exists

    assert lake.get_bytes("raw/x") == b"original"
    assert lake.head("raw/x").metadata == meta


def test_overwrite_true_replaces_content_and_metadata(lake):
    lake.put_bytes("c/x", b"v1", metadata={"v": "1"})
    before = lake.head("c/x").etag
    assert lake.put_bytes("c/x", b"version 2", metadata={"v": "2"}) is True
    obj = lake.head("c/x")
    assert lake.get_bytes("c/x") == b"version 2"
    assert (obj.size, obj.metadata) == (9, {"v": "2"})
    assert obj.etag != before


def _race_conditional_creates(lake, path: str, writers: int = 6) -> int:
    """Start ``writers`` threads creating ``path`` with overwrite=False at once; return the winner."""
    results: dict[int, bool] = {}
    barrier = threading.Barrier(writers)

    def create(i: int) -> None:
        barrier.wait()
        results[i] = lake.put_bytes(path, f"writer {i}".encode(), metadata={"w": str(i)}, overwrite=False)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1, f"exactly one writer must create {path}; these did: {winners}"
    return winners[0]


def test_racing_conditional_creates_have_exactly_one_winner(lake):
    """overwrite=False must be an atomic create-if-missing, not check-then-write."""
    for round_ in range(10):
        winner = _race_conditional_creates(lake, f"race/{round_}")
        assert lake.get_bytes(f"race/{round_}") == f"writer {winner}".encode()


def test_racing_conditional_creates_keep_the_winners_metadata(lake):
    for round_ in range(10):  # 10 rounds: a lucky ordering cannot hide the bug
        winner = _race_conditional_creates(lake, f"race/{round_}")
        assert lake.head(f"race/{round_}").metadata == {"w": str(winner)}


# -- missing objects --------------------------------------------------------------------------------


def test_head_of_missing_object_is_none(lake):
    assert lake.head("raw/store=S1/nothing.sqlite") is None


def test_get_of_missing_object_raises_file_not_found(lake, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        lake.get_bytes("raw/nothing")
    with pytest.raises(FileNotFoundError, match="nothing"):
        lake.get_to_file("raw/nothing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- listing ----------------------------------------------------------------------------------------


def test_list_by_prefix_in_path_order(lake):
    paths = [
        "raw/store=S2/date=2026-11-01/b",
        "raw/store=S1/date=2026-11-02/a",
        "raw/store=S10/date=2026-11-01/a",
        "raw/store=S1/date=2026-11-01/b",
        "raw/store=S1/date=2026-11-01/a",
        "curated/items/store=S1/x.parquet",
    ]
    for i, p in enumerate(paths):
        lake.put_bytes(p, b"x" * (i + 1))

    assert [o.path for o in lake.list("raw/store=S1/")] == [
        "raw/store=S1/date=2026-11-01/a",
        "raw/store=S1/date=2026-11-01/b",
        "raw/store=S1/date=2026-11-02/a",
    ]
    # A prefix need not end at a folder boundary.
    assert [o.path for o in lake.list("raw/store=S1")] == sorted(
        p for p in paths if p.startswith("raw/store=S1")
    )
    assert [o.path for o in lake.list("raw/")] == sorted(p for p in paths if p.startswith("raw/"))
    assert list(lake.list("aggregates/")) == []
    assert list(lake.list("raw/store=S3/")) == []


def test_list_and_head_agree(lake):
    lake.put_bytes("a/b/c", b"12345", metadata={"k": "v"})
    [listed] = list(lake.list("a/"))
    head = lake.head("a/b/c")
    assert (listed.path, listed.size, listed.etag) == (head.path, head.size, head.etag)


# -- large files ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_large_file_streams_in_several_blocks(lake, tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(20):
            f.write(os.urandom(MB))
    sent: list[int] = []
    assert lake.put_file("raw/store=S1/date=2026-11-27/big.sqlite.gz", src, progress=sent.append) is True
    assert len(sent) > 1, "progress must be reported per block, not once at the end"
    assert sum(sent) == 20 * MB
    assert lake.head("raw/store=S1/date=2026-11-27/big.sqlite.gz").size == 20 * MB

    received: list[int] = []
    out = tmp_path / "back.bin"
    lake.get_to_file("raw/store=S1/date=2026-11-27/big.sqlite.gz", out, progress=received.append)
    assert len(received) > 1
    assert sum(received) == 20 * MB
    assert _file_sha(out) == _file_sha(src)


# -- local copies -----------------------------------------------------------------------------------


def test_local_copy_yields_files_in_the_order_asked(lake):
    contents = {
        "curated/sales/store=S1/date=2026-11-01/p.parquet": b"one",
        "manifests/store=S1/d.json": b"two",
    }
    for p, data in contents.items():
        lake.put_bytes(p, data)
    order = [
        "manifests/store=S1/d.json",
        "curated/sales/store=S1/date=2026-11-01/p.parquet",
        "manifests/store=S1/d.json",
    ]
    with lake.local_copy(order) as local:
        assert len(local) == 3
        assert [p.read_bytes() for p in local] == [contents[p] for p in order]
        # Hive-style partition folders survive, for engines that read them from paths.
        assert local[1].as_posix().endswith("store=S1/date=2026-11-01/p.parquet")


def test_local_copy_into_a_scratch_folder_leaves_nothing_there(lake, tmp_path):
    # The ingest and the aggregates download into their own scratch folder (swept after a crash), never
    # the system's temporary folder.
    lake.put_bytes("curated/sales/store=S1/date=2026-11-01/p.parquet", b"one")
    scratch = tmp_path / "scratch"
    with lake.local_copy(["curated/sales/store=S1/date=2026-11-01/p.parquet"], into=scratch) as [local]:
        assert local.read_bytes() == b"one"
        if not isinstance(lake, FolderLake):  # the folder lake yields its own file: no copy at all
            assert scratch in local.parents
    assert not scratch.exists() or not any(scratch.iterdir())


def test_delete_removes_an_object_and_its_metadata(lake):
    lake.put_bytes("curated/sales/store=S1/date=2026-11-01/d-0.parquet", b"rows", metadata={"k": "v"})
    lake.put_bytes("curated/sales/store=S1/date=2026-11-01/e-0.parquet", b"other")
    assert lake.delete("curated/sales/store=S1/date=2026-11-01/d-0.parquet") is True
    assert lake.head("curated/sales/store=S1/date=2026-11-01/d-0.parquet") is None
    assert [o.path for o in lake.list("curated/")] == ["curated/sales/store=S1/date=2026-11-01/e-0.parquet"]
    assert lake.delete("curated/sales/store=S1/date=2026-11-01/d-0.parquet") is False  # already gone
    assert lake.delete("curated/sales/store=S1") is False  # a folder is not an object
    lake.put_bytes("curated/sales/store=S1/date=2026-11-01/d-0.parquet", b"again")  # no stale metadata
    assert lake.head("curated/sales/store=S1/date=2026-11-01/d-0.parquet").metadata == {}
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.delete("../x")


def test_put_files_writes_each_file_to_its_path_and_consumes_only_when_asked(lake, tmp_path):
    # More files than the Blob lake uploads at once.
    files = []
    for i in range(20):
        f = tmp_path / "stage" / f"{i}.parquet"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(f"file {i} ".encode() * (i + 1))
        files.append((f"curated/sales/store=S1/date=2026-10-{i + 1:02d}/d-0.parquet", f))
    kept = files[:10]
    lake.put_files(kept)
    assert all(f.exists() for _, f in kept)
    lake.put_files(files[10:], consume=True)
    assert not any(f.exists() for _, f in files[10:])
    assert [o.path for o in lake.list("curated/")] == [p for p, _ in files]
    assert [lake.get_bytes(p) for p, _ in files] == [f"file {i} ".encode() * (i + 1) for i in range(20)]
    lake.put_files([])


def test_put_files_raises_the_first_failure(lake, tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"rows")
    files = [(f"curated/x/{i}.parquet", good) for i in range(12)]
    files.insert(5, ("curated/x/missing.parquet", tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="missing"):
        lake.put_files(files)
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.put_files([("../x", good)])
    assert lake.head("curated/x/missing.parquet") is None


def test_delete_many_says_which_objects_were_there(lake):
    paths = [f"curated/sales/store=S1/date=2026-10-{d:02d}/p.parquet" for d in range(1, 21)]
    for p in paths[::2]:
        lake.put_bytes(p, b"rows")
    lake.put_bytes("curated/sales/store=S2/date=2026-10-01/p.parquet", b"kept")
    assert lake.delete_many(paths) == paths[::2]
    assert [o.path for o in lake.list("curated/")] == ["curated/sales/store=S2/date=2026-10-01/p.parquet"]
    assert lake.delete_many(paths) == []
    assert lake.delete_many([]) == []


def test_local_copy_of_many_files_gives_each_its_own_content(lake, tmp_path):
    # More files than the Blob lake downloads at once, one of them asked twice: each local file holds its
    # own object's bytes, in the order asked.
    paths = [f"curated/sales/store=S1/date=2026-10-{d:02d}/p.parquet" for d in range(1, 21)]
    for i, p in enumerate(paths):
        lake.put_bytes(p, f"day {i} ".encode() * (i + 1))
    order = [*paths, paths[3]]
    with lake.local_copy(order, into=tmp_path / "scratch") as local:
        assert [f.read_bytes() for f in local] == [lake.get_bytes(p) for p in order]


def test_local_copy_with_a_missing_object_fails_and_leaves_nothing(lake, tmp_path):
    paths = [f"curated/sales/store=S1/date=2026-10-{d:02d}/p.parquet" for d in range(1, 13)]
    for p in paths:
        lake.put_bytes(p, b"rows")
    scratch = tmp_path / "scratch"
    with pytest.raises(FileNotFoundError), lake.local_copy([*paths[:6], "curated/sales/gone.parquet", *paths[6:]],
                                                          into=scratch):
        pass
    assert not scratch.exists() or not any(scratch.iterdir())


def test_local_copy_of_nothing(lake):
    with lake.local_copy([]) as local:
        assert local == []


# -- paths ------------------------------------------------------------------------------------------

BAD_PATHS = ["../x", "/abs", "raw/../x", "raw//x", "raw/./x", "", "raw\\x", ".."]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_invalid_paths_are_rejected(lake, tmp_path, bad):
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.put_bytes(bad, b"x")
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.put_file(bad, src)
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.get_bytes(bad)
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.get_to_file(bad, tmp_path / "out")
    with pytest.raises(LakeError, match="invalid lake path"):
        lake.head(bad)
    with pytest.raises(LakeError, match="invalid lake path"), lake.local_copy(["ok", bad]):
        pass


@pytest.mark.parametrize("bad", ["../", "../x/", "raw/../"])
def test_list_rejects_escaping_prefixes(lake, bad):
    with pytest.raises(LakeError, match="invalid lake"):
        list(lake.list(bad))


# == Blob lake only ================================================================================


@pytest.mark.azurite
def test_describe_is_the_container_url(blob_lake):
    url = blob_lake.describe()
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/devstoreaccount1/" + blob_lake.container.container_name)


@pytest.mark.azurite
def test_opening_an_existing_container_reuses_it(blob_lake, azurite_conn):
    from shared.adapters.lake_blob import BlobLake

    blob_lake.put_bytes("kept/x", b"still here")
    again = BlobLake.from_connection_string(azurite_conn, blob_lake.container.container_name)  # 409 tolerated
    assert again.get_bytes("kept/x") == b"still here"


@pytest.mark.azurite
def test_racing_block_uploads_never_mix_blocks(blob_lake, tmp_path):
    """Two multi-block uploads of different files to one path: one wins whole, blocks never interleave."""
    from shared.adapters.lake_blob import BlobLake

    small_blocks = BlobLake(blob_lake.container, block_size=64 * 1024, create_container=False)
    sources = []
    for i in range(4):
        src = tmp_path / f"src{i}"
        src.write_bytes(bytes([i]) * (512 * 1024 + 7))  # 9 blocks each
        sources.append(src)
    results: dict[int, bool] = {}
    barrier = threading.Barrier(len(sources))

    def upload(i: int) -> None:
        barrier.wait()
        results[i] = small_blocks.put_file("race/big", sources[i], metadata={"w": str(i)}, overwrite=False)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [winner] = [i for i, won in results.items() if won]
    assert blob_lake.get_bytes("race/big") == sources[winner].read_bytes()
    assert blob_lake.head("race/big").metadata == {"w": str(winner)}


@pytest.mark.azurite
def test_blob_metadata_must_be_ascii(blob_lake):
    with pytest.raises(LakeError, match="printable ASCII"):
        blob_lake.put_bytes("m/x", b"1", metadata={"source_name": "loja São Paulo.db"})
    with pytest.raises(LakeError, match="metadata key"):
        blob_lake.put_bytes("m/x", b"1", metadata={"bad-key": "v"})
    assert blob_lake.head("m/x") is None


@pytest.mark.azurite
def test_adls_folder_entries_are_not_objects(blob_lake):
    """ADLS Gen2 lists folders through the Blob API as empty blobs marked hdi_isfolder=true."""
    blob_lake.container.upload_blob("raw/store=S1", b"", metadata={"hdi_isfolder": "true"})
    blob_lake.put_bytes("raw/store=S1/date=2026-11-27/d.sqlite.gz", b"dump")
    assert [o.path for o in blob_lake.list("raw/")] == ["raw/store=S1/date=2026-11-27/d.sqlite.gz"]
    assert blob_lake.head("raw/store=S1") is None
    with pytest.raises(FileNotFoundError):
        blob_lake.get_bytes("raw/store=S1")


@pytest.mark.azurite
def test_concurrent_transfers_fit_the_connection_pool(blob_lake, tmp_path, caplog):
    # Two ingests publishing and a local_copy at once, as in one function worker: with urllib3's default
    # pool of 10 connections this logged "Connection pool is full, discarding connection" (and reconnected).
    from concurrent.futures import ThreadPoolExecutor

    src = tmp_path / "f"
    src.write_bytes(b"x" * 1000)
    paths = [f"curated/sales/store=S1/date=2026-10-{d:02d}/p.parquet" for d in range(1, 25)]
    for p in paths:
        blob_lake.put_bytes(p, b"rows")
    caplog.set_level(logging.WARNING, logger="urllib3")

    def copy() -> None:
        with blob_lake.local_copy(paths, into=tmp_path / "scratch"):
            pass

    def publish(ingest: int) -> None:  # as ingest_dump._publish does: parallel_files uploads at once
        blob_lake.put_files([(f"up/{ingest}/{i}.parquet", src) for i in range(40)])

    with ThreadPoolExecutor(3) as outer:
        for f in [outer.submit(copy), outer.submit(publish, 1), outer.submit(publish, 2)]:
            f.result()
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


@pytest.mark.azurite
def test_local_copy_removes_its_downloads(blob_lake):
    blob_lake.put_bytes("a/x", b"1")
    with blob_lake.local_copy(["a/x"]) as [local]:
        assert local.read_bytes() == b"1"
    assert not local.exists()
    assert not local.parent.parent.exists()


@pytest.mark.azurite
def test_missing_container_is_reported_not_mistaken_for_a_missing_object(blob_lake):
    blob_lake.container.delete_container()
    with pytest.raises(LakeError, match="container does not exist"):
        blob_lake.head("x")


def test_unreachable_endpoint_names_the_endpoint_and_the_fix():
    from azure.storage.blob import ContainerClient, ExponentialRetry

    from shared.adapters.lake_blob import BlobLake

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={'a' * 88};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    client = ContainerClient.from_connection_string(
        conn, "lake", retry_policy=ExponentialRetry(retry_total=0)
    )
    with pytest.raises(LakeError) as info:
        BlobLake(client)
    message = str(info.value)
    assert f"127.0.0.1:{port}/devstoreaccount1/lake" in message
    assert "devservers.sh start" in message
    assert "a" * 88 not in message  # never repeat a key


@pytest.mark.parametrize("name", ["", "ab", "Lake", "lake_1", "-lake", "a" * 64, "la--ke"])
def test_invalid_container_names_are_rejected_up_front(name):
    from shared.adapters.lake_blob import BlobLake

    with pytest.raises(LakeError, match="LAKE_CONTAINER"):
        BlobLake.from_connection_string("UseDevelopmentStorage=true", name)


def test_bad_connection_string_is_reported_without_echoing_it():
    from shared.adapters.lake_blob import BlobLake

    with pytest.raises(LakeError, match="setting LAKE") as info:
        BlobLake.from_connection_string("AccountKey=secretsecret;nonsense", "lake")
    assert "secretsecret" not in str(info.value)


def test_service_uri_must_be_https():
    from shared.adapters.lake_blob import BlobLake

    with pytest.raises(LakeError, match="https://"):
        BlobLake.from_service_uri("http://acct.blob.core.windows.net", "lake", credential=object())


class _FlakyProxy(ThreadingHTTPServer):
    """Forwards HTTP to Azurite, answering the first ``failures`` Put Block requests with 503 Server Busy:
    what a throttled storage account does. Lets the test see the retry policy at work on real requests."""

    daemon_threads = True

    def __init__(self, upstream_port: int, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.failures_left = failures
        self.failed_paths: list[str] = []
        self.lock = threading.Lock()


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _FlakyProxy

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            fail = "comp=block&" in self.path + "&" and self.server.failures_left > 0
            if fail:
                self.server.failures_left -= 1
                self.server.failed_paths.append(self.path)
        if fail:
            self.send_response(503, "Server Busy")
            self.send_header("x-ms-error-code", "ServerBusy")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        reply = upstream.getresponse()
        data = reply.read()
        self.send_response(reply.status, reply.reason)
        for key, value in reply.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle


@pytest.mark.azurite
def test_a_throttled_block_is_retried_by_the_explicit_retry_policy(azurite_conn, tmp_path):
    from shared.adapters.lake_blob import BlobLake

    azurite_port = int(re.search(r"BlobEndpoint=http://127\.0\.0\.1:(\d+)/", azurite_conn)[1])
    proxy = _FlakyProxy(azurite_port, failures=1)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        conn = azurite_conn.replace(f":{azurite_port}/", f":{proxy.server_address[1]}/")
        lake = BlobLake(
            BlobLake.from_connection_string(conn, f"retry-{uuid.uuid4().hex[:12]}").container,
            block_size=256 * 1024,
            create_container=False,
        )
        src = tmp_path / "f"
        src.write_bytes(os.urandom(1024 * 1024))
        sent: list[int] = []
        assert lake.put_file("raw/throttled", src, progress=sent.append) is True
        assert len(proxy.failed_paths) == 1, "the proxy should have refused one Put Block request"
        assert lake.get_bytes("raw/throttled") == src.read_bytes()
        assert sum(sent) == src.stat().st_size
        lake.delete_container()
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.mark.azurite
def test_a_wrong_account_key_is_reported_as_refused_access(azurite_conn):
    from shared.adapters.lake_blob import BlobLake

    wrong_key = "A" * 86 + "=="
    conn = re.sub(r"AccountKey=[^;]+", f"AccountKey={wrong_key}", azurite_conn)
    with pytest.raises(LakeError, match="access was refused") as info:
        BlobLake.from_connection_string(conn, "lake")
    assert wrong_key not in str(info.value)


def test_head_and_list_tell_when_an_object_was_written(lake):
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC) - timedelta(seconds=5)  # Azurite and file systems round to seconds or better
    lake.put_bytes("when/a.txt", b"x")
    head = lake.head("when/a.txt")
    [listed] = list(lake.list("when/"))
    for obj in (head, listed):
        assert obj.last_modified is not None and obj.last_modified.tzinfo is not None
        assert before <= obj.last_modified <= datetime.now(UTC) + timedelta(seconds=5)
