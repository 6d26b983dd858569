"""supervisor_value, supervisor_environment: values for supervisord's ini files.

supervisord expands %(name)s in most values, so a literal % is written %%; `environment` is a
comma-separated list of KEY="value" pairs in which a double quote is escaped with a backslash.
"""

from __future__ import annotations

import re
from typing import Any

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def supervisor_value(value: Any) -> str:
    text = str(value)
    if "\n" in text:
        raise ValueError(f"supervisord values are one line: {text!r}")
    return text.replace("%", "%%")


def supervisor_environment(env: dict[str, Any]) -> str:
    pairs = []
    for key, value in sorted(env.items()):
        if not KEY_RE.match(str(key)):
            raise ValueError(f"environment variable name {key!r} cannot be written for supervisord")
        escaped = supervisor_value(value).replace("\\", "\\\\").replace('"', '\\"')
        pairs.append(f'{key}="{escaped}"')
    return ",".join(pairs)


class FilterModule:
    def filters(self):
        return {"supervisor_value": supervisor_value, "supervisor_environment": supervisor_environment}
