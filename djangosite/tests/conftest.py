"""Fixtures of the notes site's tests: Django set up once, on a fresh SQLite database in a
temporary directory, with its settings from the environment as in production."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The project directory (the one holding manage.py) on sys.path, as manage.py has it.
PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


@pytest.fixture(scope="session")
def django_db(tmp_path_factory):
    """Django configured from the environment and migrated; the database file's path."""
    tmp = tmp_path_factory.mktemp("notes")
    key = tmp / "secret_key"
    key.write_text("a-test-secret-key-of-some-length-0123456789\n")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_SECRET_KEY_FILE": str(key),
        "DJANGO_DATABASE_PATH": str(tmp / "db.sqlite3"),
        "DJANGO_STATIC_ROOT": str(tmp / "staticfiles"),
        "DJANGO_ALLOWED_HOSTS": "testserver,notes.example",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://notes.example",
    })
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return tmp / "db.sqlite3"


@pytest.fixture
def client(django_db):
    """A test client that enforces CSRF checks, as a browser meets them."""
    from django.test import Client

    from notes.models import Note

    Note.objects.all().delete()
    return Client(enforce_csrf_checks=True)
