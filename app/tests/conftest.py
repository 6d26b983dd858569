from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import hello

TEST_KEY = "test-secret-key"


@pytest.fixture(autouse=True)
def release_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Isolate every test: no HELLO_* or APP_INSTANCE from the caller's environment, and
    an empty release root (no REVISION file) instead of the source tree."""
    for name in list(os.environ):
        if name.startswith("HELLO_") or name == "APP_INSTANCE":
            monkeypatch.delenv(name)
    root = tmp_path / "release"
    root.mkdir()
    monkeypatch.setattr(hello, "release_root", lambda: str(root))
    return root


@pytest.fixture
def app() -> Flask:
    return hello.create_app({"SECRET_KEY": TEST_KEY, "TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
