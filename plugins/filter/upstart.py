"""upstart_quote, upstart_environment: values for upstart job files (init(5)).

upstart reads a stanza's arguments like a small shell (libnih's config parser): an argument may be
put in double or single quotes, quotes next to each other join into one argument, and a backslash
escapes a backslash or whitespace (before any other character it stays as it is, quotes
included). So a value is written in double quotes with each backslash doubled and each double
quote written as '"' (close the double quotes, a double quote in single quotes, open them again).
A newline cannot be written: inside quotes upstart turns it into a space.
"""

from __future__ import annotations

import re
from typing import Any

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def upstart_quote(value: Any) -> str:
    text = str(value)
    if "\n" in text or "\0" in text:
        raise ValueError(f"upstart values are one line: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '"\'"\'"') + '"'


def upstart_environment(env: dict[str, Any]) -> list[str]:
    """One `NAME="value"` (the argument of an env stanza) per variable, sorted by name."""
    pairs = []
    for key, value in sorted((env or {}).items()):
        if not KEY_RE.match(str(key)):
            raise ValueError(f"environment variable name {key!r} cannot be written for upstart")
        pairs.append(f"{key}={upstart_quote(value)}")
    return pairs


class FilterModule:
    def filters(self):
        return {"upstart_quote": upstart_quote, "upstart_environment": upstart_environment}
