from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from flask import Flask

import hello

TEST_KEY = "test-secret-key"


@pytest.fixture
def app_with_db(tmp_path: Path) -> Flask:
    return hello.create_app(
        {"SECRET_KEY": TEST_KEY, "TESTING": True, "DATABASE": str(tmp_path / "instance" / "hello.sqlite")}
    )


def test_visits_fail_until_init_db_ran(app_with_db: Flask) -> None:
    client = app_with_db.test_client()
    with pytest.raises(RuntimeError, match="init-db"):
        client.post("/visits")


def test_init_db_command_creates_the_database_and_keeps_the_count(app_with_db: Flask, tmp_path: Path) -> None:
    runner = app_with_db.test_cli_runner()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "instance" / "hello.sqlite") in result.output

    client = app_with_db.test_client()
    assert [client.post("/visits").get_json()["visits"] for _ in range(3)] == [1, 2, 3]

    # A second init-db (the next deploy's hook) keeps the data.
    assert runner.invoke(args=["init-db"]).exit_code == 0
    assert client.post("/visits").get_json()["visits"] == 4
    assert client.get("/visits").status_code == 405


def test_database_defaults_to_the_instance_folder(tmp_path: Path) -> None:
    app = hello.create_app({"SECRET_KEY": TEST_KEY, "TESTING": True})
    app.instance_path = str(tmp_path / "inst")
    with app.app_context():
        path = hello.db.init_db()
    assert path == str(tmp_path / "inst" / "hello.sqlite")
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count FROM visits WHERE name = 'total'").fetchone() == (0,)
