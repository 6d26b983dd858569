"""upstart_quote, upstart_environment: values for upstart job files (init(5)).

upstart reads a stanza's arguments like a small shell (libnih's config parser): an argument may be
put in double or single quotes, quotes next to each other join into one argument, and a backslash
escapes a backslash or whitespace (before any other character it stays as it is, quotes
included). So a value is written in double quotes with each backslash doubled and each double
quote written as '"' (close the double quotes, a double quote in single quotes, open them again).
A newline cannot be written (inside quotes upstart turns it into a space): it is refused, with
every other control character.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.wsgideploy.fleet.plugins.plugin_utils.escape import env_name, one_line


def upstart_quote(value: Any, variable: str = "value") -> str:
    text = one_line(value, variable, "an upstart job")
    return '"' + text.replace("\\", "\\\\").replace('"', '"\'"\'"') + '"'


def upstart_environment(env: dict[str, Any], variable: str = "environment") -> list[str]:
    """One `NAME="value"` (the argument of an env stanza) per variable, sorted by name."""
    pairs = []
    for key, value in sorted((env or {}).items()):
        name = env_name(key, variable)
        pairs.append(f"{name}={upstart_quote(value, f'{variable}.{name}')}")
    return pairs


class FilterModule:
    def filters(self):
        return {"upstart_quote": upstart_quote, "upstart_environment": upstart_environment}
