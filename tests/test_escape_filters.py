"""The filters that write values into config files: each escapes what its format can escape and
refuses the rest, naming the variable.

Every filter is fed the same hostile values (newlines, carriage returns, NUL, backslashes, quotes,
`;`, braces, `$`, `%`, `#`, non-ASCII, empty strings, trailing backslashes). What an escaper writes
is read back with a reader of that format's rules (systemd's quoting, nginx's strings, uWSGI's magic
variables, Python), and must give the value back; nginx's own `nginx -t` reads a server written
with them when nginx is installed (skipped otherwise).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest
from scriptload import collection_filters

F = {name.removeprefix("wsgideploy.fleet."): f for name, f in collection_filters().items()}

NEWLINES = ["a\nb", "a\rb", "a\0b", "\n", "tab\there", "esc\x1b[0m", "del\x7f", "nel\x85", "ls\u2028x"]
LITERALS = ["plain", "two words", 'say "hi"', "it's", "a\\b", "x\\", "\\", "semi;colon", "{brace}", "#hash",
            "50% off", "caf\u00e9", "\u65e5\u672c", "emoji \U0001F600", ""]


# --------------------------------------------------------------------------- readers

def systemd_unquote(word: str) -> str:
    """A double-quoted word as systemd reads it (systemd.syntax(7)): C escapes, then %% is %."""
    assert word.startswith('"') and word.endswith('"'), word
    out, i, body = [], 0, word[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            assert nxt in '\\"', f"escape systemd would read otherwise: {body!r}"
            out.append(nxt)
            i += 2
        elif ch == '"':
            raise AssertionError(f"a double quote ends the word early: {body!r}")
        elif ch == "%":
            assert body[i + 1] == "%", f"a specifier systemd would expand: {body!r}"
            out.append("%")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def nginx_unquote(word: str) -> str:
    """A double-quoted nginx string as nginx reads it: a backslash escapes the next character."""
    assert word.startswith('"') and word.endswith('"'), word
    out, i, body = [], 0, word[1:-1]
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] not in '"$', f"ends the string or starts a variable: {body!r}"
            out.append(body[i])
            i += 1
    return "".join(out)


def uwsgi_magic(text: str) -> str:
    """What uWSGI makes of a value: %% is %, and nothing is left that it would expand."""
    assert "%(" not in text.replace("%%", "") and "$(" not in text and "@(" not in text, text
    return text.replace("%%", "%")


# --------------------------------------------------------------------------- every filter refuses control characters

ONE_LINE = [
    ("systemd_value", lambda v: F["systemd_value"](v, "var")),
    ("systemd_quote", lambda v: F["systemd_quote"](v, "var")),
    ("systemd_words", lambda v: F["systemd_words"]([v], "var")),
    ("systemd_environment", lambda v: F["systemd_environment"]({"X": v}, "var")),
    ("systemd_directives", lambda v: F["systemd_directives"]({"LimitNOFILE": v}, "var")),
    ("supervisor_value", lambda v: F["supervisor_value"](v, "var")),
    ("supervisor_environment", lambda v: F["supervisor_environment"]({"X": v}, "var")),
    ("upstart_quote", lambda v: F["upstart_quote"](v, "var")),
    ("upstart_environment", lambda v: F["upstart_environment"]({"X": v}, "var")),
    ("uwsgi_value", lambda v: F["uwsgi_value"](v, "var")),
    ("uwsgi_options", lambda v: F["uwsgi_options"]({"route": v}, "var")),
    ("nginx_quote", lambda v: F["nginx_quote"](v, "var")),
    ("nginx_arg", lambda v: F["nginx_arg"](v, "var")),
    ("nginx_words", lambda v: F["nginx_words"](v, "var")),
    ("nginx_server_names", lambda v: F["nginx_server_names"]([v], "var")),
    ("nginx_header_name", lambda v: F["nginx_header_name"](v, "var")),
    ("config_line", lambda v: F["config_line"](v, "var")),
    ("config_word", lambda v: F["config_word"](v, "var")),
]


@pytest.mark.parametrize("value", NEWLINES, ids=repr)
@pytest.mark.parametrize(("name", "write"), ONE_LINE, ids=[n for n, _ in ONE_LINE])
def test_every_filter_refuses_control_characters_naming_the_variable(name, write, value):
    with pytest.raises(ValueError, match=r"^var\b"):
        write(value)


@pytest.mark.parametrize(("name", "write"), ONE_LINE, ids=[n for n, _ in ONE_LINE])
def test_every_filter_writes_an_ordinary_value_as_it_is(name, write):
    out = write("X-App" if "header" in name else "www.example.com" if "server" in name else "2")
    assert out in ("2", '"2"', "X=2", '"X=2"', ["X=2"], ['"X=2"'], ['X="2"'], 'X="2"', ["LimitNOFILE=2"],
                   ["route = 2"], "www.example.com", "X-App"), (name, out)


# --------------------------------------------------------------------------- systemd

@pytest.mark.parametrize("value", LITERALS, ids=repr)
def test_systemd_environment_round_trips(value):
    [assignment] = F["systemd_environment"]({"NAME": value}, "wsgi_app_environment")
    assert systemd_unquote(assignment) == f"NAME={value}"


def test_systemd_environment_is_in_dictsort_order_and_refuses_bad_names():
    assert F["systemd_environment"]({"b": "1", "A": "2", "C": "3"}) == ['"A=2"', '"b=1"', '"C=3"']
    for bad in ("BAD NAME", "1X", "A-B", "A=B", "", "\u00e9T\u00e9", "X;Y"):
        with pytest.raises(ValueError, match=r"^wsgi_app_environment: .* is not an environment variable name"):
            F["systemd_environment"]({bad: "x"}, "wsgi_app_environment")


def test_systemd_environment_refuses_the_reported_injection():
    with pytest.raises(ValueError, match=r"^wsgi_app_environment\.X: .*U\+000A"):
        F["systemd_environment"]({"X": "a\nExecStartPre=/usr/bin/touch /tmp/pwned\nEnvironment=Y=z"},
                                 "wsgi_app_environment")


@pytest.mark.parametrize("value", [v for v in LITERALS if not v.endswith("\\")], ids=repr)
def test_systemd_value_doubles_percent_only(value):
    assert F["systemd_value"](value) == value.replace("%", "%%")


def test_systemd_value_refuses_a_trailing_backslash_that_joins_lines():
    for value in ("x\\", "\\"):
        with pytest.raises(ValueError, match=r"^wsgi_app_user: .*ends in a backslash"):
            F["systemd_value"](value, "wsgi_app_user")
    with pytest.raises(ValueError, match="ends in a backslash"):
        F["systemd_directives"]({"LimitNOFILE": "1\\"}, "systemd_service_extra_directives")


def test_systemd_words_and_directives():
    assert F["systemd_words"](["/srv/a/shared", "-/var/tmp"]) == "/srv/a/shared -/var/tmp"
    words = F["systemd_words"](["/srv/a b", 'q"', "50%"])
    assert words == '"/srv/a b" "q\\"" "50%%"'
    assert [systemd_unquote(w) for w in ('"/srv/a b"', '"q\\""', '"50%%"')] == ["/srv/a b", 'q"', "50%"]
    assert F["systemd_directives"]({"LimitNOFILE": 65536, "Nice": 5}) == ["LimitNOFILE=65536", "Nice=5"]
    for bad in ("limitnofile", "Limit NOFILE", "X=Y", "ExecStartPre\n"):
        with pytest.raises(ValueError, match=r"^systemd_service_extra_directives: "):
            F["systemd_directives"]({bad: "1"}, "systemd_service_extra_directives")


# --------------------------------------------------------------------------- nginx

@pytest.mark.parametrize("value", [v for v in LITERALS], ids=repr)
def test_nginx_quote_round_trips(value):
    assert nginx_unquote(F["nginx_quote"](value, "lb_security_headers")) == value


@pytest.mark.parametrize("value", ["$host", "a$b", "${x}", "$"], ids=repr)
def test_nginx_refuses_a_dollar_unless_variables_are_meant(value):
    for name in ("nginx_quote", "nginx_arg", "nginx_words"):
        with pytest.raises(ValueError, match=r"^lb_security_headers: .*'\$'"):
            F[name](value, "lb_security_headers")
    assert F["nginx_words"]("$remote_addr consistent", "lb_hash_key", variables=True) == "$remote_addr consistent"


def test_nginx_arg_is_bare_for_a_plain_word_and_quoted_otherwise():
    assert F["nginx_arg"]("/srv/hello/current/hello/static/") == "/srv/hello/current/hello/static/"
    assert F["nginx_arg"]("/srv/a b/;x") == '"/srv/a b/;x"'
    assert F["nginx_arg"]("/srv/{x}#") == '"/srv/{x}#"'
    assert F["nginx_arg"]("") == '""'


@pytest.mark.parametrize("value", [";", "{", "}", '"', "'", "\\", "#", "a; return 200 x"], ids=repr)
def test_nginx_words_refuses_syntax(value):
    with pytest.raises(ValueError, match=r"^lb_tls_ciphers: .*reads as syntax"):
        F["nginx_words"](value, "lb_tls_ciphers")


GOOD_NAMES = ["_", "localhost", "example.com", "www.example.com", "a-b.example", "xn--caf-dma.example",
              "*.example.com", ".example.com", "www.example.*", "192.0.2.1", "[2001:db8::1]", "wsgideploy-cluster-lb",
              "a" * 63 + ".com"]
BAD_NAMES = ["127.0.0.1; return 200 injected", "bad name", "a{b", "a}b", "$host", "~^(www\\.)?x\\.com$", "~x",
             "-x.com", "x-.com", "a..b", "caf\u00e9.example", "\u65e5\u672c.jp", "x_y.com", "", "*", "*.*.com",
             "2001:db8::1", "[192.0.2.1]", "a" * 64 + ".com", "x.com/", "x.com:80", "\"x\"", "#x", "x\\y", "50%"]


def test_nginx_server_names_accepts_host_names_wildcards_and_addresses():
    assert F["nginx_server_names"](GOOD_NAMES, "lb_server_names") == " ".join(GOOD_NAMES)
    assert F["nginx_server_names"]("example.com") == "example.com"


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_nginx_server_names_refuses_the_rest_naming_the_variable(name):
    with pytest.raises(ValueError, match=r"^lb_server_names: "):
        F["nginx_server_names"](["example.com", name], "lb_server_names")


def test_nginx_server_names_refuses_no_name():
    with pytest.raises(ValueError, match=r"^app_proxy_server_names: .*names no server"):
        F["nginx_server_names"]([], "app_proxy_server_names")


@pytest.mark.parametrize("name", ["X Y", "X:Y", "X;", "$x", "X{", "-X", "", "X\u00e9", "X\n"], ids=repr)
def test_nginx_header_names_are_tokens(name):
    assert F["nginx_header_name"]("Content-Security-Policy") == "Content-Security-Policy"
    with pytest.raises(ValueError, match=r"^lb_security_headers: "):
        F["nginx_header_name"](name, "lb_security_headers")


NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed on this machine")
def test_nginx_reads_back_what_the_filters_write(tmp_path):
    """nginx -t on a server written with the filters: every hostile literal is one string, and the
    map answers it unchanged (checked by the config test's own parse: one map entry each)."""
    values = [v for v in LITERALS if v]
    entries = "\n".join(f"        {F['nginx_quote'](f'k{i}')} {F['nginx_quote'](v)};" for i, v in enumerate(values))
    alias = F["nginx_arg"]("/srv/a b;{x}#/")
    header = F["nginx_header_name"]("X-Test") + " " + F["nginx_quote"]('say "hi" \\ 50% caf\u00e9')
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    map $uri $escaped {{
        default "";
{entries}
    }}
    server {{
        listen 127.0.0.1:1;
        server_name {F['nginx_server_names'](GOOD_NAMES)};
        location /static/ {{
            alias {alias};
            add_header {header} always;
        }}
    }}
}}
""", encoding="utf-8")
    result = subprocess.run([NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr + conf.read_text()
    # Injected directives would parse too: the test can fail only if quoting leaks. Show that it can.
    broken = conf.read_text().replace(F["nginx_quote"]("semi;colon"), '"semi";colon')
    conf.write_text(broken, encoding="utf-8")
    result = subprocess.run([NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode != 0


# --------------------------------------------------------------------------- supervisord, upstart

@pytest.mark.parametrize("value", [v for v in LITERALS], ids=repr)
def test_supervisor_values(value):
    out = F["supervisor_value"](value, "wsgi_app_user")
    assert out == value.replace("%", "%%")
    pair = F["supervisor_environment"]({"V": value}, "wsgi_app_environment")
    body = pair.removeprefix('V="').removesuffix('"')
    assert body.replace('\\"', '"').replace("\\\\", "\\").replace("%%", "%") == value


def test_supervisor_refuses_an_inline_comment_and_bad_names():
    for value in ("a ;b", " ;", "x ;"):
        with pytest.raises(ValueError, match=r"^supervisord_service_log_dir: .*starts a comment"):
            F["supervisor_value"](value, "supervisord_service_log_dir")
    with pytest.raises(ValueError, match=r"^wsgi_app_environment: 'BAD NAME' is not an environment variable name"):
        F["supervisor_environment"]({"BAD NAME": "x"}, "wsgi_app_environment")


def test_upstart_names_the_variable():
    with pytest.raises(ValueError, match=r"^wsgi_app_environment\.X: "):
        F["upstart_environment"]({"X": "a\nexec /bin/sh"}, "wsgi_app_environment")
    with pytest.raises(ValueError, match=r"^wsgi_app_environment: "):
        F["upstart_environment"]({"A-B": "x"}, "wsgi_app_environment")


# --------------------------------------------------------------------------- uWSGI

@pytest.mark.parametrize("value", LITERALS, ids=repr)
def test_uwsgi_value_round_trips(value):
    assert uwsgi_magic(F["uwsgi_value"](value, "wsgi_app_current")) == value


@pytest.mark.parametrize("value", ["%(chdir)", "$(HOME)", "@(/etc/shadow)", "@(exec://id)", "x%%(y)", "a$(b"], ids=repr)
def test_uwsgi_value_refuses_what_uwsgi_expands(value):
    with pytest.raises(ValueError, match=r"^wsgi_app_callable: .*uWSGI expands"):
        F["uwsgi_value"](value, "wsgi_app_callable")


def test_uwsgi_options():
    assert F["uwsgi_options"]({"route": ["^/a$ log:x", "^/b$ log:y"], "harakiri-verbose": True, "logto": "/l/%n.log"}) == [
        "harakiri-verbose = True", "logto = /l/%n.log", "route = ^/a$ log:x", "route = ^/b$ log:y"]
    for bad in ("Route", "a b", "x=y", "[uwsgi]", ""):
        with pytest.raises(ValueError, match=r"^uwsgi_extra_options: .*option name"):
            F["uwsgi_options"]({bad: "1"}, "uwsgi_extra_options")
    with pytest.raises(ValueError, match=r"^uwsgi_extra_options\.route: "):
        F["uwsgi_options"]({"route": ["ok", "a\n[uwsgi]\nexec-asap = id"]}, "uwsgi_extra_options")


# --------------------------------------------------------------------------- Python (settings, Gunicorn)

@pytest.mark.parametrize("value", LITERALS + ["a\nb", "a\rb", "a\0b", "\u2028"], ids=repr)
def test_python_literal_round_trips(value):
    assert ast.literal_eval(F["python_literal"](value)) == value


@pytest.mark.parametrize("name", ["SECRET", "limit_request_line", "_x", "X1"])
def test_python_identifier_accepts_names(name):
    assert F["python_identifier"](name, "app_settings") == name


@pytest.mark.parametrize("name", ["BAD NAME", "1X", "x-y", "x=1\nimport os", "import", "None", "", "caf\u00e9", "a.b"],
                         ids=repr)
def test_python_identifier_refuses_the_rest(name):
    with pytest.raises(ValueError, match=r"^gunicorn_extra_settings: "):
        F["python_identifier"](name, "gunicorn_extra_settings")


# --------------------------------------------------------------------------- plain words and lines

@pytest.mark.parametrize("value", ["a b", "a;b", "{", "}", "$x", "%", "#", '"', "'", "\\", "", "\u00e9"], ids=repr)
def test_config_word_refuses_everything_but_a_plain_word(value):
    with pytest.raises(ValueError, match=r"^nginx_log_files: "):
        F["config_word"](value, "nginx_log_files")


def test_config_word_and_line_accept_ordinary_values():
    assert F["config_word"]("/var/log/nginx") == "/var/log/nginx"
    assert F["config_word"]("2001:db8::/32") == "2001:db8::/32"
    assert F["config_line"]("tcp dport { 9100 } ip saddr 10.0.0.5 accept") == "tcp dport { 9100 } ip saddr 10.0.0.5 accept"


@pytest.mark.parametrize("value", LITERALS, ids=repr)
def test_nginx_single_quoted_strings_round_trip(value):
    """log_format's string: single quotes, variables meant."""
    word = F["nginx_quote"](value + " $status", "nginx_log_format", variables=True, quote="'")
    assert word[0] == word[-1] == "'"
    body, out, i = word[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != "'", word
            out.append(body[i])
            i += 1
    assert "".join(out) == value + " $status"
