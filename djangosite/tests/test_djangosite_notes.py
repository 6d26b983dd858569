"""The notes site from outside: its settings from the environment, the CSRF-protected form,
the admin and collectstatic."""

from __future__ import annotations

import os
import re

from django.core.management import call_command

TOKEN_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def test_settings_come_from_the_environment(django_db):
    from django.conf import settings

    assert settings.SECRET_KEY == "a-test-secret-key-of-some-length-0123456789"
    assert settings.DATABASES["default"]["NAME"] == str(django_db)
    assert settings.ALLOWED_HOSTS == ["testserver", "notes.example"]
    assert settings.CSRF_TRUSTED_ORIGINS == ["https://notes.example"]
    assert not settings.DEBUG


def test_get_shows_the_form_with_a_csrf_token(client):
    page = client.get("/")
    assert page.status_code == 200
    body = page.content.decode()
    assert '<form method="post" action="/">' in body and TOKEN_RE.search(body), body
    assert "No notes yet." in body


def test_post_stores_a_note_and_redirects(client):
    token = TOKEN_RE.search(client.get("/").content.decode()).group(1)
    answer = client.post("/", {"author": "Ada", "text": "First note", "csrfmiddlewaretoken": token})
    assert answer.status_code == 302 and answer["Location"] == "/"
    body = client.get("/").content.decode()
    assert "<b>Ada</b>: First note" in body


def test_post_without_the_token_is_refused(client):
    from notes.models import Note

    client.get("/")
    answer = client.post("/", {"author": "Eve", "text": "forged"})
    assert answer.status_code == 403
    assert Note.objects.count() == 0


def test_an_invalid_note_shows_the_form_again(client):
    token = TOKEN_RE.search(client.get("/").content.decode()).group(1)
    answer = client.post("/", {"author": "", "text": "no author", "csrfmiddlewaretoken": token})
    assert answer.status_code == 200 and "This field is required." in answer.content.decode()


def test_the_admin_asks_for_a_login(client):
    answer = client.get("/admin/")
    assert answer.status_code == 302 and answer["Location"] == "/admin/login/?next=/admin/"
    login = client.get("/admin/login/?next=/admin/").content.decode()
    assert "/static/admin/css/base.css" in login


def test_collectstatic_gathers_the_admin_static_files(django_db):
    from django.conf import settings

    call_command("collectstatic", interactive=False, verbosity=0)
    root = settings.STATIC_ROOT
    assert os.path.isfile(os.path.join(root, "admin", "css", "base.css"))
