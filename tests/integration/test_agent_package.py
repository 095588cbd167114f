"""The store agent installs on its own: ``pip install ./agent`` into a fresh virtual environment (a built, not
editable, install) gives the ``inventory-agent`` command, adds one package of its own (``inventory_agent``),
none of the pipeline (``shared`` is not importable there) and none of its data stack, and that command uploads
a database to Azurite, checked from here with azure-storage-blob.

It needs PyPI, or pip's cache, for setuptools (the build) and the agent's three dependencies and theirs. The
versions are pinned to this environment's (``pip freeze`` as constraints): the test checks the agent's
ranges admit what the pipeline tests, and pip finds them in its cache after the first run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dumps import make_dump

pytestmark = [pytest.mark.slow, pytest.mark.azurite]

REPO = Path(__file__).resolve().parents[2]
BIN = "Scripts" if os.name == "nt" else "bin"


def run(argv: list, *, env: dict[str, str] | None = None, cwd: Path, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"{argv}: {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def clean_environment() -> dict[str, str]:
    """No variable of the agent's, the pipeline's or Python's that could leak this checkout into the venv. HOME
    stays: pip keeps its configuration and its cache there."""
    drop = ("INVENTORY", "AZURE_", "LAKE", "PYTHON", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """(the venv, a folder outside the checkout to run in, the site-packages entries the venv started with)."""
    tmp = tmp_path_factory.mktemp("agent-package")
    env = clean_environment()
    # A copy of the sources, as an operator's checkout has them: the build writes build/ and *.egg-info/ next to
    # them, which must not land in this worktree (nor stale ones from it in the wheel).
    source = shutil.copytree(REPO / "agent", tmp / "agent",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp, env=env)
    python = venv / BIN / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp,
                    env=env).stdout.strip())
    before = {p.name for p in site.iterdir()}
    freeze = run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], cwd=tmp, env=env).stdout
    constraints = tmp / "constraints.txt"
    constraints.write_text("\n".join(line for line in freeze.splitlines()
                                     if "==" in line and not line.lower().startswith("inventory")) + "\n")
    run([python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-c", constraints, source],
        cwd=tmp, env=env, timeout=600)
    return venv, tmp, before


def test_the_distribution_adds_only_its_own_package_and_needs_no_pipeline(agent_venv):
    venv, cwd, before = agent_venv
    python, env = venv / BIN / "python", clean_environment()
    probe = run([python, "-c", """
import importlib.metadata as m, importlib.util, json
files = [str(f) for f in m.files("inventory-agent")]
print(json.dumps({"files": files, "requires": m.requires("inventory-agent"),
                  "shared": importlib.util.find_spec("shared") is not None,
                  "installed": sorted(d.metadata["Name"].lower() for d in m.distributions())}))
"""], cwd=cwd, env=env)
    found = json.loads(probe.stdout)
    top_level = {f.split("/")[0] for f in found["files"] if not f.startswith("..")}  # ../../bin/ is the script
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"inventory_agent"}
    assert all(re.fullmatch(r"inventory_agent-[\d.]+\.dist-info", t) for t in top_level if t.endswith(".dist-info"))
    assert not found["shared"], "the pipeline's package must not be importable on a store PC"
    assert run([python, "-c", "import shared"], cwd=cwd, env=env, check=False).returncode == 1
    assert sorted(re.split(r"[<>=!~ ;]", r)[0] for r in found["requires"]) == [
        "azure-identity", "azure-storage-blob", "tqdm"]
    heavy = {"pyarrow", "duckdb", "deltalake", "numpy", "azure-functions", "azure-cosmos", "azure-eventhub",
             "inventory-pipeline"}
    assert heavy.isdisjoint(found["installed"])
    assert "inventory-agent" in found["installed"]

    added = {p.name for p in Path(next(venv.glob("lib/python*/site-packages"), venv / "Lib" / "site-packages"))
             .iterdir()} - before
    assert "shared" not in added and "inventory_agent" in added

    help_ = run([venv / BIN / "inventory-agent", "--help"], cwd=cwd, env=env)
    assert help_.stdout.startswith("usage: inventory-agent") and "INVENTORY_AGENT_STORE_ID" in help_.stdout


def test_the_installed_command_uploads_a_database_to_azurite(agent_venv, azurite_conn, blob_lake):
    venv, cwd, _ = agent_venv
    work = cwd / "store-pc"
    work.mkdir(exist_ok=True)
    db = make_dump(work / "pos.db")
    rows = sqlite3.connect(db).execute("SELECT count(*) FROM sales").fetchone()[0]
    container = blob_lake.container.container_name  # made by the fixture: the agent never creates containers
    config = work / "agent.toml"
    config.write_text(f'store_id = "S042"\ndatabase = "pos.db"\ncontainer = "{container}"\n'
                      'log_file = "logs/agent.log"\nhome = "state"\n')
    env = {**clean_environment(), "INVENTORY_AGENT_CONNECTION_STRING": azurite_conn}
    agent = venv / BIN / "inventory-agent"

    first = run([agent, "--config", config], cwd=cwd, env=env)
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1 and " store=S042 result=uploaded " in lines[0], first.stderr
    path = re.search(r" path=(\S+)", lines[0])[1]
    assert re.fullmatch(r"raw/store=S042/date=\d{4}-\d\d-\d\d/S042-[0-9a-f]{16}\.sqlite\.gz", path)

    blob = blob_lake.container.get_blob_client(path)  # azure-storage-blob, from this process
    props = blob.get_blob_properties()
    data = blob.download_blob().readall()
    assert props.metadata["store_id"] == "S042"
    assert props.metadata["sha256"] == hashlib.sha256(data).hexdigest()
    assert props.metadata["source_name"] == "pos.db" and props.metadata["agent_version"]
    restored = work / "restored.sqlite"
    restored.write_bytes(gzip.decompress(data))
    assert props.metadata["uncompressed_bytes"] == str(restored.stat().st_size)
    assert sqlite3.connect(restored).execute("SELECT count(*) FROM sales").fetchone()[0] == rows

    again = run([agent, "--config", config], cwd=cwd, env=env)
    assert " result=already-present " in again.stderr and f" path={path} " in again.stderr
    assert len((work / "logs" / "agent.log").read_text().splitlines()) == 2
    assert list((work / "state" / "tmp").iterdir()) == []

    refused = run([agent, "--config", config, "--store", "S 42"], cwd=cwd, env=env, check=False)
    assert refused.returncode == 1 and "result=error" in refused.stderr and "invalid store id" in refused.stderr
