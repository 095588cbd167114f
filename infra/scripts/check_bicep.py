"""Cross-file semantic checks on infra/**/*.bicep: what `bicep build` would reject and checkov does not look at.

Run with checkov's venv (it bundles pycep):  .venv-infra/bin/python infra/scripts/check_bicep.py [ROOT]
ROOT defaults to the infra/ folder holding this script. Prints one line per problem, `file:line: level: message`;
exit status 1 when there is an error, 0 otherwise (warnings are printed but do not fail).

Errors:
  - a file that pycep's Bicep grammar cannot parse;
  - a symbol (param, var, resource, module) declared twice in a file;
  - `module x '<path>'`: the path does not exist; a key of `params: {...}` is not a param of the module; a param
    the module declares without a default value is not passed; the module's targetScope differs from the file's
    and no `scope:` is given;
  - `x.outputs.NAME` (also `x[i].outputs.NAME`, `x.outputs['NAME']`) where module x declares no output NAME;
  - `res::child` where resource res has no nested resource `child`;
  - an identifier, in any expression or `${...}` interpolation, that is not a param, var, resource or module of
    the file, a loop variable, a `filter` lambda variable, a nested resource visible from its parent's body, or
    the `sys` / `az` namespaces (built-in functions are keywords of pycep's grammar, so a misspelt function name
    is a syntax error).
Warnings (Bicep linter rules no-unused-params, no-unused-vars, no-unused-existing-resources): params, vars and
`existing` resources declared in a file and never referenced in it.

Limits. It works on pycep's raw Lark tree (`BicepParser().lark_parser`), not on `BicepParser().parse()`'s dict,
which turns both `lake` and `'lake'` into the string "lake" and so cannot tell a reference from a literal. pycep's
grammar is a subset of Bicep's (no imports, user-defined functions or types, lambdas other than `filter`,
nullable types, ...): a file using them is reported as a syntax error though bicep would accept it (checkov cannot
read it either). Not checked: types (param, output and property types, `@allowed` values, decorators'
arguments), property names other than module outputs and nested resources (`x.properties.foo`), resource types,
API versions and their schemas (property names and values), `params:` given as anything but an object literal,
registry modules (`br:`, `ts:`), custom `type` declarations, cycles between symbols, and everything decided at
deploy time (names, quotas, RBAC, regional availability): for those, `bicep build` / `az deployment what-if`.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lark import Token, Tree
from lark.exceptions import LarkError
from pycep import BicepParser

NAMESPACES = {"sys", "az"}
REGISTRY_PREFIXES = ("br:", "br/", "ts:", "ts/")


@dataclass
class Decl:
    kind: str  # param | var | resource | module
    line: int
    has_default: bool = False  # params
    existing: bool = False  # resources
    children: dict[str, Decl] = field(default_factory=dict)  # nested resources
    module_path: str = ""  # modules
    value: object = None  # modules: the `{...}`, `[for ...]` or `if (...) {...}` after `=`


@dataclass
class BicepFile:
    path: Path
    tree: Tree[Token]
    decls: dict[str, Decl] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    target_scope: str = "resourceGroup"


def line_of(node: object, default: int = 0) -> int:
    if isinstance(node, Token):
        return node.line or default
    return node.meta.line if isinstance(node, Tree) and not node.meta.empty else default


def unwrap(node: object) -> object:
    """Skips the single-child `operator` / `function` wrappers pycep puts around expressions."""
    while isinstance(node, Tree) and node.data in ("operator", "function") and len(node.children) == 1:
        node = node.children[0]
    return node


def leftmost_name(node: object) -> str | None:
    """The identifier an expression starts with (`a` of `a.b.c`, `a[0]`, `a == b`), if it starts with one."""
    while isinstance(node, Tree):
        if node.data == "string":
            tok = node.children[0]
            return str(tok) if isinstance(tok, Token) and tok.type == "STRING" else None
        node = next((c for c in node.children if c is not None), None)
    return None


def body_object(value: object) -> Tree[Token] | None:
    """The `{...}` of a resource or module value: plain, `[for ...: {...}]` or `if (...) {...}`."""
    value = unwrap(value)
    if isinstance(value, Tree) and value.data == "loop":
        value = unwrap(value.children[2])
    if isinstance(value, Tree) and value.data == "deploy_condition":
        value = unwrap(value.children[1])
    return value if isinstance(value, Tree) and value.data == "object" else None


def pairs(obj: Tree[Token]) -> dict[str, Tree[Token]]:
    """Key -> `pair` node of an object literal (keys unquoted)."""
    out: dict[str, Tree[Token]] = {}
    for pair in obj.children:
        if isinstance(pair, Tree) and pair.data == "pair":
            key = pair.children[0]
            if isinstance(key, Tree) and isinstance(key.children[0], Token):
                out[str(key.children[0]).strip("'")] = pair
    return out


def nested_resources(value: object) -> dict[str, Decl]:
    obj = body_object(value)
    out: dict[str, Decl] = {}
    for child in obj.children if obj is not None else []:
        if isinstance(child, Tree) and child.data == "child_resource":
            name, _, existing, body = child.children
            assert isinstance(name, Token)
            out[str(name)] = Decl("resource", name.line or 0, existing=existing is not None,
                                  children=nested_resources(body))
    return out


def interpolations(text: str) -> list[str]:
    """The outermost `${...}` expressions of a quoted Bicep string token (quotes included)."""
    found: list[str] = []
    _string_end(text, 0, found)
    return found


def _string_end(text: str, i: int, found: list[str] | None = None) -> int:
    """Index of the quote closing the string literal opened at text[i]."""
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "'":
            return i
        elif text.startswith("${", i):
            end = _expr_end(text, i + 2)
            if found is not None:
                found.append(text[i + 2 : end])
            i = end + 1
        else:
            i += 1
    raise ValueError("unterminated string")


def _expr_end(text: str, i: int) -> int:
    """Index of the `}` closing the interpolation whose expression starts at text[i]."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == "'":
            i = _string_end(text, i)
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise ValueError("unterminated interpolation")


class Checker:
    def __init__(self) -> None:
        self.parser = BicepParser()
        self.files: dict[Path, BicepFile | None] = {}
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def report(self, level: str, path: Path, line: int, message: str) -> None:
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        (self.errors if level == "error" else self.warnings).append(f"{shown}:{line}: {level}: {message}")

    def load(self, path: Path) -> BicepFile | None:
        """Parses a file once (None when pycep rejects it, reported as an error) and indexes its declarations."""
        path = path.resolve()
        if path in self.files:
            return self.files[path]
        self.files[path] = None
        try:
            self.parser.parse(file_path=path)  # what checkov runs: grammar + pycep's JSON transform
            tree = self.parser.lark_parser.parse(path.read_text())
        except (LarkError, ValueError) as exc:
            line = getattr(exc, "line", 0)
            self.report("error", path, max(line, 0) if isinstance(line, int) else 0,
                        f"syntax error (pycep grammar): {str(exc).strip().splitlines()[0]}")
            return None
        bf = BicepFile(path, tree)
        for el in tree.children:
            if not isinstance(el, Tree):
                continue
            if el.data == "scope":
                bf.target_scope = str(el.children[0]).strip("'")
            elif el.data == "output":
                bf.outputs.add(str(el.children[1]))
            elif el.data in ("param", "var", "resource", "module"):
                name = el.children[1]
                assert isinstance(name, Token)
                decl = Decl(str(el.data), name.line or 0)
                if el.data == "param":
                    decl.has_default = el.children[3] is not None
                elif el.data == "resource":
                    decl.existing = el.children[3] is not None
                    decl.children = nested_resources(el.children[4])
                elif el.data == "module":
                    path_node = el.children[2]
                    decl.module_path = str(path_node.children[0]).strip("'") if isinstance(path_node, Tree) else ""
                    decl.value = el.children[3]
                if str(name) in bf.decls:  # the first declaration stays the one references resolve to
                    self.report("error", path, decl.line, f"{el.data} '{name}' is declared twice (first at line "
                                f"{bf.decls[str(name)].line})")
                else:
                    bf.decls[str(name)] = decl
        self.files[path] = bf
        return bf

    def module_file(self, bf: BicepFile, decl: Decl) -> BicepFile | None:
        """The module's parsed file; None for a registry module, a missing file or one that does not parse."""
        target = bf.path.parent / decl.module_path
        registry = decl.module_path.startswith(REGISTRY_PREFIXES)
        return self.load(target) if not registry and target.is_file() else None

    def check_file(self, bf: BicepFile) -> None:
        walker = Walker(self, bf)
        for el in bf.tree.children:
            if isinstance(el, Tree) and el.data in ("param", "var", "output", "resource", "module"):
                walker.walk(el.children[0], frozenset())  # decorators
                walker.walk(el.children[-1], frozenset())  # default value, value or body
        for name, decl in bf.decls.items():
            if decl.kind == "module":
                self.check_module(bf, name, decl)
            elif name not in walker.used and (decl.kind in ("param", "var") or decl.existing):
                kind = "existing resource" if decl.kind == "resource" else decl.kind
                self.report("warning", bf.path, decl.line, f"{kind} '{name}' is declared but never used")

    def check_module(self, bf: BicepFile, name: str, decl: Decl) -> None:
        rel = decl.module_path
        if not rel.startswith(REGISTRY_PREFIXES) and not (bf.path.parent / rel).is_file():
            self.report("error", bf.path, decl.line, f"module '{name}': file '{rel}' not found")
            return
        mod = self.module_file(bf, decl)
        body = body_object(decl.value)
        if mod is None or body is None:
            return
        keys = pairs(body)
        if mod.target_scope != bf.target_scope and "scope" not in keys:
            self.report("error", bf.path, decl.line, f"module '{name}': '{rel}' targets {mod.target_scope}, this "
                        f"file {bf.target_scope}, and no scope: is given")
        params_pair = keys.get("params")
        params = unwrap(params_pair.children[1]) if params_pair is not None else None
        if params_pair is not None and not (isinstance(params, Tree) and params.data == "object"):
            return  # params given as an expression: cannot check
        passed = pairs(params) if isinstance(params, Tree) else {}
        declared = {n: d for n, d in mod.decls.items() if d.kind == "param"}
        for param, pair in passed.items():
            if param not in declared:
                self.report("error", bf.path, line_of(pair, decl.line), f"module '{name}' passes param '{param}' "
                            f"that '{rel}' does not declare{suggest(param, declared)}")
        for param, pdecl in declared.items():
            if not pdecl.has_default and param not in passed:
                self.report("error", bf.path, decl.line, f"module '{name}' does not pass param '{param}', "
                            f"required by '{rel}' (no default value)")


def suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Walker:
    """Collects the identifiers a file references and reports those that resolve to nothing."""

    def __init__(self, checker: Checker, bf: BicepFile) -> None:
        self.checker, self.bf = checker, bf
        self.used: set[str] = set()

    def error(self, line: int, message: str) -> None:
        self.checker.report("error", self.bf.path, line, message)

    def walk(self, node: object, scope: frozenset[str], prop: bool = False, line: int = 0) -> None:
        """`prop`: the expression's leftmost identifier is a property name (right operand of `.` or `::`).
        `line`: the line to report for trees parsed from an interpolation (their own lines are 1)."""
        if not isinstance(node, Tree):
            return
        data, kids = node.data, node.children
        if data == "string" or data == "key":
            tok = kids[0]
            if isinstance(tok, Token) and tok.type == "STRING" and data == "string" and not prop:
                self.resolve(str(tok), line or tok.line or 0, scope)
            elif isinstance(tok, Token) and tok.type == "QUOTED_INTERPOLATION":
                self.walk_interpolations(tok, scope, line or tok.line or 0)
        elif data in ("property_accessor", "nested_resource_accessor"):
            (self.check_output if data == "property_accessor" else self.check_nested)(kids[0], kids[1], scope, line)
            self.walk(kids[0], scope, prop, line)
            self.walk(kids[1], scope, True, line)
        elif data == "loop":  # the iterated expression sees the outer scope, the filter and body the loop variables
            header = kids[0]
            assert isinstance(header, Tree)
            names = {str(t) for t in header.children if isinstance(t, Token)}
            for child in header.children:
                self.walk(child, scope, line=line)
            for child in kids[1:]:
                self.walk(child, scope | names, line=line)
        elif data == "filter":
            self.walk(kids[0], scope, line=line)
            self.walk(kids[2], scope | {str(kids[1])}, line=line)
        elif data == "object":  # nested resources are visible by name in their parent's body
            local = {str(c.children[0]) for c in kids if isinstance(c, Tree) and c.data == "child_resource"}
            for child in kids:
                self.walk(child, scope | local, line=line)
        elif data not in ("custom_type", "metadata", "scope", "module_path", "type_api_pair", "data_type"):
            first = True
            for child in kids:
                if child is not None:
                    self.walk(child, scope, prop and first, line)
                    first = False

    def resolve(self, name: str, line: int, scope: frozenset[str]) -> None:
        if name in scope or name in NAMESPACES:
            return
        if name in self.bf.decls:
            self.used.add(name)
            return
        self.error(line, f"undeclared identifier '{name}'{suggest(name, set(self.bf.decls) | scope)}")

    def walk_interpolations(self, tok: Token, scope: frozenset[str], line: int) -> None:
        try:
            exprs = interpolations(str(tok))
        except ValueError:
            exprs = []
        for expr in exprs:
            try:
                element = self.checker.parser.lark_parser.parse(f"var x = {expr}\n").children[0]
            except LarkError:
                self.checker.report("warning", self.bf.path, line, f"interpolation '${{{expr}}}' not checked "
                                    "(pycep cannot parse it alone)")
                continue
            self.walk(element.children[2] if isinstance(element, Tree) else None, scope, line=line)

    def module_decl(self, node: object, scope: frozenset[str]) -> Decl | None:
        """The module declaration `node` names (`m` or `m[i]`), unless a local name shadows it."""
        node = unwrap(node)
        if isinstance(node, Tree) and node.data == "index_accessor":
            node = unwrap(node.children[0])
        name = leftmost_name(node) if isinstance(node, Tree) and node.data == "string" else None
        decl = self.bf.decls.get(name or "")
        return decl if decl is not None and decl.kind == "module" and name not in scope else None

    def check_output(self, target: object, rest: object, scope: frozenset[str], line: int) -> None:
        decl = self.module_decl(target, scope)
        rest = unwrap(rest)
        if decl is None or not isinstance(rest, Tree) or leftmost_name(rest.children[0]) != "outputs":
            return
        if rest.data == "property_accessor":
            output = leftmost_name(rest.children[1])
        elif rest.data == "index_accessor" and isinstance(lit := unwrap(rest.children[1]), Tree):
            tok = lit.children[0] if lit.data == "string" else None
            output = str(tok).strip("'") if isinstance(tok, Token) and "${" not in tok else None
        else:
            return
        mod = self.checker.module_file(self.bf, decl)
        if output is not None and mod is not None and output not in mod.outputs:
            self.error(line or line_of(rest), f"module '{leftmost_name(target)}' has no output '{output}' "
                       f"(outputs of '{mod.path.name}'){suggest(output, mod.outputs)}")

    def check_nested(self, target: object, rest: object, scope: frozenset[str], line: int) -> None:
        name = leftmost_name(unwrap(target))
        decl = self.bf.decls.get(name or "")
        if decl is None or decl.kind != "resource" or name in scope:
            return
        node, path = unwrap(rest), [name or ""]
        while isinstance(node, Tree):
            child = leftmost_name(node) or ""
            path.append(child)
            if child not in decl.children:
                self.error(line or line_of(node), f"'{'::'.join(path)}': resource '{path[-2]}' has no nested "
                           f"resource '{child}'{suggest(child, decl.children)}")
                return
            decl = decl.children[child]
            node = unwrap(node.children[1]) if node.data == "nested_resource_accessor" else None


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    checker = Checker()
    paths = sorted(root.rglob("*.bicep"))
    for path in paths:
        bf = checker.load(path)
        if bf is not None:
            checker.check_file(bf)
    for line in checker.errors + checker.warnings:
        print(line)
    print(f"check_bicep: {len(paths)} files, {len(checker.errors)} errors, {len(checker.warnings)} warnings")
    return 1 if checker.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
