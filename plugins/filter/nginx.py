"""nginx_quote, nginx_arg, nginx_words, nginx_server_names, nginx_header_name: values for nginx's
configuration files.

nginx splits a directive into words at blanks, ends it at `;`, opens and closes blocks at `{` and
`}`, starts a comment at `#`, and reads `$name` as a variable in most strings, quoted or not. In a
double-quoted string a backslash escapes the next character (\\ and \" are a backslash and a double
quote); there is no escape for `$`. So:

- nginx_quote writes a literal string in double quotes, with \\ and \" escaped (or in single
  quotes, with \\ and \' escaped). It refuses a `$`
  (nginx would read a variable; the format has no way to write a literal one), unless the caller
  says the value is meant to hold variables (variables=true), and every control character.
- nginx_arg writes a plain word as it is (a path, a name) and anything else as nginx_quote does.
- nginx_words checks a value written as one or more bare words (a list of flags, ciphers, an
  address): no `;`, braces, quotes, backslash, `#` or control character; `$` only if
  variables=true.
- nginx_server_names checks each name of a server_name: a host name (RFC 1123), a wildcard
  (`*.example.com`, `.example.com`, `www.example.*`), `_`, `localhost` or an IP address; a regular
  expression (`~...`) and anything else are refused. It returns the names joined by blanks.
- nginx_header_name checks a header name: a token of letters, digits, `-` and `_` (the token
  characters nginx reads as a plain word and turns into a variable name).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ansible_collections.wsgideploy.fleet.plugins.plugin_utils.escape import one_line, refuse

BARE_RE = re.compile(r"^[A-Za-z0-9_./:@+,=%~*-]+$")
GRAMMAR_RE = re.compile(r"[;{}\"'\\#]")
LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOST_RE = re.compile(rf"^{LABEL}(?:\.{LABEL})*$")
HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _text(value: Any, variable: str, variables: bool) -> str:
    text = one_line(value, variable, "an nginx file")
    if "$" in text and not variables:
        refuse(variable, value, "has a '$', which nginx reads as a variable: write the value without it")
    return text


def nginx_quote(value: Any, variable: str = "value", variables: bool = False, quote: str = '"') -> str:
    """A quoted nginx string of value: in double quotes (or single: quote="'"), the backslash and
    that quote escaped."""
    if quote not in ('"', "'"):
        raise ValueError(f"nginx_quote: quote must be '\"' or \"'\", got {quote!r}")
    text = _text(value, variable, variables)
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def nginx_arg(value: Any, variable: str = "value", variables: bool = False) -> str:
    """value as one nginx word: bare when it is a plain word, else quoted (nginx_quote)."""
    text = _text(value, variable, variables)
    return text if BARE_RE.fullmatch(text) else nginx_quote(text, variable, variables)


def nginx_words(value: Any, variable: str = "value", variables: bool = False) -> str:
    """value as it is, refused if a character of it ends the directive, opens or closes a block,
    quotes, escapes or comments (or, unless variables=true, names a variable)."""
    text = _text(value, variable, variables)
    bad = GRAMMAR_RE.search(text)
    if bad:
        refuse(variable, value, f"has a {bad.group()!r}, which the nginx configuration reads as syntax")
    return text


def server_name_ok(name: str) -> bool:
    """Whether name may stand in a server_name (the input check, plugins/filter/contain.py, asks too)."""
    if name in ("_", "localhost"):
        return True
    if name.startswith("[") and name.endswith("]"):
        host = name[1:-1]
    else:
        host = name
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        # An IPv6 address in brackets, an IPv4 address bare.
        return (address.version == 6) == (host != name)
    if len(name) > 253:
        return False
    if name.startswith("*."):
        host = name[2:]
    elif name.startswith("."):
        host = name[1:]
    elif name.endswith(".*"):
        host = name[:-2]
    return bool(HOST_RE.fullmatch(host))


def nginx_server_names(names: Any, variable: str = "server_names") -> str:
    """The names of a server_name directive, each checked, joined by blanks."""
    if isinstance(names, (str, bytes)):
        names = [names]
    checked = []
    for name in names or []:
        text = one_line(name, variable, "an nginx file")
        if text.startswith("~"):
            refuse(variable, name, "is a regular expression: give host names (RFC 1123), wildcards or IP addresses")
        if not server_name_ok(text):
            refuse(variable, name, "is not a server name: a host name (RFC 1123, non-ASCII as xn--), '*.example.com', "
                                   "'.example.com', 'www.example.*', '_', 'localhost' or an IP address")
        checked.append(text)
    if not checked:
        refuse(variable, names, "names no server")
    return " ".join(checked)


def nginx_header_name(value: Any, variable: str = "header") -> str:
    """A header name, refused unless it is letters, digits, '-' and '_' (starting with one of the first two)."""
    text = one_line(value, variable, "an nginx file")
    if not HEADER_RE.fullmatch(text):
        refuse(variable, value, "is not a header name (letters, digits, '-' and '_')")
    return text


class FilterModule:
    def filters(self):
        return {
            "nginx_quote": nginx_quote,
            "nginx_arg": nginx_arg,
            "nginx_words": nginx_words,
            "nginx_server_names": nginx_server_names,
            "nginx_header_name": nginx_header_name,
        }
