"""The guestbook pages: the list and the form, signing, one entry."""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from guestbook.db import get_db

bp = Blueprint("guestbook", __name__)

MAX_NAME = 100
MAX_MESSAGE = 1000


def csrf_token() -> str:
    """The session's form token, created on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    expected = session.get("csrf")
    sent = request.form.get("csrf_token", "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        abort(400, "The form has expired or did not come from this site; reload the page and try again.")


@bp.get("/")
def index() -> str:
    entries = get_db().execute(
        "SELECT id, name, message, created FROM entry ORDER BY id DESC"
    ).fetchall()
    return render_template(
        "index.html",
        entries=entries,
        csrf_token=csrf_token(),
        max_name=MAX_NAME,
        max_message=MAX_MESSAGE,
    )


@bp.post("/sign")
def sign() -> Response:
    check_csrf()
    name = request.form.get("name", "").strip()
    message = request.form.get("message", "").strip()
    if not name or len(name) > MAX_NAME:
        abort(400, f"A name is required (at most {MAX_NAME} characters).")
    if not message or len(message) > MAX_MESSAGE:
        abort(400, f"A message is required (at most {MAX_MESSAGE} characters).")

    db = get_db()
    cur = db.execute("INSERT INTO entry (name, message) VALUES (?, ?)", (name, message))
    db.commit()
    session["name"] = name
    return redirect(url_for("guestbook.entry", entry_id=cur.lastrowid), code=303)


@bp.get("/entries/<int:entry_id>")
def entry(entry_id: int) -> str:
    row = get_db().execute(
        "SELECT id, name, message, created FROM entry WHERE id = ?", (entry_id,)
    ).fetchone()
    if row is None:
        abort(404)
    return render_template("entry.html", entry=row)
