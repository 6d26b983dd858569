"""Load a project script or plugin file as a module, without leaving bytecode next to it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the roles
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


def collection_filters() -> dict:
    """Every filter of plugins/filter/ under its FQCN (wsgideploy.fleet.<name>), as Ansible's
    template module finds them: for rendering the roles' templates with plain jinja2."""
    root = Path(__file__).resolve().parent.parent / "plugins" / "filter"
    filters = {}
    for path in sorted(root.glob("*.py")):
        module = load_module(f"wsgideploy_filter_{path.stem}", path)
        filters.update({f"wsgideploy.fleet.{name}": f for name, f in module.FilterModule().filters().items()})
    return filters
