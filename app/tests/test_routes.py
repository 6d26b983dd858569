from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hello import create_app

HOST = "web-test-01"


@pytest.fixture(autouse=True)
def fixed_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: HOST)


def span(html: str, span_id: str) -> str | None:
    match = re.search(rf'<span id="{span_id}">([^<]*)</span>', html)
    return match.group(1) if match else None


def test_index_page(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "<title>Hello from a WSGI fleet</title>" in html
    assert '<link rel="stylesheet" href="/static/style.css">' in html
    assert span(html, "host") == HOST
    assert span(html, "release") == "dev"
    assert span(html, "instance") is None
    assert span(html, "remote-addr") == "127.0.0.1"
    assert span(html, "scheme") == "http"


def test_index_shows_release_from_revision_file(release_dir: Path) -> None:
    (release_dir / "REVISION").write_text("abc1234\n", encoding="utf-8")
    client = create_app({"SECRET_KEY": "k"}).test_client()
    html = client.get("/").get_data(as_text=True)
    assert span(html, "release") == "abc1234"


def test_index_shows_release_setting_instance_and_greeting() -> None:
    app = create_app(
        {
            "SECRET_KEY": "k",
            "RELEASE_ID": "r42",
            "INSTANCE_NAME": "hello-1",
            "GREETING": "Hi <there>",
        }
    )
    html = app.test_client().get("/").get_data(as_text=True)
    assert span(html, "release") == "r42"
    assert span(html, "instance") == "hello-1"
    assert "<h1>Hi &lt;there&gt;</h1>" in html  # escaped


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "status": "ok",
        "release": "dev",
        "host": HOST,
        "instance": None,
    }


def test_healthz_reports_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_INSTANCE", "hello-0")
    app = create_app({"SECRET_KEY": "k", "RELEASE_ID": "r1"})
    body = app.test_client().get("/healthz").get_json()
    assert body["instance"] == "hello-0"
    assert body["release"] == "r1"


def test_whoami(client: FlaskClient) -> None:
    response = client.get("/whoami", base_url="http://app.example:8080")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "remote_addr": "127.0.0.1",
        "scheme": "http",
        "host": "app.example:8080",
        "x_forwarded_for": None,
    }


@pytest.mark.parametrize(
    "path", ["/", "/healthz", "/whoami", "/static/style.css", "/no-such-page"]
)
def test_identity_headers_on_every_response(path: str) -> None:
    app = create_app(
        {"SECRET_KEY": "k", "RELEASE_ID": "r7", "INSTANCE_NAME": "hello-2"}
    )
    response = app.test_client().get(path)
    assert response.headers["X-App-Host"] == HOST
    assert response.headers["X-App-Release"] == "r7"
    assert response.headers["X-App-Instance"] == "hello-2"


def test_no_instance_header_without_instance(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.headers["X-App-Release"] == "dev"
    assert "X-App-Instance" not in response.headers


def test_stylesheet_is_served(client: FlaskClient) -> None:
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    assert "body" in response.get_data(as_text=True)
    response.close()


def test_unknown_page_is_404(client: FlaskClient) -> None:
    assert client.get("/no-such-page").status_code == 404


def test_secret_key_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-value-that-must-stay-hidden"
    caplog.set_level(logging.DEBUG)
    app: Flask = create_app({"SECRET_KEY": secret})
    client = app.test_client()
    for path in ("/", "/healthz", "/whoami", "/no-such-page"):
        response = client.get(path)
        assert secret not in response.get_data(as_text=True)
        assert all(secret not in value for value in response.headers.values())
    assert secret not in caplog.text
