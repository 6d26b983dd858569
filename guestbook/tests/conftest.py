"""Fixtures of the guestbook tests: an app on a fresh database in a temporary instance folder."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

# The project directory (the one holding pyproject.toml) on sys.path, so that `import guestbook`
# finds the package without installing it.
PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from guestbook import create_app  # noqa: E402
from guestbook.db import init_db  # noqa: E402

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def instance_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The instance folder of every app the test creates: a temporary directory, never the source tree."""
    path = tmp_path / "instance"
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(path))
    return path


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "test.sqlite"


@pytest.fixture
def app(instance_path: Path, database: Path) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "DATABASE": str(database), "SECRET_KEY": "test"})
    with app.app_context():
        init_db()
    yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def token(client: FlaskClient) -> str:
    """The form's token, from the index page (which also puts it in the client's session)."""
    response = client.get("/")
    assert response.status_code == 200
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, "no csrf_token field on the index page"
    return match.group(1)
