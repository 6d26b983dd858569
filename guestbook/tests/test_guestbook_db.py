from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from guestbook.db import get_db


def rows(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT name, message FROM entry ORDER BY id").fetchall()


def test_get_db_is_per_request_and_closed(app: Flask) -> None:
    with app.app_context():
        db = get_db()
        assert get_db() is db
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        db.execute("SELECT 1")


def test_init_db_command(runner: FlaskCliRunner, database: Path) -> None:
    database.unlink()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "Initialized the database." in result.output
    assert rows(database) == []


def test_init_db_is_idempotent_and_keeps_rows(runner: FlaskCliRunner, database: Path) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO entry (name, message) VALUES ('Ada', 'first')")
    conn.close()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "Initialized the database." in result.output
    assert rows(database) == [("Ada", "first")]
