"""uwsgi_value, uwsgi_options: values for uWSGI's ini files.

uWSGI reads an ini file line by line (a value is one line: a control character is refused) and
expands, in every value, magic variables (%n, %d... and %% for a literal %, over the whole file
as it is read), then placeholders %(option), environment variables $(NAME) and file contents
@(path) (@(exec://command) runs a command). uwsgi_value writes a literal value: % is written %%,
and the sequences that would still be expanded after that (%(, $(, @() are refused, as uWSGI has no
escape for them.

uwsgi_options writes uwsgi_extra_options: each name an option name (lower-case letters, digits and
'-'), each value one line, written as given: extra options are uWSGI's own syntax, magic
variables included (`logto = /var/log/uwsgi/%n.log`).
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.wsgideploy.fleet.plugins.plugin_utils.escape import one_line, refuse, sorted_items

EXPANDED_RE = re.compile(r"[%$@]\(")
OPTION_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def uwsgi_value(value: Any, variable: str = "value") -> str:
    text = one_line(value, variable, "a uWSGI ini file")
    found = EXPANDED_RE.search(text)
    if found:
        refuse(variable, value, f"has {found.group()!r}, which uWSGI expands in an ini file (no escape exists)")
    return text.replace("%", "%%")


def uwsgi_options(options: Any, variable: str = "options") -> list[str]:
    """One `name = value` line per value, options in dictsort order; a list gives the option once
    per item (uWSGI's repeated options)."""
    lines = []
    for name, value in sorted_items(options):
        key = str(name)
        if not OPTION_RE.fullmatch(key):
            refuse(variable, name, "is not a uWSGI option name (lower-case letters, digits and '-')")
        values = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else value
        for v in values:
            lines.append(f"{key} = {one_line(v, f'{variable}.{key}', 'a uWSGI ini file')}")
    return lines


class FilterModule:
    def filters(self):
        return {"uwsgi_value": uwsgi_value, "uwsgi_options": uwsgi_options}
