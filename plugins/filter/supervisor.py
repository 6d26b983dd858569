"""supervisor_value, supervisor_environment: values for supervisord's ini files.

supervisord reads its files with Python's configparser: a value is one line (a control
character is refused), a `;` after a blank starts a comment that cuts the value short (refused:
the format has no escape for it), and %(name)s is expanded in most values, so a literal % is
written %%. `environment` is a comma-separated list of KEY="value" pairs in which a backslash and
a double quote are escaped with a backslash.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.wsgideploy.fleet.plugins.plugin_utils.escape import (
    env_name,
    one_line,
    refuse,
)

INLINE_COMMENT_RE = re.compile(r"\s;")


def supervisor_value(value: Any, variable: str = "value") -> str:
    text = one_line(value, variable, "a supervisord file")
    if INLINE_COMMENT_RE.search(text):
        refuse(variable, value, "has a ';' after a blank, which starts a comment in a supervisord file")
    return text.replace("%", "%%")


def supervisor_environment(env: dict[str, Any], variable: str = "environment") -> str:
    pairs = []
    for key, value in sorted(env.items()):
        name = env_name(key, variable)
        escaped = supervisor_value(value, f"{variable}.{name}").replace("\\", "\\\\").replace('"', '\\"')
        pairs.append(f'{name}="{escaped}"')
    return ",".join(pairs)


class FilterModule:
    def filters(self):
        return {"supervisor_value": supervisor_value, "supervisor_environment": supervisor_environment}
