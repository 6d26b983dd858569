"""config_line, config_word: values written as they are into a line of a config file whose format
has no escape for them (comments, journald sizes, logrotate paths, nftables elements...).

config_line refuses a value that could end the line or change it: control characters (newline,
carriage return, NUL...). config_word refuses, besides, anything but the characters of a plain
word (letters, digits and `_ . / : @ + , = -`): no blank, quote, backslash, `;`, `#`, `{`, `}`,
`$` or `%`, which one config grammar or another reads.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.wsgideploy.fleet.plugins.plugin_utils.escape import matching, one_line

WORD_RE = re.compile(r"^[A-Za-z0-9_./:@+,=-]+$")


def config_line(value: Any, variable: str = "value") -> str:
    """value as it is, refused if it holds a control character."""
    return one_line(value, variable)


def config_word(value: Any, variable: str = "value") -> str:
    """value as it is, refused unless it is one plain word."""
    return matching(value, variable, WORD_RE, "a plain word (letters, digits and _ . / : @ + , = - only)")


class FilterModule:
    def filters(self):
        return {"config_line": config_line, "config_word": config_word}
