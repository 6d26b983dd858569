from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.middleware.proxy_fix import ProxyFix

from hello import create_app

PEER = "10.0.0.5"  # the address the app server sees: the reverse proxy
FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
TWO_HOPS = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}


def client_for(**settings: Any) -> FlaskClient:
    return create_app({"SECRET_KEY": "k", **settings}).test_client()


def whoami(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(
        "/whoami", headers=headers, environ_base={"REMOTE_ADDR": PEER}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def test_forwarded_headers_ignored_by_default() -> None:
    client = client_for()
    assert not isinstance(client.application.wsgi_app, ProxyFix)
    body = whoami(client, FORWARDED)
    assert body["remote_addr"] == PEER
    assert body["scheme"] == "http"
    assert body["x_forwarded_for"] == "203.0.113.7"  # seen, not trusted


def test_one_trusted_hop() -> None:
    body = whoami(client_for(PROXY_FIX_X_FOR=1, PROXY_FIX_X_PROTO=1), FORWARDED)
    assert body["remote_addr"] == "203.0.113.7"
    assert body["scheme"] == "https"


def test_only_the_trusted_hops_are_believed() -> None:
    # A client can send its own X-Forwarded-For; the proxy appends the real peer on the right.
    body = whoami(client_for(PROXY_FIX_X_FOR=1), TWO_HOPS)
    assert body["remote_addr"] == "203.0.113.7"
    assert body["x_forwarded_for"] == "198.51.100.1, 203.0.113.7"


def test_two_trusted_hops() -> None:
    body = whoami(client_for(PROXY_FIX_X_FOR=2), TWO_HOPS)
    assert body["remote_addr"] == "198.51.100.1"


def test_proto_not_trusted_unless_configured() -> None:
    body = whoami(client_for(PROXY_FIX_X_FOR=1), FORWARDED)
    assert body["remote_addr"] == "203.0.113.7"
    assert body["scheme"] == "http"


def test_forwarded_host() -> None:
    body = whoami(
        client_for(PROXY_FIX_X_HOST=1), {"X-Forwarded-Host": "www.example.org"}
    )
    assert body["host"] == "www.example.org"


def test_forwarded_prefix_applies_to_links() -> None:
    client = client_for(PROXY_FIX_X_PREFIX=1)
    html = client.get("/", headers={"X-Forwarded-Prefix": "/hello"}).get_data(
        as_text=True
    )
    assert 'href="/hello/static/style.css"' in html


def test_hop_counts_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELLO_PROXY_FIX_X_FOR", "1")
    monkeypatch.setenv("HELLO_PROXY_FIX_X_PROTO", "1")
    client = client_for()
    middleware = client.application.wsgi_app
    assert isinstance(middleware, ProxyFix)
    hops = (
        middleware.x_for,
        middleware.x_proto,
        middleware.x_host,
        middleware.x_prefix,
    )
    assert hops == (1, 1, 0, 0)
    body = whoami(client, FORWARDED)
    assert (body["remote_addr"], body["scheme"]) == ("203.0.113.7", "https")
