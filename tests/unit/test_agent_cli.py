"""``inventory-agent``: one line per run on stderr (and in the log file), exit 0 uploaded or already there, 1
for any error with the fix in the line. In process, on a folder destination; tests/integration/
test_agent_package.py runs the installed command against Azurite."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from inventory_agent import __version__
from inventory_agent.cli import log_line, main

from tests.support.dumps import make_dump

LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) inventory-agent (?P<version>\S+) (?P<rest>.*)$")


@pytest.fixture(autouse=True)
def no_agent_environment(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith(("INVENTORY_AGENT_", "AZURE_", "LAKE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("INVENTORY_AGENT_HOME", str(tmp_path / "home"))


def fields(line: str) -> dict[str, str]:
    m = LINE.match(line)
    assert m, f"not a run line: {line!r}"
    assert m["version"] == __version__
    return dict(part.split("=", 1) for part in shlex.split(m["rest"]))


def run(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line]


def test_an_upload_then_the_same_content_again(capsys, tmp_path):
    db = make_dump(tmp_path / "pos.db")
    log = tmp_path / "logs" / "agent.log"
    argv = ["--db", str(db), "--store", "S042", "--folder", str(tmp_path / "lake"), "--log-file", str(log)]

    code, lines = run(capsys, *argv)
    assert code == 0 and len(lines) == 1, lines
    first = fields(lines[0])
    assert first["store"] == "S042" and first["result"] == "uploaded"
    assert re.fullmatch(r"raw/store=S042/date=\d{4}-\d\d-\d\d/S042-[0-9a-f]{16}\.sqlite\.gz", first["path"])
    assert first["path"].endswith(f"S042-{first['sha256'][:16]}.sqlite.gz")
    assert (tmp_path / "lake" / first["path"]).stat().st_size == int(first["bytes"])
    assert int(first["uncompressed_bytes"]) == db.stat().st_size
    assert first["destination"] == str(tmp_path / "lake") and float(first["seconds"]) >= 0
    meta = json.loads((tmp_path / "lake" / ".meta" / (first["path"] + ".json")).read_text())
    assert meta["store_id"] == "S042" and meta["sha256"] == first["sha256"]

    code, lines = run(capsys, *argv)
    assert code == 0 and fields(lines[0])["result"] == "already-present"
    assert [fields(x)["result"] for x in log.read_text().splitlines()] == ["uploaded", "already-present"]
    assert list((tmp_path / "home" / "tmp").iterdir()) == [], "the snapshot is removed after the run"


def test_settings_from_a_config_file(capsys, tmp_path):
    make_dump(tmp_path / "pos.db")
    cfg = tmp_path / "agent.toml"
    cfg.write_text('store_id = "S7"\ndatabase = "pos.db"\nfolder = "lake"\nlog_file = "agent.log"\n')
    code, lines = run(capsys, "--config", str(cfg), "--quiet")
    assert code == 0 and fields(lines[0])["result"] == "uploaded"
    assert (tmp_path / "agent.log").read_text().strip() == lines[0]


def test_a_config_that_is_incomplete_still_logs_to_its_log_file(capsys, tmp_path):
    # On Windows the log file is the only place a run's line is kept (Task Scheduler keeps no output).
    cfg = tmp_path / "agent.toml"
    cfg.write_text('store_id = "S7"\ndatabase = "pos.db"\nlog_file = "agent.log"\n')
    code, lines = run(capsys, "--config", str(cfg))
    assert code == 1 and "say where to upload" in fields(lines[0])["error"]
    assert (tmp_path / "agent.log").read_text().strip() == lines[0]


@pytest.mark.parametrize("argv, error", [
    (["--db", "{tmp}/missing.db", "--store", "S1", "--folder", "{tmp}/lake"], "no database file at .*missing.db"),
    (["--db", "{tmp}/pos.db", "--store", "../S1", "--folder", "{tmp}/lake"], "invalid store id '../S1'"),
    (["--db", "{tmp}/pos.db", "--store", "S1"], "say where to upload"),
    (["--db", "{tmp}/not-sqlite.db", "--store", "S1", "--folder", "{tmp}/lake"], "is not a SQLite database"),
])
def test_an_error_is_one_line_with_exit_1(capsys, tmp_path, argv, error):
    make_dump(tmp_path / "pos.db")
    (tmp_path / "not-sqlite.db").write_text("sku,qty\n")
    code, lines = run(capsys, *[a.format(tmp=tmp_path) for a in argv], "--log-file", str(tmp_path / "a.log"))
    assert code == 1 and len(lines) == 1, lines
    f = fields(lines[0])
    assert f["result"] == "error" and re.search(error, f["error"])
    assert (tmp_path / "a.log").read_text().strip() == lines[0]
    assert not (tmp_path / "lake" / "raw").exists()


def test_a_store_id_that_is_not_one_is_quoted_in_the_line():
    assert 'store="S 1\\nx"' in log_line("S 1\nx", {"result": "error"})
    assert " store=S1 " in log_line("S1", {"result": "error", "error": 'say "what"'})
    assert 'error="say \\"what\\""' in log_line("S1", {"error": 'say "what"'})
    assert log_line("S1", {"path": "raw/store=S1/x.gz", "db": "/pos/São.db"}).endswith(
        'path=raw/store=S1/x.gz db="/pos/S\\u00e3o.db"'), "plain ASCII, whatever the console's code page"


def test_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "usage: inventory-agent" in out and "INVENTORY_AGENT_STORE_ID" in out
    with pytest.raises(SystemExit) as exit_:
        main(["--folder", "x", "--account-url", "https://y"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out
