from __future__ import annotations

import os
from pathlib import Path

from guestbook import create_app


def test_test_config_is_used(app) -> None:
    assert app.testing
    assert app.config["SECRET_KEY"] == "test"


def test_defaults_without_config(instance_path: Path) -> None:
    app = create_app()
    assert not app.testing
    assert app.instance_path == str(instance_path)
    assert instance_path.is_dir()  # created by the factory
    assert app.config["SECRET_KEY"] == "dev"
    assert app.config["DATABASE"] == os.path.join(str(instance_path), "guestbook.sqlite")


def test_instance_config_py_is_read(instance_path: Path, tmp_path: Path) -> None:
    instance_path.mkdir()
    db_path = tmp_path / "elsewhere.sqlite"
    (instance_path / "config.py").write_text(
        f'SECRET_KEY = "from-instance-config"\nDATABASE = {str(db_path)!r}\n', encoding="utf-8"
    )
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-instance-config"
    assert app.config["DATABASE"] == str(db_path)


def test_instance_config_py_is_ignored_with_test_config(instance_path: Path) -> None:
    instance_path.mkdir()
    (instance_path / "config.py").write_text('SECRET_KEY = "from-instance-config"\n', encoding="utf-8")
    app = create_app({"SECRET_KEY": "given"})
    assert app.config["SECRET_KEY"] == "given"
