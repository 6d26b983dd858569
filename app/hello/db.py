"""A visit counter kept in SQLite in the app's instance folder.

The database is created by the ``init-db`` command (``flask --app 'hello:create_app()' init-db``),
which a deploy runs as a hook; the app itself never creates it, so a missing database is an
error that names the command instead of an empty counter.
"""

from __future__ import annotations

import os
import sqlite3

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext

SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    name TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
INSERT OR IGNORE INTO visits (name, count) VALUES ('total', 0);
"""


def database_path() -> str:
    """DATABASE, else hello.sqlite in the instance folder."""
    return current_app.config.get("DATABASE") or os.path.join(current_app.instance_path, "hello.sqlite")


def connect() -> sqlite3.Connection:
    """The request's connection; RuntimeError if the database was never initialised."""
    if "db" not in g:
        path = database_path()
        if not os.path.exists(path):
            raise RuntimeError(f"hello: database {path} does not exist; run `flask init-db`")
        g.db = sqlite3.connect(path, timeout=10)
    return g.db


def close(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def count_visit() -> int:
    """Add one to the counter and return the new total."""
    db = connect()
    with db:
        db.execute("UPDATE visits SET count = count + 1 WHERE name = 'total'")
    return int(db.execute("SELECT count FROM visits WHERE name = 'total'").fetchone()[0])


def init_db() -> str:
    """Create the database (idempotent: an existing counter is kept); its path."""
    path = database_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with sqlite3.connect(path, timeout=10) as db:
        db.executescript(SCHEMA)
    return path


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the visit counter database if it does not exist."""
    click.echo(f"database ready: {init_db()}")


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close)
    app.cli.add_command(init_db_command)
