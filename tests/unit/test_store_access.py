"""infra/scripts/store_access.py: the per-store ABAC conditions, and the az commands that create and remove them.

No Azure here. The conditions are evaluated by a small evaluator of the part of the role assignment condition
grammar the script generates, written from Microsoft's description ("Azure role assignment condition format and
syntax", https://learn.microsoft.com/azure/role-based-access-control/conditions-format):
- a request is allowed when the role grants its action AND the condition evaluates to true; a condition
  ``(!(ActionMatches{a}) AND ...) OR (<expression>)`` applies its expression to the targeted actions only;
- ``ActionMatches{'pattern'}`` (``*`` wildcard), ``SubOperationMatches{'name'}``, ``!``/``NOT``, ``AND``/``&&``,
  ``OR``/``||``, parentheses; mixing AND and OR without parentheses is ambiguous (the docs require them);
- ``StringStartsWith`` / ``StringLike`` (``*``, ``?``, ``\\*``, ``\\?``) / ``StringEquals``, case-sensitive;
- an attribute the operation does not carry (the blob path of List Blobs) cannot be evaluated, and the access
  check fails ("will fail the authorization access check", storage-auth-abac-attributes, Suboperations).
The az side runs against a fake ``az`` (a script keeping Entra applications, service principals and role
assignments in a JSON file) to show that onboard / revoke are idempotent.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import json
import posixpath
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.core import ids, layout

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "scripts" / "store_access.py"

_spec = importlib.util.spec_from_file_location("store_access", SCRIPT)
sa = importlib.util.module_from_spec(_spec)
sys.modules["store_access"] = sa
_spec.loader.exec_module(sa)

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
READ, WRITE, ADD = f"{BLOBS}/read", f"{BLOBS}/write", f"{BLOBS}/add/action"
PATH = f"{BLOBS}:path"
PREFIX = f"{BLOBS}:prefix"

# The golden condition of store S001: what the script hands to `az role assignment create --condition`.
CONDITION_S001 = (
    "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'}) AND "
    "!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'}) AND "
    "!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'})) OR "
    "(@Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path] "
    "StringStartsWith 'raw/store=S001/'))"
)


# --- a small evaluator for the condition grammar the script uses ---------------------------------------------

class CannotEvaluate(Exception):
    """An attribute the request does not carry: the access check fails."""


@dataclass(frozen=True)
class Request:
    """One Blob service operation as the authorization sees it."""

    action: str
    suboperation: str | None = None
    resource: dict[str, str] = field(default_factory=dict)
    request: dict[str, str] = field(default_factory=dict)


def _blob_op(action: str, path: str, sub: str | None = None) -> Request:
    return Request(action, sub, {PATH: path})


# Operations (REST name -> DataAction, suboperation, attributes), after "Permissions for Blob service operations"
# and storage-auth-abac-attributes: List Blobs is blobs/read with suboperation Blob.List and no blob path.
OPERATIONS = {
    "Get Blob": lambda p: _blob_op(READ, p),
    "Get Blob Properties": lambda p: _blob_op(READ, p),
    "Put Blob (new)": lambda p: _blob_op(ADD, p),
    "Put Blob (overwrite)": lambda p: _blob_op(WRITE, p),
    "Put Block": lambda p: _blob_op(WRITE, p),
    "Put Block List": lambda p: _blob_op(WRITE, p),
    "Set Blob Metadata": lambda p: _blob_op(WRITE, p),
    "Set Blob Tier": lambda p: _blob_op(WRITE, p, "Blob.Write.Tier"),
    "Put Blob with tags": lambda p: _blob_op(ADD, p, "Blob.Write.WithTagHeaders"),
}
NOT_IN_ROLE = {
    "Delete Blob": lambda p: _blob_op(f"{BLOBS}/delete", p),
    "Rename (move)": lambda p: _blob_op(f"{BLOBS}/move/action", p),
    "Set Blob Tags": lambda p: _blob_op(f"{BLOBS}/tags/write", p),
    "Set ACL": lambda p: _blob_op(f"{BLOBS}/modifyPermissions/action", p),
    "Superuser (HNS)": lambda p: _blob_op(f"{BLOBS}/runAsSuperUser/action", p),
}


def list_blobs(prefix: str | None) -> Request:
    return Request(READ, "Blob.List", {}, {PREFIX: prefix} if prefix is not None else {})


_TOKEN = re.compile(r"""\s*(?:
      (?P<lp>\() | (?P<rp>\))
    | (?P<and>AND\b|&&) | (?P<or>OR\b|\|\|) | (?P<not>NOT\b|!)
    | (?P<fn>ActionMatches|SubOperationMatches)\{'(?P<fnarg>(?:[^'\\]|\\.)*)'\}
    | (?P<attr>@(?P<source>Resource|Request)\[(?P<name>[^\]]+)\])
    | (?P<op>StringStartsWith|StringLike|StringEquals)\b
    | (?P<str>'(?P<strval>(?:[^'\\]|\\.)*)')
    )""", re.X)


_KINDS = ("lp", "rp", "and", "or", "not", "fn", "attr", "op", "str")


def tokens(text: str) -> list[tuple[str, re.Match]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SyntaxError(f"cannot read the condition at {text[pos:pos + 30]!r}")
        out.append((next(k for k in _KINDS if m.group(k) is not None), m))
        pos = m.end()
    return out


def _like(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*?":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


def parse(text: str):
    """The condition as a function Request -> bool (raising CannotEvaluate for a missing attribute)."""
    toks = tokens(text)
    pos = 0

    def peek() -> str | None:
        return toks[pos][0] if pos < len(toks) else None

    def take(kind: str) -> re.Match:
        nonlocal pos
        if peek() != kind:
            raise SyntaxError(f"expected {kind}, found {peek()} at token {pos}")
        pos += 1
        return toks[pos - 1][1]

    def expr():
        terms = [unary()]
        joiner = None
        while peek() in ("and", "or"):
            kind = peek()
            if joiner not in (None, kind):
                raise SyntaxError("AND and OR mixed without parentheses (ambiguous, the docs require grouping)")
            joiner = kind
            take(kind)
            terms.append(unary())
        if joiner is None:
            return terms[0]
        if joiner == "and":
            return lambda r: all(t(r) for t in terms)  # left to right, stops at the first false
        return lambda r: any(t(r) for t in terms)

    def unary():
        if peek() == "not":
            take("not")
            inner = unary()
            return lambda r: not inner(r)
        return primary()

    def primary():
        if peek() == "lp":
            take("lp")
            inner = expr()
            take("rp")
            return inner
        if peek() == "fn":
            m = take("fn")
            arg = m["fnarg"]
            if m["fn"] == "ActionMatches":
                pattern = re.compile(".*".join(re.escape(p) for p in arg.split("*")), re.I)
                return lambda r: bool(pattern.fullmatch(r.action))
            return lambda r: (r.suboperation or "").lower() == arg.lower()
        m = take("attr")
        source, name = m["source"], m["name"]
        op = take("op")["op"]
        value = take("str")["strval"]
        if op == "StringStartsWith":
            test = lambda s: s.startswith(value)  # noqa: E731
        elif op == "StringEquals":
            test = lambda s: s == value  # noqa: E731
        else:
            rx = _like(value)
            test = lambda s: bool(rx.fullmatch(s))  # noqa: E731

        def compare(r: Request) -> bool:
            attrs = r.resource if source == "Resource" else r.request
            if name not in attrs:
                raise CannotEvaluate(f"{source}[{name}] is not available for {r.action} {r.suboperation}")
            return test(attrs[name])
        return compare

    tree = expr()
    if pos != len(toks):
        raise SyntaxError(f"trailing tokens from {pos}")
    return tree


ROLE_DATA_ACTIONS = (READ, WRITE, ADD)  # checked against rbac.bicep below


def allowed(cond: str, r: Request) -> bool:
    if r.action not in ROLE_DATA_ACTIONS:
        return False  # the role does not grant it, whatever the condition
    try:
        return parse(cond)(r)
    except CannotEvaluate:
        return False


# --- the evaluator itself, on Microsoft's documented examples ----------------------------------------------------

def test_the_evaluator_follows_the_documented_examples():
    # conditions-format: StringLike 'a*c?' matches "abcd"; 'A*C?' does not (case-sensitive); 'a*c' does not.
    for pattern, expected in (("a*c?", True), ("A*C?", False), ("a*c", False), ("ab\\*d", False)):
        cond = f"@Resource[{PATH}] StringLike '{pattern}'"
        assert parse(cond)(_blob_op(READ, "abcd")) is expected, pattern
    # ActionMatches with a wildcard; a non-targeted action passes, a targeted one needs the expression.
    simple = f"((!(ActionMatches{{'{BLOBS}/*'}})) OR (@Resource[{PATH}] StringStartsWith 'readonly/'))"
    assert parse(simple)(Request("Microsoft.Storage/other")) is True
    assert parse(simple)(_blob_op(READ, "readonly/x")) is True
    assert parse(simple)(_blob_op(WRITE, "other/x")) is False
    # Microsoft's "Read blobs in named containers with a path" excludes List with SubOperationMatches.
    read_not_list = (f"((!(ActionMatches{{'{READ}'}} AND NOT SubOperationMatches{{'Blob.List'}})) OR "
                     f"(@Resource[{PATH}] StringStartsWith 'readonly/'))")
    assert parse(read_not_list)(list_blobs("")) is True
    with pytest.raises(SyntaxError):
        parse("(a AND b OR c)".replace("a", "!(ActionMatches{'x'})").replace("b", "!(ActionMatches{'y'})")
              .replace("c", "!(ActionMatches{'z'})"))


def test_a_missing_attribute_fails_the_access_check():
    cond = f"((!(ActionMatches{{'{READ}'}})) OR (@Resource[{PATH}] StringStartsWith 'raw/'))"
    with pytest.raises(CannotEvaluate):
        parse(cond)(list_blobs("raw/"))
    assert allowed(cond, list_blobs("raw/")) is False


# --- the generated conditions ----------------------------------------------------------------------------------

STORE_ID = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=64)
TAIL = st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s)


def test_the_condition_of_a_store_is_the_golden_one():
    assert sa.condition("S001") == CONDITION_S001
    assert sa.store_of_condition(CONDITION_S001) == "S001"
    assert sa.store_of_condition(CONDITION_S001.replace("raw/store=S001/", "raw/")) is None


def test_the_condition_targets_every_blob_data_action_of_the_role():
    # An action the role grants but the condition does not target would be granted on the whole container.
    text = (ROOT / "infra" / "modules" / "rbac.bicep").read_text()
    role = text[text.index("resource agentRole"):]
    listed = role[role.index("dataActions"):role.index("notDataActions")]
    data_actions = re.findall(r"'(Microsoft\.Storage/[^']+)'", listed)
    assert tuple(data_actions) == ROLE_DATA_ACTIONS == sa.CONDITIONED_ACTIONS
    targeted = re.findall(r"ActionMatches\{'([^']+)'\}", sa.condition("S1"))
    assert set(targeted) == set(data_actions)


@given(store=STORE_ID, tail=TAIL)
def test_a_store_may_read_create_and_write_under_its_own_prefix(store, tail):
    cond = sa.condition(store)
    for name, op in OPERATIONS.items():
        assert allowed(cond, op(f"raw/store={store}/{tail}")), name


@given(a=STORE_ID, b=STORE_ID, tail=TAIL)
def test_a_store_may_not_touch_another_stores_prefix(a, b, tail):
    assume(a != b)
    cond = sa.condition(a)
    for name, op in OPERATIONS.items():
        assert not allowed(cond, op(f"raw/store={b}/{tail}")), name


@given(a=STORE_ID, suffix=STORE_ID, tail=TAIL)
def test_a_store_id_that_extends_another_is_another_store(a, suffix, tail):
    # raw/store=S1/ must not match raw/store=S10/...: the trailing slash of the prefix does it.
    cond = sa.condition(a)
    assert not allowed(cond, OPERATIONS["Put Blob (new)"](f"raw/store={a}{suffix}/{tail}"))
    assert not allowed(sa.condition(a + suffix), OPERATIONS["Put Blob (new)"](f"raw/store={a}/{tail}"))


def test_prefix_collisions_and_case_explicitly():
    put = OPERATIONS["Put Blob (new)"]
    assert allowed(sa.condition("S1"), put("raw/store=S1/date=2026-11-27/d.sqlite.gz"))
    assert not allowed(sa.condition("S1"), put("raw/store=S10/date=2026-11-27/d.sqlite.gz"))
    assert not allowed(sa.condition("S10"), put("raw/store=S1/date=2026-11-27/d.sqlite.gz"))
    assert not allowed(sa.condition("S1"), put("raw/store=s1/date=2026-11-27/d.sqlite.gz"))  # ids are case-sensitive
    assert not allowed(sa.condition("S1"), put("raw/store=S1"))  # the folder name itself, no slash
    assert not allowed(sa.condition("S1"), put("raw/store=S1-old/x"))


@given(store=STORE_ID, tail=TAIL)
def test_a_store_may_not_touch_anything_outside_raw(store, tail):
    cond = sa.condition(store)
    for path in (f"curated/{tail}", f"manifests/store={store}/{tail}", f"quarantine/store={store}/{tail}",
                 f"config/mappings/store={store}.toml", f"aggregates/{tail}", f"rejected/{tail}",
                 f"deadletter/{tail}", f"locks/store={store}", f"raw/{tail}" if not tail.startswith(f"store={store}/")
                 else "raw/x", f"raw/store={store}", f"/raw/store={store}/{tail}", f"lake/raw/store={store}/{tail}",
                 f"RAW/store={store}/{tail}", ""):
        for name, op in OPERATIONS.items():
            assert not allowed(cond, op(path)), (name, path)


@given(store=STORE_ID, prefix=st.one_of(st.none(), st.just(""), TAIL))
def test_a_store_may_not_list_the_container_not_even_its_own_folder(store, prefix):
    cond = sa.condition(store)
    assert not allowed(cond, list_blobs(prefix))
    assert not allowed(cond, list_blobs(f"raw/store={store}/"))


@given(store=STORE_ID, tail=TAIL)
def test_actions_the_role_does_not_grant_are_refused_even_in_the_stores_folder(store, tail):
    cond = sa.condition(store)
    for name, op in NOT_IN_ROLE.items():
        assert not allowed(cond, op(f"raw/store={store}/{tail}")), name


@given(a=STORE_ID, b=STORE_ID)
def test_path_traversal_names_never_reach_another_stores_data(a, b):
    # The blob path is compared as a string (the docs: "without any URL encoding"). A name with dot segments
    # either is taken literally, and then it lives in A's own folder and the ingest refuses its shape
    # (bad_path: it is no raw/store=<id>/date=<d>/<file>), or is resolved by the service before authorisation,
    # and then the resolved path is B's and the condition refuses it. Neither way is it B's data.
    assume(a != b)
    cond = sa.condition(a)
    put = OPERATIONS["Put Blob (new)"]
    for name in (f"raw/store={a}/../store={b}/date=2026-11-27/x.sqlite",
                 f"raw/store={a}/date=2026-11-27/../../store={b}/date=2026-11-27/x.sqlite",
                 f"raw/store={a}/./../store={b}/date=2026-11-27/x.sqlite"):
        resolved = posixpath.normpath(name)
        assert resolved.startswith(f"raw/store={b}/")
        assert not allowed(cond, put(resolved))
        assert allowed(cond, put(name))  # literal: a name inside A's own folder ...
        with pytest.raises(ValueError):
            layout.parse_raw_dump_path(name)  # ... that the ingest refuses (quarantined as bad_path, under A)
    for name in (f"raw/store={b}/../store={a}/x", f"raw/store={a}%2F..%2Fstore={b}/x"):
        assert not allowed(cond, put(name))  # B's folder literally, or a folder named "store=A%2F.." under raw/


# --- store ids: the script's rule is the app's ---------------------------------------------------------------

def test_the_store_id_rule_is_the_apps():
    assert sa.STORE_ID_PATTERN.pattern == ids.STORE_ID_PATTERN.pattern


@given(text=st.one_of(st.text(max_size=70), STORE_ID, STORE_ID.map(lambda s: s + "\n"),
                      STORE_ID.map(lambda s: " " + s)))
def test_the_script_and_the_app_accept_the_same_store_ids(text):
    try:
        ids.validate_store_id(text)
        app_ok = True
    except ids.InvalidStoreId:
        app_ok = False
    try:
        sa.validate_store_id(text)
        script_ok = True
    except sa.UsageError:
        script_ok = False
    assert app_ok == script_ok


@pytest.mark.parametrize("bad", ["", "S 1", "S1\n", "a/b", "../x", "x" * 65, "S'1", "S*", "S1/"])
def test_an_unsafe_store_id_gets_no_condition(bad):
    with pytest.raises(sa.UsageError):
        sa.condition(bad)


def test_the_script_needs_nothing_but_the_standard_library_and_old_pythons():
    done = subprocess.run([sys.executable, "-I", "-S", str(SCRIPT), "condition", "--store", "S001"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == CONDITION_S001
    ast.parse(SCRIPT.read_text(), feature_version=(3, 8))  # no syntax newer than 3.8


# --- the Bicep: no blanket agent access left -------------------------------------------------------------------

def test_the_bicep_has_no_shared_agent_identity_or_blanket_raw_assignment():
    modules = ROOT / "infra" / "modules"
    assert "id-agent-" not in (modules / "identity.bicep").read_text()
    rbac = (modules / "rbac.bicep").read_text()
    assert "agentPrincipalId" not in rbac and "StringStartsWith" not in rbac
    assert not re.search(r"roleDefinitionId:[^\n]*agentRole", rbac), "assigned per store, by the script"
    main = (ROOT / "infra" / "main.bicep").read_text()
    assert "AGENT_IDENTITY_CLIENT_ID" not in main
    for output in ("AGENT_ROLE_DEFINITION_ID", "LAKE_CONTAINER_RESOURCE_ID"):
        assert re.search(rf"^output {output} string = ", main, re.M), output
        assert output in SCRIPT.read_text()


# --- the az commands ---------------------------------------------------------------------------------------------

ROLE = "/subscriptions/0000/providers/Microsoft.Authorization/roleDefinitions/1111aaaa-0000-0000-0000-000000000000"
SCOPE = ("/subscriptions/0000/resourceGroups/rg-inv/providers/Microsoft.Storage/storageAccounts/stlake/"
         "blobServices/default/containers/lake")
COMMON = ["--role-definition-id", ROLE, "--container-id", SCOPE, "--name-prefix", "inventory-agent-prod"]


def fake_certificate(path: Path, seed: bytes = b"store") -> str:
    """A PEM 'certificate' (a DER SEQUENCE): enough for the script, which hashes it and hands it to az."""
    der = b"\x30\x82\x00\x10" + hashlib.sha256(seed).digest()[:16]
    path.write_text("-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n")
    return hashlib.sha1(der).hexdigest().upper()


def run(capsys, *argv):
    code = sa.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def commands(out: str) -> list[list[str]]:
    """The dry run's command lines, parsed back as a POSIX shell would (the quoting is exact)."""
    return [shlex.split(line) for line in out.splitlines() if line.startswith("az ")]


def test_onboard_dry_run_prints_the_exact_commands(capsys, tmp_path):
    thumb = fake_certificate(tmp_path / "S001.crt")
    code, out, _ = run(capsys, "onboard", "--stores", "S001", "--cert-dir", str(tmp_path), "--dry-run", *COMMON)
    assert code == 0
    name = "inventory-agent-prod store=S001"
    cert = f"@{tmp_path}/S001.crt"
    assert out.splitlines() == [
        "# dry run: nothing is run; lookups are shown and assumed to find nothing",
        f"# store S001: application '{name}'",
        f"""az ad app list --filter "displayName eq '{name}'" --output json""",
        f"# if it lists no application named '{name}':",
        f"az ad app create --display-name '{name}' --sign-in-audience AzureADMyOrg --output json",
        """az ad sp list --filter "appId eq '<appId of S001>'" --output json""",
        "# if it lists no service principal:",
        "az ad sp create --id '<appId of S001>' --output json",
        "az ad app credential list --id '<appId of S001>' --cert --output json",
        f"# if no certificate credential is named 'agent-cert-{thumb}':",
        f"az ad app credential reset --id '<appId of S001>' --cert {cert} --append --display-name agent-cert-{thumb} "
        "--output json",
        f"az role assignment list --scope {SCOPE} --role {ROLE} --output json",
        "# if none of them is for <servicePrincipalId of S001> with the condition below:",
        f"az role assignment create --assignee-object-id '<servicePrincipalId of S001>' --assignee-principal-type "
        f'ServicePrincipal --role {ROLE} --scope {SCOPE} --condition "{CONDITION_S001}" --condition-version 2.0 '
        "--description 'Inventory store agent S001: read, create and write blobs under raw/store=S001/ only "
        "(infra/scripts/store_access.py)' --output json",
    ]
    create = commands(out)[-1]
    assert create[create.index("--condition") + 1] == CONDITION_S001  # survives the shell's quoting unchanged
    assert commands(out)[0][5] == f"displayName eq '{name}'"


def test_onboard_dry_run_of_many_stores_from_a_file(capsys, tmp_path):
    (tmp_path / "stores.txt").write_text("# the pilot\nS001\nS002  # north\n\nS001\n")
    code, out, _ = run(capsys, "onboard", "--stores-file", str(tmp_path / "stores.txt"), "--dry-run", *COMMON)
    assert code == 0
    creates = [c for c in commands(out) if c[1:4] == ["role", "assignment", "create"]]
    assert [c[c.index("--condition") + 1] for c in creates] == [sa.condition("S001"), sa.condition("S002")]
    assert "# no certificate for S001 (--cert-dir): the application has no credential yet" in out


def test_revoke_dry_run_prints_the_exact_commands(capsys):
    code, out, _ = run(capsys, "revoke", "--store", "S001", "--dry-run", *COMMON)
    assert code == 0
    name = "inventory-agent-prod store=S001"
    assert out.splitlines() == [
        "# dry run: nothing is run; lookups are shown and assumed to find the store's application and role assignment",
        f"# store S001: application '{name}'",
        f"""az ad app list --filter "displayName eq '{name}'" --output json""",
        """az ad sp list --filter "appId eq '<appId of S001>'" --output json""",
        f"az role assignment list --scope {SCOPE} --role {ROLE} --output json",
        "# for each assignment it lists whose principal is the application's or whose condition is S001's:",
        "az role assignment delete --ids '<roleAssignmentId of S001>'",
        "# if it listed the application (deleting it also deletes its service principal and certificates):",
        "az ad app delete --id '<appId of S001>'",
    ]


@pytest.mark.parametrize("argv", [["onboard", "--stores", "S001", "S/2"], ["onboard", "--stores", "S 1"],
                                  ["revoke", "--store", "S1", "--store", "../x"], ["condition", "--store", "S1/"]])
def test_an_invalid_store_id_stops_before_any_command(capsys, argv):
    code, out, err = run(capsys, *argv, *(COMMON if argv[0] != "condition" else []),
                         *(["--dry-run"] if argv[0] != "condition" else []))
    assert code == 2 and "invalid store id" in err and "az " not in out


def test_a_private_key_in_the_certificate_folder_is_refused(capsys, tmp_path):
    fake_certificate(tmp_path / "S001.crt")
    (tmp_path / "S001.crt").write_text((tmp_path / "S001.crt").read_text() + "-----BEGIN PRIVATE KEY-----\nAA==\n")
    code, out, err = run(capsys, "onboard", "--stores", "S001", "--cert-dir", str(tmp_path), "--dry-run", *COMMON)
    assert code == 2 and "private key" in err and out == ""


# --- a fake az: applications, service principals, role assignments in a JSON file --------------------------------

FAKE_AZ = r'''
import json, os, re, sys, uuid, hashlib, base64
state_file, log_file = os.environ["FAKE_AZ_STATE"], os.environ["FAKE_AZ_LOG"]
state = json.load(open(state_file)) if os.path.exists(state_file) else {"apps": [], "sps": [], "assignments": []}
args = sys.argv[1:]
with open(log_file, "a") as log:
    log.write(json.dumps(args) + "\n")

def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default

def graph_filter(items, f):
    m = re.fullmatch(r"(\w+) eq '((?:[^']|'')*)'", f)
    if m:  # Graph compares strings case-insensitively
        return [i for i in items if (i.get(m[1]) or "").lower() == m[2].replace("''", "'").lower()]
    m = re.fullmatch(r"startswith\((\w+),'((?:[^']|'')*)'\)", f)
    if m:
        return [i for i in items if (i.get(m[1]) or "").lower().startswith(m[2].replace("''", "'").lower())]
    sys.exit("fake az: unsupported filter " + f)

def guid(x):
    return x.rstrip("/").rsplit("/", 1)[-1].lower()

def out(obj):
    print(json.dumps(obj))

def app_by(appid):
    found = [a for a in state["apps"] if a["appId"] == appid]
    if not found:
        print("app not found", file=sys.stderr); sys.exit(3)
    return found[0]

cmd = args[:4]
if args[:3] == ["ad", "app", "list"]:
    out(graph_filter(state["apps"], opt("--filter")))
elif args[:3] == ["ad", "app", "create"]:
    app = {"appId": str(uuid.uuid4()), "id": str(uuid.uuid4()), "displayName": opt("--display-name"),
           "keyCredentials": []}
    state["apps"].append(app); out(app)
elif args[:3] == ["ad", "sp", "list"]:
    out(graph_filter(state["sps"], opt("--filter")))
elif args[:3] == ["ad", "sp", "create"]:
    app = app_by(opt("--id"))
    sp = {"id": str(uuid.uuid4()), "appId": app["appId"], "displayName": app["displayName"]}
    state["sps"].append(sp); out(sp)
elif cmd == ["ad", "app", "credential", "list"]:
    out(app_by(opt("--id"))["keyCredentials"])
elif cmd == ["ad", "app", "credential", "reset"]:
    assert "--append" in args and opt("--cert", "").startswith("@")
    text = open(opt("--cert")[1:]).read()
    der = base64.b64decode("".join(text.split("-----")[2].split()))
    app = app_by(opt("--id"))
    app["keyCredentials"].append({"displayName": opt("--display-name"), "keyId": str(uuid.uuid4()),
                                  "customKeyIdentifier": hashlib.sha1(der).hexdigest().upper(),
                                  "endDateTime": "2027-01-01T00:00:00Z", "type": "AsymmetricX509Cert"})
    out({"appId": app["appId"], "password": None, "tenant": "t"})
elif args[:3] == ["ad", "app", "delete"]:
    app = app_by(opt("--id"))
    state["apps"].remove(app)
    state["sps"] = [s for s in state["sps"] if s["appId"] != app["appId"]]
elif cmd == ["role", "assignment", "list", "--scope"]:
    scope, role = opt("--scope"), opt("--role")
    out([a for a in state["assignments"] if scope.lower().startswith(a["scope"].lower())
         and guid(a["roleDefinitionId"]) == guid(role)])
elif args[:3] == ["role", "assignment", "create"]:
    key = (opt("--assignee-object-id"), guid(opt("--role")), opt("--scope").lower())
    if any((a["principalId"], guid(a["roleDefinitionId"]), a["scope"].lower()) == key for a in state["assignments"]):
        print("(RoleAssignmentExists) The role assignment already exists.", file=sys.stderr); sys.exit(1)
    assert opt("--assignee-principal-type") == "ServicePrincipal" and opt("--condition-version") == "2.0"
    a = {"id": opt("--scope") + "/providers/Microsoft.Authorization/roleAssignments/" + str(uuid.uuid4()),
         "principalId": opt("--assignee-object-id"), "roleDefinitionId": opt("--role"), "scope": opt("--scope"),
         "condition": opt("--condition"), "conditionVersion": "2.0", "description": opt("--description")}
    state["assignments"].append(a); out(a)
elif args[:3] == ["role", "assignment", "delete"]:
    state["assignments"] = [a for a in state["assignments"] if a["id"] != opt("--ids")]
else:
    print("fake az: unsupported " + " ".join(args), file=sys.stderr); sys.exit(2)
json.dump(state, open(state_file, "w"))
'''

WRITES = {("ad", "app", "create"), ("ad", "sp", "create"), ("ad", "app", "credential"), ("ad", "app", "delete"),
          ("role", "assignment", "create"), ("role", "assignment", "delete")}


class FakeAz:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.exe = tmp_path / "az"
        self.exe.write_text(f"#!{sys.executable}\n{FAKE_AZ}")
        self.exe.chmod(0o755)
        self.state_file, self.log_file = tmp_path / "az-state.json", tmp_path / "az-log.jsonl"
        monkeypatch.setenv("FAKE_AZ_STATE", str(self.state_file))
        monkeypatch.setenv("FAKE_AZ_LOG", str(self.log_file))
        self.mark()

    @property
    def state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def save(self, state: dict) -> None:
        self.state_file.write_text(json.dumps(state))

    def mark(self) -> None:
        self.log_file.write_text("")

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def writes(self) -> list[list[str]]:
        return [c for c in self.calls() if tuple(c[:3]) in WRITES and c[:4] != ["ad", "app", "credential", "list"]]

    def args(self) -> list[str]:
        return ["--az", str(self.exe), *COMMON]


@pytest.fixture
def az(tmp_path, monkeypatch):
    return FakeAz(tmp_path, monkeypatch)


def test_onboard_creates_each_store_once_and_a_rerun_changes_nothing(capsys, tmp_path, az):
    certs = tmp_path / "certs"
    certs.mkdir()
    thumb = fake_certificate(certs / "S001.crt")
    code, out, _ = run(capsys, "onboard", "--stores", "S001", "S002", "--cert-dir", str(certs), *az.args())
    assert code == 0
    report = json.loads(out)
    assert [r["store"] for r in report] == ["S001", "S002"]
    assert report[0]["certificate"] == f"added {thumb}" and report[1]["certificate"] == "none"
    assert report[0]["agentSettings"]["AZURE_CLIENT_ID"] == report[0]["appId"]
    state = az.state
    assert sorted(a["displayName"] for a in state["apps"]) == ["inventory-agent-prod store=S001",
                                                               "inventory-agent-prod store=S002"]
    by_principal = {a["principalId"]: a for a in state["assignments"]}
    for r in report:
        assert by_principal[r["servicePrincipalId"]]["condition"] == sa.condition(r["store"])
        assert by_principal[r["servicePrincipalId"]]["scope"] == SCOPE
    assert len(az.writes()) == 2 + 2 + 1 + 2  # apps, service principals, one certificate, role assignments

    az.mark()
    code, out, err = run(capsys, "onboard", "--stores", "S001", "S002", "--cert-dir", str(certs), *az.args())
    assert code == 0 and az.writes() == [], az.writes()
    assert az.state == state
    assert "= S001: application exists" in err and f"certificate {thumb} already added" in err
    assert [r["roleAssignment"] for r in json.loads(out)] == [a["id"] for a in state["assignments"]]


def test_onboard_replaces_a_role_assignment_whose_condition_drifted(capsys, az):
    assert run(capsys, "onboard", "--stores", "S002", *az.args())[0] == 0
    state = az.state
    old = CONDITION_S001.replace("raw/store=S001/", "raw/")  # e.g. the former shared raw/ condition
    state["assignments"][0]["condition"] = old
    az.save(state)
    az.mark()
    code, _, err = run(capsys, "onboard", "--stores", "S002", *az.args())
    assert code == 0 and "has another condition; replacing it" in err
    assert [c[:3] for c in az.writes()] == [["role", "assignment", "delete"], ["role", "assignment", "create"]]
    assert [a["condition"] for a in az.state["assignments"]] == [sa.condition("S002")]


def test_a_new_certificate_is_appended_for_rotation(capsys, tmp_path, az):
    certs = tmp_path / "certs"
    certs.mkdir()
    first = fake_certificate(certs / "S001.crt", b"2026")
    run(capsys, "onboard", "--stores", "S001", "--cert-dir", str(certs), *az.args())
    second = fake_certificate(certs / "S001.crt", b"2027")
    code, out, _ = run(capsys, "onboard", "--stores", "S001", "--cert-dir", str(certs), *az.args())
    assert code == 0 and json.loads(out)[0]["certificate"] == f"added {second}"
    names = [c["displayName"] for c in az.state["apps"][0]["keyCredentials"]]
    assert names == [f"agent-cert-{first}", f"agent-cert-{second}"]  # the old one stays until removed by hand


def test_store_ids_differing_in_case_are_two_stores(capsys, az):
    # Graph's "displayName eq" ignores case; store ids do not: the script compares names exactly.
    assert run(capsys, "onboard", "--stores", "S1", "s1", *az.args())[0] == 0
    state = az.state
    assert len(state["apps"]) == 2 and len(state["assignments"]) == 2
    assert sorted(a["condition"] for a in state["assignments"]) == sorted([sa.condition("S1"), sa.condition("s1")])


def test_revoke_removes_the_store_and_nothing_else_and_is_idempotent(capsys, az):
    run(capsys, "onboard", "--stores", "S001", "S002", *az.args())
    az.mark()
    code, out, _ = run(capsys, "revoke", "--store", "S001", *az.args())
    assert code == 0
    report = json.loads(out)[0]
    assert report["applicationDeleted"] and len(report["roleAssignmentsDeleted"]) == 1
    state = az.state
    assert [a["displayName"] for a in state["apps"]] == ["inventory-agent-prod store=S002"]
    assert [a["condition"] for a in state["assignments"]] == [sa.condition("S002")]
    az.mark()
    code, out, _ = run(capsys, "revoke", "--store", "S001", *az.args())
    assert code == 0 and az.writes() == []
    assert json.loads(out) == [{"store": "S001", "roleAssignmentsDeleted": [], "applicationDeleted": False}]


def test_revoke_keep_app_removes_the_access_only(capsys, az):
    run(capsys, "onboard", "--stores", "S001", *az.args())
    assert run(capsys, "revoke", "--store", "S001", "--keep-app", *az.args())[0] == 0
    assert len(az.state["apps"]) == 1 and az.state["assignments"] == []


def test_an_existing_principal_gets_the_store_condition_and_revoke_finds_it(capsys, az):
    principal = "9f0c2d7e-0000-4000-8000-00000000arc1"
    code, out, _ = run(capsys, "onboard", "--stores", "S003", "--principal-id", principal, *az.args())
    assert code == 0 and "appId" not in json.loads(out)[0]
    assert [(a["principalId"], a["condition"]) for a in az.state["assignments"]] == [(principal, sa.condition("S003"))]
    assert not az.state["apps"]
    assert run(capsys, "revoke", "--store", "S003", *az.args())[0] == 0
    assert az.state["assignments"] == []
    code, _, err = run(capsys, "onboard", "--stores", "S3", "S4", "--principal-id", principal, *az.args())
    assert code == 2 and "exactly one store" in err


def test_list_shows_the_stores_and_flags_what_is_wrong(capsys, tmp_path, az):
    certs = tmp_path / "certs"
    certs.mkdir()
    fake_certificate(certs / "S001.crt")
    run(capsys, "onboard", "--stores", "S001", "S002", "--cert-dir", str(certs), *az.args())
    state = az.state
    legacy = {"id": SCOPE + "/providers/Microsoft.Authorization/roleAssignments/legacy", "principalId": "old-agent",
              "roleDefinitionId": ROLE, "scope": SCOPE, "condition": CONDITION_S001.replace("raw/store=S001/", "raw/")}
    state["assignments"].append(legacy)
    az.save(state)
    code, out, _ = run(capsys, "list", *az.args())
    assert code == 0
    listed = json.loads(out)
    rows = {r["store"]: r for r in listed["stores"]}
    assert set(rows) == {"S001", "S002"}
    assert rows["S001"]["problems"] == [] and len(rows["S001"]["certificates"]) == 1
    assert rows["S002"]["problems"] == ["no certificate: the agent cannot sign in (onboard --cert-dir)"]
    assert [o["id"] for o in listed["otherAssignments"]] == [legacy["id"]]
    assert "not a per-store condition" in listed["otherAssignments"][0]["problem"]
