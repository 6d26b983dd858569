from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

import hello
from hello import create_app, default_settings, release_root


def write_settings(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_refuses_to_start_without_secret_key() -> None:
    with pytest.raises(RuntimeError) as excinfo:
        create_app()
    message = str(excinfo.value)
    assert "SECRET_KEY is not set" in message
    for where in ("SECRET_KEY_FILE", "HELLO_SETTINGS", "HELLO_SECRET_KEY"):
        assert where in message


@pytest.mark.parametrize("empty", ["", None])
def test_empty_secret_key_counts_as_missing(empty: str | None) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app({"SECRET_KEY": empty})


def test_starts_with_secret_key_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELLO_SECRET_KEY", "from-env")
    assert create_app().secret_key == "from-env"


def test_numeric_secret_key_from_environment_stays_a_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # from_prefixed_env alone would parse this as JSON and give the int 12345.
    monkeypatch.setenv("HELLO_SECRET_KEY", "12345")
    monkeypatch.setenv("HELLO_RELEASE_ID", "20240101")
    app = create_app()
    assert app.secret_key == "12345"
    assert app.config["RELEASE_ID"] == "20240101"


def test_secret_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("  key-from-file\n", encoding="utf-8")
    app = create_app({"SECRET_KEY_FILE": str(key_file)})
    assert app.secret_key == "key-from-file"


def test_secret_key_wins_over_secret_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("key-from-file\n", encoding="utf-8")
    app = create_app({"SECRET_KEY": "direct", "SECRET_KEY_FILE": str(key_file)})
    assert app.secret_key == "direct"


def test_missing_secret_key_file_is_named(tmp_path: Path) -> None:
    key_file = tmp_path / "nope" / "secret_key"
    with pytest.raises(RuntimeError) as excinfo:
        create_app({"SECRET_KEY_FILE": str(key_file)})
    assert str(key_file) in str(excinfo.value)
    assert "SECRET_KEY_FILE" in str(excinfo.value)


def test_unreadable_secret_key_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("do-not-print-me\n", encoding="utf-8")

    def denied(path: str, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    # A mode-0 file is still readable by root, so simulate the permission error instead.
    monkeypatch.setattr(hello, "open", denied, raising=False)
    with pytest.raises(RuntimeError) as excinfo:
        create_app({"SECRET_KEY_FILE": str(key_file)})
    message = str(excinfo.value)
    assert str(key_file) in message
    assert "Permission denied" in message
    assert "do-not-print-me" not in message


def test_directory_as_secret_key_file_is_named(tmp_path: Path) -> None:
    # Unreadable even for root, so this case runs everywhere.
    with pytest.raises(RuntimeError) as excinfo:
        create_app({"SECRET_KEY_FILE": str(tmp_path)})
    assert str(tmp_path) in str(excinfo.value)


def test_non_text_secret_key_file_is_named_without_its_content(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_bytes(b"\xff\xfe-binary-secret")
    with pytest.raises(RuntimeError) as excinfo:
        create_app({"SECRET_KEY_FILE": str(key_file)})
    assert str(key_file) in str(excinfo.value)
    assert "binary-secret" not in str(excinfo.value)


def test_blank_secret_key_file_refuses_to_start(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text(" \n\t\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="is empty") as excinfo:
        create_app({"SECRET_KEY_FILE": str(key_file)})
    assert str(key_file) in str(excinfo.value)


def test_settings_file_named_by_hello_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("key-from-file\n", encoding="utf-8")
    settings = write_settings(
        tmp_path / "settings.py",
        f"SECRET_KEY_FILE = {str(key_file)!r}\n"
        'GREETING = "Hello from the settings file"\n'
        'INSTANCE_NAME = "from-file"\n'
        "PROXY_FIX_X_FOR = 1\n"
        'lowercase_is_ignored = "yes"\n',
    )
    monkeypatch.setenv("HELLO_SETTINGS", str(settings))
    app = create_app()
    assert app.secret_key == "key-from-file"
    assert app.config["GREETING"] == "Hello from the settings file"
    assert app.config["INSTANCE_NAME"] == "from-file"
    assert app.config["PROXY_FIX_X_FOR"] == 1
    assert "lowercase_is_ignored" not in app.config


def test_precedence_defaults_then_file_then_env_then_test_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = write_settings(
        tmp_path / "settings.py",
        'SECRET_KEY = "file-key"\n'
        'GREETING = "file greeting"\n'
        'RELEASE_ID = "file-release"\n'
        'INSTANCE_NAME = "file-instance"\n'
        "PROXY_FIX_X_HOST = 2\n",
    )
    monkeypatch.setenv("HELLO_SETTINGS", str(settings))
    monkeypatch.setenv("HELLO_PROXY_FIX_X_HOST", "1")
    monkeypatch.setenv("HELLO_GREETING", "env greeting")
    monkeypatch.setenv("HELLO_RELEASE_ID", "env-release")

    app = create_app({"RELEASE_ID": "test-release"})

    assert app.secret_key == "file-key"  # file beats defaults
    assert app.config["INSTANCE_NAME"] == "file-instance"
    assert app.config["GREETING"] == "env greeting"  # env beats file
    assert app.config["PROXY_FIX_X_HOST"] == 1
    assert app.config["RELEASE_ID"] == "test-release"  # test_config beats env
    assert app.config["PROXY_FIX_X_PREFIX"] == 0  # default, set nowhere else


def test_env_values_are_parsed_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELLO_SECRET_KEY", "k")
    monkeypatch.setenv("HELLO_PROXY_FIX_X_PROTO", "1")
    assert create_app().config["PROXY_FIX_X_PROTO"] == 1


def test_missing_settings_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.py"
    monkeypatch.setenv("HELLO_SETTINGS", str(missing))
    monkeypatch.setenv("HELLO_SECRET_KEY", "k")
    with pytest.raises(RuntimeError) as excinfo:
        create_app()
    assert str(missing) in str(excinfo.value)
    assert "HELLO_SETTINGS" in str(excinfo.value)


def test_empty_hello_settings_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELLO_SETTINGS", "")
    monkeypatch.setenv("HELLO_SECRET_KEY", "k")
    assert create_app().config["GREETING"] == default_settings.GREETING


@pytest.mark.parametrize("bad", [-1, "many", 1.5, True])
def test_invalid_proxy_fix_count_refuses_to_start(bad: object) -> None:
    with pytest.raises(RuntimeError, match="PROXY_FIX_X_FOR"):
        create_app({"SECRET_KEY": "k", "PROXY_FIX_X_FOR": bad})


def test_release_id_defaults_to_dev() -> None:
    assert create_app({"SECRET_KEY": "k"}).config["RELEASE_ID"] == "dev"


def test_release_id_read_from_revision_file(release_dir: Path) -> None:
    (release_dir / "REVISION").write_text("20240501T120000-abc1234\n", encoding="utf-8")
    assert (
        create_app({"SECRET_KEY": "k"}).config["RELEASE_ID"]
        == "20240501T120000-abc1234"
    )


def test_empty_revision_file_means_dev(release_dir: Path) -> None:
    (release_dir / "REVISION").write_text("\n", encoding="utf-8")
    assert create_app({"SECRET_KEY": "k"}).config["RELEASE_ID"] == "dev"


def test_release_id_setting_wins_over_revision_file(release_dir: Path) -> None:
    (release_dir / "REVISION").write_text("from-file\n", encoding="utf-8")
    app = create_app({"SECRET_KEY": "k", "RELEASE_ID": "from-setting"})
    assert app.config["RELEASE_ID"] == "from-setting"


def test_release_root_is_parent_of_package_directory() -> None:
    # `release_root` was imported before the autouse fixture replaced hello.release_root.
    package_dir = os.path.dirname(os.path.abspath(hello.__file__))
    assert release_root() == os.path.dirname(package_dir)


def test_instance_name_from_app_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_INSTANCE", "hello-0")
    assert create_app({"SECRET_KEY": "k"}).config["INSTANCE_NAME"] == "hello-0"


def test_instance_name_setting_wins_over_app_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_INSTANCE", "hello-0")
    app = create_app({"SECRET_KEY": "k", "INSTANCE_NAME": "custom"})
    assert app.config["INSTANCE_NAME"] == "custom"


def test_instance_name_defaults_to_none() -> None:
    assert create_app({"SECRET_KEY": "k"}).config["INSTANCE_NAME"] is None
