"""nginx keeps idle connections to the instances only when they keep them too, and drops them first.

uWSGI's http-socket closes every connection after its answer. nginx reusing such a connection
fails the request ("upstream prematurely closed connection") and, with max_fails, takes the
instance out; under load every instance goes and the answers are 502s. The cluster scenario's
closed-loop test shows that from outside; these tests pin down the rendered configuration: the
role defaults' expressions and the templates, for the app host's nginx and the lb's process
topology.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml
from scriptload import collection_filters

ROOT = Path(__file__).resolve().parents[1]


def env() -> jinja2.Environment:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["regex_replace"] = lambda value, pattern, repl="": re.sub(pattern, repl, value)
    environment.filters.update(collection_filters())
    return environment


def default(role: str, name: str, **context) -> str:
    """A role default's expression (roles/<role>/defaults/main.yml), rendered with `context`."""
    text = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[name]
    return env().from_string(str(text)).render(**context).strip()


def app_definition(server: str, protocol: str) -> dict:
    keepalive = int(default("wsgi_app", "wsgi_app_keepalive", wsgi_app_server=server))
    return {"wsgi_app_server": server, "wsgi_app_protocol": protocol, "wsgi_app_keepalive": keepalive}


def upstream_block(text: str, name: str) -> str:
    match = re.search(r"^upstream " + re.escape(name) + r" \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert match, text
    return match.group(1)


def render_site(app: dict) -> str:
    values = dict(app, app_proxy_backend_protocol=app["wsgi_app_protocol"])
    values["app_proxy_keepalive"] = default("app_proxy", "app_proxy_keepalive", **values)
    values["app_proxy_keepalive_timeout_ms"] = default("app_proxy", "app_proxy_keepalive_timeout_ms", **values)
    values.update(
        ansible_managed="managed", app_proxy_site_name="hello", app_proxy_backends=["127.0.0.1:8000", "127.0.0.1:8001"],
        app_proxy_max_fails=1, app_proxy_fail_timeout="5s", app_proxy_listen=["80 default_server"],
        app_proxy_server_names=["_"], app_proxy_static_root="", app_proxy_static_url="/static/",
        app_proxy_static_expires="1h", app_proxy_url_prefix="", app_proxy_next_upstream="error timeout",
        app_proxy_next_upstream_tries=0, app_proxy_read_timeout=60, app_proxy_connect_timeout=5,
        app_proxy_hidden_headers=[], app_proxy_server_extra="",
    )
    text = (ROOT / "roles" / "app_proxy" / "templates" / "site.conf.j2").read_text()
    return env().from_string(text).render(**values)


@pytest.mark.parametrize(
    ("server", "protocol", "keepalive", "timeout"),
    [
        pytest.param("uwsgi", "http", None, None, id="uwsgi-http-socket"),
        pytest.param("uwsgi", "uwsgi", None, None, id="uwsgi-protocol"),
        pytest.param("gunicorn", "http", "16", "2500ms", id="gunicorn"),
    ],
)
def test_app_host_nginx_reuses_connections_only_to_servers_that_keep_them(server, protocol, keepalive, timeout):
    block = upstream_block(render_site(app_definition(server, protocol)), "hello_app")
    assert re.findall(r"^\s*keepalive (\S+);", block, re.MULTILINE) == ([keepalive] if keepalive else []), block
    assert re.findall(r"^\s*keepalive_timeout (\S+);", block, re.MULTILINE) == ([timeout] if timeout else []), block
    assert block.count("server 127.0.0.1:") == 2, block


def test_nginx_drops_an_idle_connection_before_the_server_does():
    for seconds in (1, 2, 5, 75):
        app = {"wsgi_app_server": "gunicorn", "wsgi_app_protocol": "http", "wsgi_app_keepalive": seconds}
        block = upstream_block(render_site(app), "hello_app")
        ms = int(re.search(r"keepalive_timeout (\d+)ms;", block).group(1))
        assert 0 < ms < seconds * 1000, block


def lb_keepalive_lines(app: dict, topology: str) -> list[str]:
    """The keepalive lines of the lb's app upstream, for the process or host topology."""
    values = dict(app, lb_process_protocol=app["wsgi_app_protocol"], lb_topology=topology, lb_keepalive=32)
    values["lb_process_keepalive"] = default("lb", "lb_process_keepalive", **values)
    values["lb_process_keepalive_timeout_ms"] = default("lb", "lb_process_keepalive_timeout_ms", **values)
    text = (ROOT / "roles" / "lb" / "templates" / "lb.conf.j2").read_text()
    start = text.index("upstream {{ app_upstream }} {")
    block = text[start : text.index("}\n", text.index("{% endif %}", start)) + 2]
    rendered = env().from_string(
        "{% set via_uwsgi = lb_topology == 'process' and lb_process_protocol == 'uwsgi' %}"
        "{% macro balancing() %}{% endmacro %}" + block.replace("{{ app_upstream }}", "app")
        .replace("{{ lb_backends_dir }}", "/etc/nginx/backends")
    ).render(**values)
    return [line.strip() for line in rendered.splitlines() if line.strip().startswith("keepalive")]


def test_lb_process_topology_keeps_no_idle_connection_to_uwsgi_http_sockets():
    assert lb_keepalive_lines(app_definition("uwsgi", "http"), "process") == []
    assert lb_keepalive_lines(app_definition("uwsgi", "uwsgi"), "process") == []
    assert lb_keepalive_lines(app_definition("gunicorn", "http"), "process") == ["keepalive 32;", "keepalive_timeout 2500ms;"]
    # The host topology reaches the app hosts' nginx, which keeps connections (keepalive_timeout
    # 65 s against nginx's upstream default of 60 s): whatever the app server.
    assert lb_keepalive_lines(app_definition("uwsgi", "http"), "host") == ["keepalive 32;"]
