"""The scheduler definitions in agent/deploy/: the systemd units pass ``systemd-analyze verify`` (where systemd is
installed; the CI machine has it), the Task Scheduler XML follows the schema's element order and values, and
both run the command, with the config file, that docs/agent.md and the example configs describe. The XML is
not registered on Windows here (no Windows machine): docs/agent.md says so."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "agent" / "deploy"
NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / name)
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_verify_cleanly(tmp_path):
    # verify checks that ExecStart's program exists: point it at one that does, keep every other line as it is.
    for name in ("inventory-agent.service", "inventory-agent.timer"):
        text = (DEPLOY / name).read_text()
        (tmp_path / name).write_text(text.replace("ExecStart=/opt/inventory-agent/bin/inventory-agent",
                                                  f"ExecStart={shutil.which('true')}"))
    result = subprocess.run(["systemd-analyze", "verify", "inventory-agent.service", "inventory-agent.timer"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr  # unknown keys only warn


def test_the_service_runs_the_agent_once_as_the_pos_account_with_its_config():
    service = unit("inventory-agent.service")["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/inventory-agent/bin/inventory-agent"
    assert argv[argv.index("--config") + 1] == "/etc/inventory-agent/agent.toml"
    assert service["Type"] == "oneshot" and service["User"] and service["StateDirectory"] == "inventory-agent"
    timer = unit("inventory-agent.timer")
    assert timer["Timer"]["Persistent"] == "true" and timer["Install"]["WantedBy"] == "timers.target"


def test_the_task_follows_the_task_scheduler_schema():
    task = ET.parse(DEPLOY / "inventory-agent.xml").getroot()
    assert task.tag == f"{{{NS['t']}}}Task" and task.get("version") == "1.2"
    trigger = task.find("t:Triggers/t:CalendarTrigger", NS)
    # calendarTriggerType: the base sequence (Enabled, StartBoundary, EndBoundary, Repetition,
    # ExecutionTimeLimit), then RandomDelay, then one Schedule* element; order matters in a sequence.
    order = ["Enabled", "StartBoundary", "EndBoundary", "Repetition", "ExecutionTimeLimit", "RandomDelay",
             "ScheduleByDay"]
    children = [child.tag.split("}")[1] for child in trigger]
    assert children == sorted(children, key=order.index)
    assert trigger.findtext("t:ScheduleByDay/t:DaysInterval", namespaces=NS) == "1"
    assert trigger.findtext("t:StartBoundary", namespaces=NS).endswith("T01:30:00"), "local time: no offset"
    principal = task.find("t:Principals/t:Principal", NS)
    assert principal.findtext("t:LogonType", namespaces=NS) in ("S4U", "Password", "InteractiveToken")
    assert principal.findtext("t:RunLevel", namespaces=NS) == "LeastPrivilege"
    assert task.find("t:Actions", NS).get("Context") == principal.get("id")
    settings = task.find("t:Settings", NS)
    assert settings.findtext("t:StartWhenAvailable", namespaces=NS) == "true"
    assert settings.findtext("t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"


def test_the_task_runs_the_agent_with_the_windows_example_config():
    exec_ = ET.parse(DEPLOY / "inventory-agent.xml").getroot().find("t:Actions/t:Exec", NS)
    command = PureWindowsPath(exec_.findtext("t:Command", namespaces=NS).strip('"'))
    assert command.name == "inventory-agent.exe" and command.parent.name == "Scripts", "what pip makes in a venv"
    args = shlex.split(exec_.findtext("t:Arguments", namespaces=NS), posix=False)
    config = PureWindowsPath(args[args.index("--config") + 1].strip('"'))
    example = (DEPLOY / "agent.windows.example.toml").read_text()
    assert f"Copy to {config}." in example
    values = tomllib.loads(example)
    assert PureWindowsPath(values["log_file"]).parent == config.parent, "the task's log is beside its config"
    assert "--quiet" in args


def test_the_guide_names_every_setting_and_deploy_file():
    from inventory_agent.config import SETTINGS

    guide = (ROOT / "docs" / "agent.md").read_text()
    missing = [k.name for k in SETTINGS if f"`{k.name}`" not in guide]
    missing += [p.name for p in DEPLOY.iterdir() if p.name not in guide]
    assert missing == [], "docs/agent.md does not mention these"
