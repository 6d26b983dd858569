"""guestbook: a tiny Flask guestbook where visitors leave a name and a message."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from guestbook import db, views


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create and configure the app (``flask --app guestbook run``)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY="dev",
        DATABASE=os.path.join(app.instance_path, "guestbook.sqlite"),
    )

    if test_config is None:
        # instance/config.py, when it exists, overrides the defaults (SECRET_KEY, DATABASE)
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)

    try:
        os.makedirs(app.instance_path, exist_ok=True)
    except OSError:
        pass

    db.init_app(app)
    app.register_blueprint(views.bp)
    return app
