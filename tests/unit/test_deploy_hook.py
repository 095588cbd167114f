"""The postdeploy hook that creates the Event Grid subscription of the blob trigger (azure.yaml ->
infra/scripts/subscribe-blob-events.{sh,ps1}). There is no Azure here: the posix script runs for real under
`sh` with stand-ins for `az`, `azd` and `sleep` on PATH that record what they were asked; the PowerShell
variant (no pwsh here) is checked to pass `az` the same arguments."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "infra" / "scripts"
ENV = {
    "AZURE_FUNCTION_APP_NAME": "func-abc", "AZURE_RESOURCE_GROUP": "rg-inv", "FUNCTION_APP_HOSTNAME":
    "func-abc.azurewebsites.net", "LAKE_ACCOUNT_ID": "/subscriptions/s/resourceGroups/rg-inv/providers/"
    "Microsoft.Storage/storageAccounts/stlake", "LAKE_CONTAINER": "lake", "EVENT_GRID_DEADLETTER_CONTAINER_ID":
    "/subscriptions/s/resourceGroups/rg-inv/providers/Microsoft.Storage/storageAccounts/sthost/blobServices/"
    "default/containers/eventgrid-deadletter",
}


def fake_tools(bin_dir: Path, log: Path, env_lines: list[str], key_after: int) -> None:
    """`azd env get-values` prints ``env_lines``; `az functionapp keys list` answers the key from its
    ``key_after``-th call on (0: never); every call is appended to ``log``, one argument per line."""
    bin_dir.mkdir()
    (bin_dir / "values.env").write_text("\n".join(env_lines) + "\n")
    record = f'{{ echo "--- $(basename "$0")"; for a in "$@"; do echo "$a"; done; }} >> "{log}"\n'
    scripts = {
        "azd": f'#!/bin/sh\n{record}[ "$1 $2" = "env get-values" ] && cat "{bin_dir}/values.env"\nexit 0\n',
        "az": (f'#!/bin/sh\n{record}if [ "$1 $2 $3" = "functionapp keys list" ]; then\n'
               f'  n=$(grep -c "^keys$" "{log}"); [ {key_after} -gt 0 ] && [ "$n" -ge {key_after} ] '
               '&& echo "sEcReT+key=="\nfi\nexit 0\n'),
        "sleep": f"#!/bin/sh\n{record}exit 0\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)


def run_hook(tmp_path: Path, env_lines: list[str], key_after: int = 1) -> tuple[subprocess.CompletedProcess, list]:
    log = tmp_path / "calls.log"
    fake_tools(tmp_path / "bin", log, env_lines, key_after)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["sh", str(SCRIPTS / "subscribe-blob-events.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    calls = [c.strip("\n").split("\n") for c in log.read_text().split("--- ")[1:]] if log.exists() else []
    return proc, calls


def test_it_reads_the_key_and_creates_the_subscription_with_dead_lettering_and_retries(tmp_path):
    proc, calls = run_hook(tmp_path, [f'{k}="{v}"' for k, v in ENV.items()], key_after=3)
    assert proc.returncode == 0, proc.stderr
    assert [c[0] for c in calls] == ["azd", "az", "sleep", "az", "sleep", "az", "az"], "waits for the key"
    assert calls[1][1:] == ["functionapp", "keys", "list", "--name", "func-abc", "--resource-group", "rg-inv",
                            "--query", "systemKeys.blobs_extension", "--output", "tsv"]
    create = calls[-1][1:]
    assert create[:3] == ["eventgrid", "event-subscription", "create"]
    opts = options(create[3:])
    assert opts["--endpoint"] == ["https://func-abc.azurewebsites.net/runtime/webhooks/blobs?"
                                  "functionName=Host.Functions.ingest_dump&code=sEcReT+key=="]
    assert opts["--source-resource-id"] == [ENV["LAKE_ACCOUNT_ID"]]
    assert opts["--subject-begins-with"] == ["/blobServices/default/containers/lake/blobs/raw/"]
    assert opts["--included-event-types"] == ["Microsoft.Storage.BlobCreated"]
    assert opts["--advanced-filter"] == ["data.api", "StringIn", "PutBlob", "PutBlockList", "CopyBlob",
                                         "FlushWithClose"]
    assert opts["--max-delivery-attempts"] == ["30"] and opts["--event-ttl"] == ["1440"]
    assert opts["--deadletter-identity"] == ["systemassigned"]
    assert opts["--deadletter-identity-endpoint"] == [ENV["EVENT_GRID_DEADLETTER_CONTAINER_ID"]]
    assert "sEcReT" not in proc.stdout + proc.stderr, "the key is never printed"
    assert not any(c[0] == "azd" and "provision" in c for c in calls), "no nested azd provision"


def test_without_the_key_it_stops_with_a_clear_error_after_waiting(tmp_path):
    proc, calls = run_hook(tmp_path, [f'{k}="{v}"' for k, v in ENV.items()], key_after=0)
    assert proc.returncode == 1
    assert "no blobs_extension key on func-abc" in proc.stderr
    assert sum(c[0] == "sleep" for c in calls) == 20
    assert not any(c[1:3] == ["eventgrid", "event-subscription"] for c in calls if c[0] == "az")


@pytest.mark.parametrize("missing", ["LAKE_ACCOUNT_ID", "EVENT_GRID_DEADLETTER_CONTAINER_ID"])
def test_an_environment_not_provisioned_is_named(tmp_path, missing):
    proc, calls = run_hook(tmp_path, [f'{k}="{v}"' for k, v in ENV.items() if k != missing])
    assert proc.returncode == 1 and f"{missing} is not in the azd environment" in proc.stderr
    assert [c[0] for c in calls] == ["azd"]


def options(args: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for a in args:
        if a.startswith("--"):
            current = a
            out[current] = []
        else:
            out[current].append(a)
    return out


def az_create_flags(script: str) -> list[str]:
    text = (SCRIPTS / script).read_text()
    block = text[text.index("az eventgrid event-subscription create"):].split("\n\n")[0]
    return re.findall(r"(--[a-z-]+)", block)


def test_the_windows_hook_passes_the_same_arguments():
    assert az_create_flags("subscribe-blob-events.ps1") == az_create_flags("subscribe-blob-events.sh")
    ps1 = (SCRIPTS / "subscribe-blob-events.ps1").read_text()
    assert "systemKeys.blobs_extension" in ps1
    assert not re.search(r"^\s*azd provision", ps1, re.MULTILINE), "no nested azd provision"


def test_azure_yaml_runs_the_hooks_interactively_on_both_platforms():
    text = (ROOT / "azure.yaml").read_text()
    assert "run: ./infra/scripts/subscribe-blob-events.sh" in text
    assert "run: ./infra/scripts/subscribe-blob-events.ps1" in text
    assert text.count("interactive: true") == 2 and "shell: pwsh" in text
    assert os.access(SCRIPTS / "subscribe-blob-events.sh", os.X_OK)
