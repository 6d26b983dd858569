"""systemd_value, systemd_quote, systemd_words, systemd_environment, systemd_directives: values
for systemd unit files (systemd.syntax(7), systemd.exec(5), systemd.unit(5)).

A unit file is read line by line: a newline starts the next directive and a line that ends in a
backslash goes on on the next line, so neither can be in a value; both are refused, with every
other control character. systemd expands % specifiers (%i, %h...) in most values, Environment=
included, so a literal % is written %%. In a double-quoted word (Environment=, ReadWritePaths=)
systemd reads C escapes: a backslash and a double quote are written \\ and \". `$` is expanded in
Exec*= command lines only ($VAR, ${VAR}; $$ is a literal $), never in Environment=: commands are
written as the app server roles build them (their $MAINPID is meant).
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.wsgideploy.fleet.plugins.plugin_utils.escape import (
    env_name,
    one_line,
    refuse,
    sorted_items,
)

# A word written without quotes in a space-separated list: nothing systemd's word splitter reads
# (blanks, quotes, backslash) and no specifier.
BARE_WORD_RE = re.compile(r"^[A-Za-z0-9_./:@+,=-]+$")
DIRECTIVE_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _line(value: Any, variable: str) -> str:
    text = one_line(value, variable, "a systemd unit")
    if text.endswith("\\"):
        refuse(variable, value, "ends in a backslash, which joins the next line of a systemd unit to it")
    return text


def systemd_value(value: Any, variable: str = "value") -> str:
    """A directive's whole value as systemd reads it (Description=, WorkingDirectory=, User=,
    ExecStart=...): one line, % written %%."""
    return _line(value, variable).replace("%", "%%")


def systemd_quote(value: Any, variable: str = "value") -> str:
    """One double-quoted word: \\ and \" escaped, % written %%, one line."""
    text = one_line(value, variable, "a systemd unit")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def systemd_words(values: Any, variable: str = "value") -> str:
    """A space-separated list (ReadWritePaths=...): each word bare when it is a plain word, else
    quoted (systemd_quote)."""
    if isinstance(values, (str, bytes)):
        values = [values]
    words = []
    for value in values or []:
        text = one_line(value, variable, "a systemd unit")
        words.append(text if BARE_WORD_RE.fullmatch(text) else systemd_quote(text, variable))
    return " ".join(words)


def systemd_environment(env: Any, variable: str = "environment") -> list[str]:
    """One quoted "NAME=value" (an Environment= line's value) per variable, in dictsort order.

    Names must be [A-Za-z_][A-Za-z0-9_]*; values one line.
    """
    assignments = []
    for name, value in sorted_items(env):
        key = env_name(name, variable)
        text = one_line(value, f"{variable}.{key}", "a systemd unit")
        assignments.append(systemd_quote(f"{key}={text}", f"{variable}.{key}"))
    return assignments


def systemd_directives(directives: Any, variable: str = "directives") -> list[str]:
    """Extra `Name=value` lines, in dictsort order: names are directive names (a capital, then
    letters and digits), values one line. Values are written as given, specifiers included: they
    are systemd's own syntax."""
    lines = []
    for name, value in sorted_items(directives):
        key = str(name)
        if not DIRECTIVE_RE.fullmatch(key):
            refuse(variable, name, "is not a systemd directive name (a capital letter, then letters and digits)")
        lines.append(f"{key}={_line(value, f'{variable}.{key}')}")
    return lines


class FilterModule:
    def filters(self):
        return {
            "systemd_value": systemd_value,
            "systemd_quote": systemd_quote,
            "systemd_words": systemd_words,
            "systemd_environment": systemd_environment,
            "systemd_directives": systemd_directives,
        }
