"""The inputs digest of a host's stamp (tasks/stamp_check.yml), computed on the controller.

wsgi_stamp_digest(host_vars, roles_dir, roles, trees=[], extra={}, exclude=[]): a sha256 over
everything the named roles make of a host, so that a run can tell in one step whether anything it
would write may differ from what the last successful run left:
- the code: every file of each role (its defaults, templates, tasks) and of each tree (the
  playbooks, the collection's plugins), README files and byte-code excepted;
- the input: each variable any entry point of those roles declares in meta/argument_specs.yml
  that is defined for the host (inventory, group and host vars, extra vars), as templated for it.
  Role defaults are part of the code; facts and registered results are never options, so what a
  run sets itself does not count. A value that cannot be templated for the host counts as its
  error message (the roles would refuse it anyway);
- the content of every controller file such a variable names by an absolute path (a CA bundle,
  a certificate): a new file at the same path is a new input;
- extra: what else the roles read (the host's groups, a few facts).

exclude: declared variables left out. The caller digests what they stand for another way (the
variables that only choose the release - its source, its id - are summed up by the release id).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import yaml

SKIPPED_DIRS = {"__pycache__", ".pytest_cache"}


def _tree_files(root: str) -> list[str]:
    found = []
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        found += [
            os.path.join(top, name)
            for name in sorted(files)
            if not name.endswith((".pyc", ".pyo")) and name != "README.md"
        ]
    return found


def _options(role_dir: str) -> set[str]:
    path = os.path.join(role_dir, "meta", "argument_specs.yml")
    if not os.path.isfile(path):
        return set()
    with open(path, encoding="utf-8") as fh:
        specs = (yaml.safe_load(fh) or {}).get("argument_specs") or {}
    return {name for spec in specs.values() for name in ((spec or {}).get("options") or {})}


def _value(host_vars: Any, name: str) -> Any:
    try:
        value = host_vars[name]
        json.dumps(value, sort_keys=True, default=str)
    except Exception as exc:  # noqa: BLE001 - any templating error is a value of its own
        return f"<error: {type(exc).__name__}: {exc}>"
    return value


def _file_digest(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("/") and "\n" not in value and os.path.isfile(value):
        with open(value, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    return None


def wsgi_stamp_digest(
    host_vars: Any,
    roles_dir: str,
    roles: list[str],
    trees: list[str] | None = None,
    extra: Any = None,
    exclude: list[str] | None = None,
) -> str:
    digest = hashlib.sha256()
    names: set[str] = set()
    roots = [os.path.join(roles_dir, role) for role in sorted(set(roles))] + sorted(trees or [])
    for role in sorted(set(roles)):
        role_dir = os.path.join(roles_dir, role)
        if not os.path.isdir(role_dir):
            raise ValueError(f"wsgi_stamp_digest: no role {role!r} under {roles_dir}")
        names |= _options(role_dir)
    for root in roots:
        for path in _tree_files(root):
            with open(path, "rb") as fh:
                content = hashlib.sha256(fh.read()).hexdigest()
            digest.update(f"file {os.path.relpath(path, os.path.dirname(root))} {content}\n".encode())
    defined = set(host_vars.keys())
    for name in sorted((names & defined) - set(exclude or [])):
        value = _value(host_vars, name)
        digest.update(f"var {name} {json.dumps(value, sort_keys=True, default=str)}\n".encode())
        for item in value if isinstance(value, list) else [value]:
            content = _file_digest(item)
            if content:
                digest.update(f"controller file {item} {content}\n".encode())
    digest.update(f"extra {json.dumps(extra, sort_keys=True, default=str)}\n".encode())
    return digest.hexdigest()


class FilterModule:
    def filters(self):
        return {"wsgi_stamp_digest": wsgi_stamp_digest}
