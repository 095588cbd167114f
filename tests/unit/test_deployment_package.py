"""The deployment package is what `.funcignore` leaves: the functions import and run without the dev tooling.

`func azure functionapp publish` and `azd deploy` zip the project minus the `.funcignore` patterns. This test
builds that file set in a temporary folder (no `shared/local/`, no `tests/`, no `agent/`) and, in a fresh
interpreter whose `shared` is that copy, indexes the app as the worker does and runs two timers on the local
defaults. A deployed module that imports the dev tooling fails here (and in the import-linter contract).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
import shared
from azure.functions.timer import TimerRequest

import function_app

by_name = {f.get_function_name(): f for f in function_app.app.get_functions()}  # once: it registers them
names = sorted(by_name)
by_name["raise_alerts"].get_user_function()(TimerRequest(past_due=False))
by_name["maintain_lake"].get_user_function()(TimerRequest(past_due=False))
print(json.dumps({"shared": shared.__file__, "functions": names,
                  "dev_modules": sorted(m for m in sys.modules if m.startswith("shared.local"))}))
"""


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pattern in patterns:
        folder = pattern.endswith("/")
        pat = pattern.rstrip("/")
        if "/" in pat:  # anchored at the project root: the path itself or a folder above it
            if rel == pat or rel.startswith(pat + "/"):
                return True
        elif any(fnmatch.fnmatch(p, pat) for p in (parts[:-1] if folder else parts)):
            return True
    return False


def deployment_files(root: Path) -> list[str]:
    """The project's files (tracked, or new and not git-ignored) that `.funcignore` does not leave out."""
    patterns = [line.strip() for line in (root / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    return [rel for rel in listed.split() if not _ignored(rel, patterns) and (root / rel).is_file()]


def test_funcignore_leaves_out_the_dev_tooling():
    files = deployment_files(ROOT)
    assert "function_app.py" in files and "host.json" in files and "requirements.txt" in files
    assert any(f.startswith("shared/triggers/") for f in files)
    assert not [f for f in files if f.startswith(("shared/local/", "tests/", "agent/", "bench/", "docs/"))]
    assert "shared/__main__.py" not in files  # the CLI's entry point (python -m shared) is dev tooling


def test_the_deployed_functions_run_without_the_dev_tooling(tmp_path):
    package = tmp_path / "package"
    for rel in deployment_files(ROOT):
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, package / rel)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAKE", "COSMOS", "EVENTS", "APPLICATIONINSIGHTS"))}
    env.update(INVENTORY_HOME=str(home), TELEMETRY_CONSOLE="0", PYTHONPATH=str(package))
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=package, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(got["shared"]).is_relative_to(package)  # the copy, not the working tree
    assert got["functions"] == ["apply_sales", "compute_aggregates", "ingest_dump", "maintain_lake", "post_sales",
                                "raise_alerts"]
    assert got["dev_modules"] == []
