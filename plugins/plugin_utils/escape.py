"""What every filter that writes a value into a config file checks first.

The filters of each file format (plugins/filter/systemd.py, nginx.py, uwsgi.py, supervisor.py,
upstart.py, config.py, wsgi_app.py's python_literal) escape what their format can escape and
refuse the rest; the checks they share live here, so that a control character or a bad name is
refused the same way, with the same message, in every file we write.

A refusal is a ValueError (what Ansible shows as the template's error) whose message starts with
the variable the value came from, as the template names it: the filter's optional argument.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Environment variable names every process manager can write: what POSIX shells accept.
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def refuse(variable: str, value: Any, problem: str) -> None:
    """Raise the error every filter raises: the variable first, then the value, then why."""
    raise ValueError(f"{variable or 'value'}: {value!r} {problem}")


def control_character(text: str) -> str | None:
    """The first control character of text (C0, DEL, C1) or line/paragraph separator, or None.

    A newline or a carriage return ends a line in every format we write; the others (NUL, escape
    sequences, form feed, tab) are read differently by each parser, or cut a value short.
    """
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return ch
    return None


def one_line(value: Any, variable: str, what: str = "") -> str:
    """value as text, refused when a control character in it could end or change the line."""
    text = str(value)
    ch = control_character(text)
    if ch is not None:
        where = f" in {what}" if what else ""
        refuse(variable, value, f"contains a control character (U+{ord(ch):04X}){where}: one line of printable text only")
    return text


def env_name(name: Any, variable: str) -> str:
    """An environment variable name, refused unless it matches [A-Za-z_][A-Za-z0-9_]*."""
    text = str(name)
    if not ENV_NAME_RE.fullmatch(text):
        refuse(variable, name, "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return text


def matching(value: Any, variable: str, pattern: re.Pattern[str], what: str) -> str:
    """value as text, refused unless it matches pattern (what says what it must be)."""
    text = one_line(value, variable)
    if not pattern.fullmatch(text):
        refuse(variable, value, f"is not {what}")
    return text


def sorted_items(mapping: Any) -> list[tuple[Any, Any]]:
    """A mapping's items in the order of Jinja's dictsort (keys compared without case), which the
    templates used before these filters: the lines come out in the same order."""
    return sorted((mapping or {}).items(), key=lambda kv: str(kv[0]).lower())
