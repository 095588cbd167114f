#!/usr/bin/env python3
"""Per-store write access to the lake's raw zone: one Entra identity and one conditional role assignment per store.

Each store agent may read, create and write blobs under ``raw/store=<id>/`` of the ``lake`` container and nowhere
else: the custom role *Inventory store agent raw upload* (infra/modules/rbac.bicep, output
AGENT_ROLE_DEFINITION_ID) is assigned on the container (output LAKE_CONTAINER_RESOURCE_ID) once per store, to
that store's own service principal, with an ABAC condition on the blob path (see docs/security.md for why, and
for the Microsoft documentation it follows).

    python3 infra/scripts/store_access.py condition --store S001
    python3 infra/scripts/store_access.py onboard --stores S001 S002 --cert-dir certs/ [--dry-run]
    python3 infra/scripts/store_access.py onboard --stores-file stores.txt --dry-run
    python3 infra/scripts/store_access.py onboard --stores S003 --principal-id <object id>   # Arc / VM identity
    python3 infra/scripts/store_access.py revoke --store S001 [--keep-app] [--dry-run]
    python3 infra/scripts/store_access.py list

Stdlib only (any python3 >= 3.8), the Azure CLI (``az login``) for onboard / revoke / list. The deployment's
values come from ``azd env get-values`` unless given as options. Every step looks before it creates, so a
re-run does only what is missing (or fixes a role assignment whose condition drifted). ``--dry-run`` prints
the az commands instead of running them: lookups are printed too and assumed to find nothing (onboard) or
everything (revoke); lines starting with ``#`` say when a command runs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# The rule of shared/core/ids.py (STORE_ID_PATTERN, used with fullmatch): duplicated because this script runs
# without the app's environment; tests/unit/test_store_access.py checks that both accept the same ids.
STORE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
# The blob DataActions of the custom role: each one is targeted by the condition (an action the condition does
# not target would be granted without it: "Symptom - Condition is not enforced", conditions-troubleshoot).
CONDITIONED_ACTIONS = (f"{BLOBS}/read", f"{BLOBS}/write", f"{BLOBS}/add/action")
PATH_ATTRIBUTE = f"@Resource[{BLOBS}:path]"
CONDITION_VERSION = "2.0"
APP_NAME_SEPARATOR = " store="  # display name: "<prefix> store=<id>"; the prefix has no space in it


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2, before any az command runs."""


class AzError(Exception):
    """An az command failed: reported with its stderr, exit status 1."""


def validate_store_id(store_id: str) -> str:
    if not isinstance(store_id, str) or not STORE_ID_PATTERN.fullmatch(store_id):
        raise UsageError(f"invalid store id {store_id!r}: a store id is 1-64 characters of letters, digits, '_' or "
                         "'-' (it becomes part of lake paths such as raw/store=<id>/)")
    return store_id


def store_prefix(store_id: str) -> str:
    """The store's folder. The trailing slash keeps raw/store=S1/ from matching raw/store=S10/..."""
    return f"raw/store={validate_store_id(store_id)}/"


def condition(store_id: str) -> str:
    """The ABAC condition of a store's role assignment: the role's blob actions only under the store's prefix.

    The shape of Microsoft's "Example: Write blobs in named containers with a path" (storage-auth-abac-examples),
    targeting read as well. Read includes List Blobs, which carries no blob path: the path expression cannot be
    evaluated for it, so listing is refused. Store ids contain no quote, backslash or wildcard, and
    StringStartsWith has no wildcards anyway.
    """
    targets = " AND ".join(f"!(ActionMatches{{'{action}'}})" for action in CONDITIONED_ACTIONS)
    return f"(({targets}) OR ({PATH_ATTRIBUTE} StringStartsWith '{store_prefix(store_id)}'))"


_CONDITION_STORE = re.compile(r"StringStartsWith 'raw/store=([A-Za-z0-9_-]{1,64})/'")


def store_of_condition(text: str | None) -> str | None:
    """The store a condition was generated for (None unless it is exactly this script's condition for a store)."""
    found = _CONDITION_STORE.search(text or "")
    if found and _normalised(text) == _normalised(condition(found[1])):
        return found[1]
    return None


def _normalised(text: str | None) -> str:
    return " ".join((text or "").split())


def role_description(store_id: str) -> str:
    return (f"Inventory store agent {store_id}: read, create and write blobs under {store_prefix(store_id)} only "
            "(infra/scripts/store_access.py)")


def app_name(prefix: str, store_id: str) -> str:
    return f"{prefix}{APP_NAME_SEPARATOR}{validate_store_id(store_id)}"


def odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote(arg: str) -> str:
    """Shell quoting that stays readable for ABAC conditions (single quotes inside): single quotes when the
    argument has none, double quotes when it has no ``"$`\\``, else shlex.quote. (In an interactive bash, run
    ``set +H`` first: ``!`` inside double quotes is history expansion there, not in scripts.)"""
    if arg and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    if "'" not in arg:
        return f"'{arg}'"
    if not re.search(r'["$`\\]', arg):
        return f'"{arg}"'
    return shlex.quote(arg)


def command_line(args: list[str]) -> str:
    return " ".join(quote(a) for a in args)


# --- certificates (public part only: the private key stays on the store PC) ---

def read_public_certificate(path: Path) -> tuple[str, str]:
    """(SHA-1 thumbprint in upper-case hex, as Azure shows it; the path) of a public certificate file (PEM or
    DER). A file holding a private key is refused: only the store PC may ever hold that."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{path} contains a private key: send only the public certificate (the .crt made on the "
                         "store PC; see docs/security.md), never the key")
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = re.findall(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", data, re.S)
        if len(blocks) != 1:
            raise UsageError(f"{path}: expected exactly one PEM certificate, found {len(blocks)}")
        der = base64.b64decode(b"".join(blocks[0].split()))
    else:
        der = data
    if not der.startswith(b"\x30"):
        raise UsageError(f"{path} is not a PEM or DER certificate")
    return hashlib.sha1(der).hexdigest().upper(), str(path)  # the X.509 thumbprint is SHA-1 by definition


def certificate_file(cert_dir: Path | None, store_id: str) -> Path | None:
    if cert_dir is None:
        return None
    for suffix in (".crt", ".pem", ".cer"):
        candidate = cert_dir / f"{store_id}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def credential_name(thumbprint: str) -> str:
    return f"agent-cert-{thumbprint}"


def has_credential(credentials: list[dict], thumbprint: str) -> bool:
    """Whether the certificate is already on the application: by the credential's display name (set by this
    script), or by customKeyIdentifier, which Graph sets to the thumbprint (hex or base64 of its bytes)."""
    b64 = base64.b64encode(bytes.fromhex(thumbprint)).decode()
    return any(c.get("displayName") == credential_name(thumbprint)
               or (c.get("customKeyIdentifier") or "").upper() in (thumbprint, b64.upper())
               for c in credentials)


# --- running az ---

class Az:
    """Runs az commands, or (dry run) prints them. ``lookup`` is a read whose answer decides what follows: a dry
    run prints it and returns ``assume`` instead. ``change`` creates or deletes something."""

    def __init__(self, executable: str, dry_run: bool) -> None:
        self.executable, self.dry_run = executable, dry_run

    def note(self, text: str) -> None:
        """A comment in the dry run's output (when the next command runs)."""
        if self.dry_run:
            print(f"# {text}")

    def lookup(self, args: list[str], assume: Any) -> Any:
        if self.dry_run:
            print(command_line(["az", *args]))
            return assume
        return self._run(args)

    def change(self, args: list[str], assume: Any = None) -> Any:
        if self.dry_run:
            print(command_line(["az", *args]))
            return assume
        print("+ " + command_line(["az", *args]), file=sys.stderr)
        return self._run(args)

    def _run(self, args: list[str]) -> Any:
        exe = shutil.which(self.executable) or self.executable
        try:
            done = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
        except OSError as exc:
            raise AzError(f"cannot run the Azure CLI ({self.executable}): {exc}. Install it, then 'az login'") from None
        if done.returncode != 0:
            raise AzError(f"az {' '.join(args[:3])} failed (exit {done.returncode}): {done.stderr.strip()}")
        text = done.stdout.strip()
        return json.loads(text) if text else None


# --- the deployment's values ---

NEEDED = {"role_definition_id": "AGENT_ROLE_DEFINITION_ID", "container_id": "LAKE_CONTAINER_RESOURCE_ID",
          "env_name": "AZURE_ENV_NAME"}


def azd_values(azd_env: str | None) -> dict[str, str]:
    exe = shutil.which("azd")
    if exe is None:
        return {}
    done = subprocess.run([exe, "env", "get-values", *(["-e", azd_env] if azd_env else [])],
                          capture_output=True, text=True, check=False)
    values = {}
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def resolve_settings(opts: argparse.Namespace) -> argparse.Namespace:
    """Fill role_definition_id, container_id and name_prefix from `azd env get-values` when not given (kept in
    opts.azd_values for the agent settings). A dry run shows placeholders for what is still missing; a real run
    stops."""
    wanted = not (opts.role_definition_id and opts.container_id and (opts.name_prefix or opts.env_name))
    opts.azd_values = azd_values(opts.azd_env) if wanted else {}
    for name, key in NEEDED.items():
        setattr(opts, name, getattr(opts, name) or opts.azd_values.get(key))
    if not opts.name_prefix and opts.env_name:
        opts.name_prefix = f"inventory-agent-{opts.env_name}"
    still = [n for n in ("role_definition_id", "container_id", "name_prefix") if not getattr(opts, n)]
    if still and not opts.dry_run:
        flags = ", ".join("--" + n.replace("_", "-") for n in still)
        raise UsageError(f"missing {flags}: pass them, or run where `azd env get-values` has the deployment's outputs "
                         "(AGENT_ROLE_DEFINITION_ID, LAKE_CONTAINER_RESOURCE_ID, AZURE_ENV_NAME)")
    opts.role_definition_id = opts.role_definition_id or "<AGENT_ROLE_DEFINITION_ID>"
    opts.container_id = opts.container_id or "<LAKE_CONTAINER_RESOURCE_ID>"
    opts.name_prefix = opts.name_prefix or "inventory-agent-<AZURE_ENV_NAME>"
    if re.search(r"[\s']", opts.name_prefix):
        raise UsageError(f"--name-prefix {opts.name_prefix!r}: no spaces or quotes")
    return opts


def _guid(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1].lower()


def agent_assignments(az: Az, opts: argparse.Namespace, assume: list[dict]) -> list[dict]:
    """The agent role's assignments made on the container itself (the az list also gives inherited ones)."""
    found = az.lookup(["role", "assignment", "list", "--scope", opts.container_id, "--role", opts.role_definition_id,
                       "--output", "json"], assume) or []
    if az.dry_run:
        return found
    return [a for a in found if (a.get("scope") or "").lower() == opts.container_id.lower()
            and _guid(a.get("roleDefinitionId") or "") == _guid(opts.role_definition_id)]


def find_app(az: Az, name: str, assume: list[dict]) -> dict | None:
    apps = az.lookup(["ad", "app", "list", "--filter", f"displayName eq {odata_string(name)}", "--output", "json"],
                     assume) or []
    exact = [a for a in apps if a.get("displayName") == name]  # Graph compares case-insensitively; store ids do not
    if len(exact) > 1:
        raise AzError(f"{len(exact)} applications are named {name!r}: delete the extra ones (az ad app delete --id "
                      "<appId>) and run again")
    return exact[0] if exact else None


# --- onboard ---

def onboard_store(az: Az, opts: argparse.Namespace, store_id: str) -> dict:
    name = app_name(opts.name_prefix, store_id)
    result: dict[str, Any] = {"store": store_id, "prefix": store_prefix(store_id)}
    if opts.principal_id:
        principal_id = opts.principal_id
        az.note(f"store {store_id}: existing principal {principal_id} (no application is created)")
    else:
        az.note(f"store {store_id}: application {name!r}")
        app = find_app(az, name, assume=[])
        if app is None:
            az.note(f"if it lists no application named {name!r}:")
            app = az.change(["ad", "app", "create", "--display-name", name, "--sign-in-audience", "AzureADMyOrg",
                             "--output", "json"], assume={"appId": f"<appId of {store_id}>", "displayName": name})
        else:
            print(f"= {store_id}: application exists (appId {app['appId']})", file=sys.stderr)
        app_id = app["appId"]
        sps = az.lookup(["ad", "sp", "list", "--filter", f"appId eq {odata_string(app_id)}", "--output", "json"],
                        assume=[]) or []
        if sps:
            sp = sps[0]
        else:
            az.note("if it lists no service principal:")
            sp = az.change(["ad", "sp", "create", "--id", app_id, "--output", "json"],
                           assume={"id": f"<servicePrincipalId of {store_id}>"})
        principal_id = sp["id"]
        result.update(appId=app_id, displayName=name, certificate=add_certificate(az, opts, store_id, app_id))
    result.update(servicePrincipalId=principal_id,
                  roleAssignment=assign(az, opts, store_id, principal_id))
    return result


def add_certificate(az: Az, opts: argparse.Namespace, store_id: str, app_id: str) -> str:
    path = certificate_file(opts.cert_dir, store_id)
    if path is None:
        where = f"{opts.cert_dir}/{store_id}.crt" if opts.cert_dir else "--cert-dir"
        az.note(f"no certificate for {store_id} ({where}): the application has no credential yet")
        return "none"
    thumbprint, shown = read_public_certificate(path)
    credentials = az.lookup(["ad", "app", "credential", "list", "--id", app_id, "--cert", "--output", "json"],
                            assume=[]) or []
    if has_credential(credentials, thumbprint):
        print(f"= {store_id}: certificate {thumbprint} already added", file=sys.stderr)
        return f"present {thumbprint}"
    az.note(f"if no certificate credential is named {credential_name(thumbprint)!r}:")
    # --append keeps the certificates already there (rotation: the old one goes once the store uses the new one).
    az.change(["ad", "app", "credential", "reset", "--id", app_id, "--cert", f"@{shown}", "--append",
               "--display-name", credential_name(thumbprint), "--output", "json"])
    return f"added {thumbprint}"


def assign(az: Az, opts: argparse.Namespace, store_id: str, principal_id: str) -> str:
    wanted = condition(store_id)
    mine = [a for a in agent_assignments(az, opts, assume=[]) if a.get("principalId") == principal_id]
    for existing in mine:
        if _normalised(existing.get("condition")) == _normalised(wanted):
            print(f"= {store_id}: role assignment exists ({existing['id']})", file=sys.stderr)
            return existing["id"]
    for stale in mine:  # the same principal, role and scope with another condition: at most one may exist
        print(f"! {store_id}: role assignment {stale['id']} has another condition; replacing it", file=sys.stderr)
        az.change(["role", "assignment", "delete", "--ids", stale["id"]])
    az.note(f"if none of them is for {principal_id} with the condition below:")
    created = az.change(["role", "assignment", "create", "--assignee-object-id", principal_id,
                         "--assignee-principal-type", "ServicePrincipal", "--role", opts.role_definition_id,
                         "--scope", opts.container_id, "--condition", wanted, "--condition-version", CONDITION_VERSION,
                         "--description", role_description(store_id), "--output", "json"],
                        assume={"id": f"<roleAssignmentId of {store_id}>"})
    return created["id"]


def agent_settings(result: dict, values: dict[str, str]) -> dict[str, str]:
    """What the store PC sets (azure-identity's EnvironmentCredential, first in DefaultAzureCredential)."""
    settings = {"LAKE__blobServiceUri": values.get("LAKE_BLOB_ENDPOINT", "<LAKE_BLOB_ENDPOINT>"),
                "LAKE_CONTAINER": values.get("LAKE_CONTAINER", "lake")}
    if "appId" in result:
        settings.update(AZURE_TENANT_ID=values.get("AZURE_TENANT_ID", "<AZURE_TENANT_ID>"),
                        AZURE_CLIENT_ID=result["appId"],
                        AZURE_CLIENT_CERTIFICATE_PATH="<path of the store's key + certificate PEM on the PC>")
    return settings


def cmd_onboard(opts: argparse.Namespace) -> int:
    stores = list(opts.stores or [])
    if opts.stores_file:
        for line in Path(opts.stores_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                stores.append(line)
    if not stores:
        raise UsageError("no stores: give --stores S001 S002 ... or --stores-file FILE")
    stores = list(dict.fromkeys(validate_store_id(s) for s in stores))  # all checked before anything runs
    if opts.principal_id and len(stores) != 1:
        raise UsageError("--principal-id gives one existing identity to one store: name exactly one store")
    if opts.cert_dir is not None and not opts.cert_dir.is_dir():
        raise UsageError(f"--cert-dir {opts.cert_dir}: not a folder")
    for store in stores:  # refuse a private key before creating anything
        path = certificate_file(opts.cert_dir, store)
        if path is not None:
            read_public_certificate(path)
    resolve_settings(opts)
    az = Az(opts.az, opts.dry_run)
    if opts.dry_run:
        print("# dry run: nothing is run; lookups are shown and assumed to find nothing")
    results = [onboard_store(az, opts, store) for store in stores]
    if not opts.dry_run:
        for r in results:
            r["agentSettings"] = agent_settings(r, opts.azd_values)
        print(json.dumps(results, indent=2))
    return 0


# --- revoke ---

def cmd_revoke(opts: argparse.Namespace) -> int:
    stores = list(dict.fromkeys(validate_store_id(s) for s in opts.store))
    resolve_settings(opts)
    az = Az(opts.az, opts.dry_run)
    if opts.dry_run:
        print("# dry run: nothing is run; lookups are shown and assumed to find the store's application and "
              "role assignment")
    report = []
    for store in stores:
        name = app_name(opts.name_prefix, store)
        az.note(f"store {store}: application {name!r}")
        app = find_app(az, name, assume=[{"appId": f"<appId of {store}>", "displayName": name}])
        sp_ids = set()
        if app is not None:
            sps = az.lookup(["ad", "sp", "list", "--filter", f"appId eq {odata_string(app['appId'])}",
                             "--output", "json"], assume=[{"id": f"<servicePrincipalId of {store}>"}]) or []
            sp_ids = {sp["id"] for sp in sps}
        assumed = [{"id": f"<roleAssignmentId of {store}>", "principalId": f"<servicePrincipalId of {store}>",
                    "condition": condition(store)}]
        removed = []
        found = agent_assignments(az, opts, assume=assumed)
        az.note(f"for each assignment it lists whose principal is the application's or whose condition is {store}'s:")
        for a in found:
            # the store's application, or any principal holding this store's condition (--principal-id identities)
            if a.get("principalId") in sp_ids or store_of_condition(a.get("condition")) == store:
                az.change(["role", "assignment", "delete", "--ids", a["id"]])
                removed.append(a["id"])
        if app is not None and not opts.keep_app:
            az.note("if it listed the application (deleting it also deletes its service principal and certificates):")
            az.change(["ad", "app", "delete", "--id", app["appId"]])
        report.append({"store": store, "roleAssignmentsDeleted": removed,
                       "applicationDeleted": bool(app is not None and not opts.keep_app)})
    if not opts.dry_run:
        print(json.dumps(report, indent=2))
    return 0


# --- list ---

def cmd_list(opts: argparse.Namespace) -> int:
    resolve_settings(opts)
    az = Az(opts.az, False)
    head = opts.name_prefix + APP_NAME_SEPARATOR
    apps = az.lookup(["ad", "app", "list", "--filter", f"startswith(displayName,{odata_string(head)})",
                      "--output", "json"], []) or []
    sps = az.lookup(["ad", "sp", "list", "--filter", f"startswith(displayName,{odata_string(head)})",
                     "--output", "json"], []) or []
    sp_of_app = {sp.get("appId"): sp.get("id") for sp in sps}
    assignments = agent_assignments(az, opts, [])
    rows: dict[str, dict] = {}
    for app in apps:
        store = (app.get("displayName") or "")[len(head):]
        if not app.get("displayName", "").startswith(head) or not STORE_ID_PATTERN.fullmatch(store):
            continue
        rows[store] = {"store": store, "appId": app.get("appId"), "servicePrincipalId": sp_of_app.get(app.get("appId")),
                       "certificates": [{k: c.get(k) for k in ("displayName", "keyId", "endDateTime")}
                                        for c in app.get("keyCredentials") or []],
                       "roleAssignments": [], "problems": []}
    others = []
    for a in assignments:
        store = store_of_condition(a.get("condition"))
        row = rows.get(store) if store else None
        entry = {"id": a.get("id"), "principalId": a.get("principalId"), "store": store}
        if row is not None and a.get("principalId") == row["servicePrincipalId"]:
            row["roleAssignments"].append(entry)
        else:
            entry["problem"] = ("not a per-store condition (the old shared raw/ assignment? delete it: az role "
                                f"assignment delete --ids {a.get('id')})" if store is None else
                                "a principal other than the store's application holds this store's condition "
                                "(--principal-id onboarding, or a leftover)")
            others.append(entry)
    for row in rows.values():
        if not row["roleAssignments"]:
            row["problems"].append("no role assignment: the agent cannot upload (run onboard again)")
        if not row["certificates"]:
            row["problems"].append("no certificate: the agent cannot sign in (onboard --cert-dir)")
    print(json.dumps({"stores": sorted(rows.values(), key=lambda r: r["store"]), "otherAssignments": others},
                     indent=2))
    return 0


def cmd_condition(opts: argparse.Namespace) -> int:
    print(condition(opts.store))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="store_access.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, dry_run: bool = True) -> None:
        sp.add_argument("--role-definition-id", help="the agent role (default: azd's AGENT_ROLE_DEFINITION_ID)")
        sp.add_argument("--container-id", help="the lake container's resource id, the assignments' scope "
                        "(default: azd's LAKE_CONTAINER_RESOURCE_ID)")
        sp.add_argument("--name-prefix", help="application names are '<prefix> store=<id>' "
                        "(default: inventory-agent-<AZURE_ENV_NAME>)")
        sp.add_argument("--env-name", help="the azd environment name used in the default prefix")
        sp.add_argument("--azd-env", help="read the values from this azd environment (azd env get-values -e)")
        sp.add_argument("--az", default="az", help="the Azure CLI executable (default: az)")
        if dry_run:
            sp.add_argument("--dry-run", action="store_true", help="print the az commands instead of running them")
        else:
            sp.set_defaults(dry_run=False)

    c = sub.add_parser("condition", help="print the ABAC condition of a store")
    c.add_argument("--store", required=True)
    c.set_defaults(run=cmd_condition)

    o = sub.add_parser("onboard", help="create each store's identity and conditional role assignment")
    o.add_argument("--stores", nargs="+", metavar="ID")
    o.add_argument("--stores-file", help="one store id per line ('#' starts a comment)")
    o.add_argument("--cert-dir", type=Path, help="folder with <id>.crt (or .pem/.cer): each store's PUBLIC "
                   "certificate, made on the store PC")
    o.add_argument("--principal-id", help="give the store's access to this existing principal (an Azure Arc "
                   "server's or a VM's managed identity: its object id) instead of creating an application")
    common(o)
    o.set_defaults(run=cmd_onboard)

    r = sub.add_parser("revoke", help="delete a store's role assignment(s) and its application")
    r.add_argument("--store", action="append", required=True, metavar="ID", help="repeatable")
    r.add_argument("--keep-app", action="store_true", help="remove the access only; keep the application")
    common(r)
    r.set_defaults(run=cmd_revoke)

    ls = sub.add_parser("list", help="the stores' applications, certificates and role assignments, with problems")
    common(ls, dry_run=False)
    ls.set_defaults(run=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    try:
        return opts.run(opts)
    except UsageError as exc:
        print(f"store_access: {exc}", file=sys.stderr)
        return 2
    except AzError as exc:
        print(f"store_access: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
