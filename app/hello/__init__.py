"""hello: the example WSGI application deployed by this project.

Servers load it with ``hello:create_app()`` (or ``wsgi:application``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from hello import db, default_settings, views

# Settings taken verbatim from HELLO_* environment variables: Flask would otherwise parse
# them as JSON and turn, say, HELLO_RELEASE_ID=20240101 or a numeric key into an int.
STRING_SETTINGS = (
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "RELEASE_ID",
    "INSTANCE_NAME",
    "GREETING",
)

PROXY_FIX_SETTINGS = {
    "x_for": "PROXY_FIX_X_FOR",
    "x_proto": "PROXY_FIX_X_PROTO",
    "x_host": "PROXY_FIX_X_HOST",
    "x_prefix": "PROXY_FIX_X_PREFIX",
}

MISSING_SECRET_KEY = (
    "hello: SECRET_KEY is not set; set SECRET_KEY or SECRET_KEY_FILE in the file named by "
    "HELLO_SETTINGS, or the HELLO_SECRET_KEY environment variable"
)


def release_root() -> str:
    """The release directory: the parent of the ``hello`` package directory.

    The deploy tooling writes ``<release dir>/REVISION`` there.
    """
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application; raise RuntimeError if its settings are unusable."""
    app = Flask(__name__)
    load_settings(app, test_config)
    app.config["SECRET_KEY"] = resolve_secret_key(app.config)
    app.config["RELEASE_ID"] = resolve_release_id(app.config)
    app.config["INSTANCE_NAME"] = resolve_instance_name(app.config)

    hops = {
        arg: hop_count(app.config, name) for arg, name in PROXY_FIX_SETTINGS.items()
    }
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)  # type: ignore[method-assign]

    db.init_app(app)
    app.register_blueprint(views.bp)
    return app


def load_settings(app: Flask, test_config: Mapping[str, Any] | None) -> None:
    """Defaults, then the HELLO_SETTINGS file, then HELLO_* variables, then ``test_config``."""
    app.config.from_object(default_settings)

    settings_file = os.environ.get("HELLO_SETTINGS")
    if not app.config.from_envvar("HELLO_SETTINGS", silent=True) and settings_file:
        raise RuntimeError(
            f"hello: cannot read settings file {settings_file!r} named by HELLO_SETTINGS"
        )

    app.config.from_prefixed_env("HELLO")
    for name in STRING_SETTINGS:
        raw = os.environ.get(f"HELLO_{name}")
        if raw is not None:
            app.config[name] = raw

    if test_config is not None:
        app.config.from_mapping(test_config)


def resolve_secret_key(config: Mapping[str, Any]) -> str | bytes:
    """SECRET_KEY, or the stripped contents of SECRET_KEY_FILE. Never put the key in a message."""
    key: str | bytes | None = config.get("SECRET_KEY")
    if key:
        return key

    key_file = config.get("SECRET_KEY_FILE")
    if not key_file:
        raise RuntimeError(MISSING_SECRET_KEY)
    try:
        with open(key_file, encoding="utf-8") as handle:
            key = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise RuntimeError(
            f"hello: cannot read SECRET_KEY_FILE {key_file!r}: {reason}"
        ) from None
    if not key:
        raise RuntimeError(f"hello: SECRET_KEY_FILE {key_file!r} is empty")
    return key


def resolve_release_id(config: Mapping[str, Any]) -> str:
    """RELEASE_ID, else the contents of <release root>/REVISION, else "dev"."""
    release = config.get("RELEASE_ID")
    if release:
        return str(release)
    try:
        with open(os.path.join(release_root(), "REVISION"), encoding="utf-8") as handle:
            release = handle.read().strip()
    except FileNotFoundError:
        return "dev"
    return release or "dev"


def resolve_instance_name(config: Mapping[str, Any]) -> str | None:
    """INSTANCE_NAME, else the APP_INSTANCE environment variable, else None."""
    instance = config.get("INSTANCE_NAME") or os.environ.get("APP_INSTANCE")
    return str(instance) if instance else None


def hop_count(config: Mapping[str, Any], name: str) -> int:
    """A PROXY_FIX_* setting as a non-negative int (digit strings accepted)."""
    value = config.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuntimeError(f"hello: {name} must be a whole number >= 0, got {value!r}")
    return value
