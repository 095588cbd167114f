"""The infra (Bicep) and the app agree: the settings contract, alert rules, and no secrets in infra/.

Text checks only (no bicep CLI, no checkov, no Azure account): they run in well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"
LOCAL_ONLY_FILE = INFRA / "settings-local-only.txt"

# Host settings the Functions runtime itself reads (not shared/settings.py). On Flex Consumption the
# runtime comes from functionAppConfig, so FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION must not
# be set; they are still accepted by this pattern so the failure message is the right one if they appear.
HOST_SETTING = re.compile(r"^(AzureWebJobsStorage__(accountName|credential|clientId|blobServiceUri|queueServiceUri"
                          r"|tableServiceUri)|FUNCTIONS_[A-Z_]+|AzureWebJobsFeatureFlags|WEBSITE_[A-Z_]+)$")
FORBIDDEN_ON_FLEX = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                     "AzureWebJobsStorage"}


def local_only() -> dict[str, str]:
    """Name -> reason, from infra/settings-local-only.txt (the one place the split is defined)."""
    out = {}
    for line in LOCAL_ONLY_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        out[name.strip()] = reason.strip()
    return out


def app_setting_names() -> list[str]:
    """Names of the `appSettings: [ ... ]` array of the Function App module."""
    text = FUNCTION_APP.read_text()
    match = re.search(r"appSettings:\s*\[(.*?)\n\s*\]", text, re.S)
    assert match, "no appSettings array in functionapp.bicep"
    return re.findall(r"name:\s*'([^']+)'", match.group(1))


def test_local_only_list_names_declared_settings_each_with_a_reason() -> None:
    declared = {s.name for s in SETTINGS}
    listed = local_only()
    assert set(listed) <= declared, f"not in shared/settings.py: {set(listed) - declared}"
    assert all(listed.values()), "every local-only setting needs a reason"


def test_every_azure_setting_is_an_app_setting() -> None:
    azure = [s.name for s in SETTINGS if s.name not in local_only()]
    names = set(app_setting_names())
    missing = [n for n in azure if n not in names]
    assert not missing, f"settings the code reads but the Bicep does not set: {missing}"


def test_every_app_setting_is_read_by_the_code_or_the_host() -> None:
    declared = {s.name for s in SETTINGS}
    names = app_setting_names()
    assert len(names) == len(set(names)), "duplicate app setting"
    unknown = [n for n in names if n not in declared and not HOST_SETTING.match(n)]
    assert not unknown, f"app settings nobody reads: {unknown}"
    assert not set(names) & set(local_only()), "a local-only setting is set in Azure"
    assert not set(names) & FORBIDDEN_ON_FLEX, "not allowed on Flex Consumption / keyless host storage"


def test_literal_app_setting_values_match_the_code_defaults() -> None:
    text = FUNCTION_APP.read_text()
    defaults = {s.name: s.default for s in SETTINGS}
    for name, value in re.findall(r"\{\s*name:\s*'([^']+)',\s*value:\s*'([^'$]*)'\s*\}", text):
        if name in defaults and defaults[name] and name != "INVENTORY_HOME":
            assert value == defaults[name], f"{name}: Bicep {value!r} != default {defaults[name]!r}"


def test_identity_based_connections() -> None:
    names = set(app_setting_names())
    for prefix in ("LAKE", "COSMOS", "EVENTS", "AzureWebJobsStorage"):
        assert f"{prefix}__credential" in names and f"{prefix}__clientId" in names, prefix
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in names


def test_every_alert_query_has_a_scheduled_query_rule() -> None:
    alerts = (INFRA / "modules" / "alerts.bicep").read_text()
    assert "Microsoft.Insights/scheduledQueryRules@" in alerts
    referenced = set(re.findall(r"loadTextContent\('\.\./alerts/([^']+\.kql)'\)", alerts))
    files = {p.name for p in (INFRA / "alerts").glob("*.kql")}
    assert files, "no KQL files"
    assert files == referenced, f"without a rule: {files - referenced}; missing file: {referenced - files}"


def test_no_secrets_in_infra() -> None:
    patterns = ("listKeys(", "listkeys(", "AccountKey=", "SharedAccessKey", "listConnectionStrings(")
    offenders = []
    for path in INFRA.rglob("*"):
        if path.is_file() and path.suffix in {".bicep", ".json", ".sh", ".md", ".txt", ".bicepparam"}:
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {p}" for p in patterns if p in text]
    assert not offenders, offenders


def test_blob_events_dead_letter_with_the_topic_identity_and_page() -> None:
    """The subscription (filters, retries) is made by the postdeploy hook: tests/unit/test_deploy_hook.py."""
    text = (INFRA / "modules" / "eventgrid.bicep").read_text()
    assert "identity: { type: 'SystemAssigned' }" in text and "principalId: topic.identity.principalId" in text
    assert "metricName: 'DeadLetteredCount'" in text and "actions: [ { actionGroupId: actionGroupId } ]" in text
    assert "blobsExtensionKey" not in (INFRA / "main.bicep").read_text(), "no key passes through the Bicep"
