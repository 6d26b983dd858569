"""Routes: the front page, a health check, a request echo for proxy checks and a visit counter."""

from __future__ import annotations

import socket

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from hello import db

bp = Blueprint("hello", __name__)


@bp.after_app_request
def add_identity_headers(response: Response) -> Response:
    """Tag every response with the host, release and instance that produced it."""
    response.headers["X-App-Host"] = socket.gethostname()
    response.headers["X-App-Release"] = current_app.config["RELEASE_ID"]
    instance = current_app.config["INSTANCE_NAME"]
    if instance:
        response.headers["X-App-Instance"] = instance
    return response


@bp.get("/")
def index() -> str:
    return render_template(
        "index.html",
        greeting=current_app.config["GREETING"],
        host=socket.gethostname(),
        release=current_app.config["RELEASE_ID"],
        instance=current_app.config["INSTANCE_NAME"],
        remote_addr=request.remote_addr,
        scheme=request.scheme,
    )


@bp.get("/healthz")
def healthz() -> Response:
    response = jsonify(
        status="ok",
        release=current_app.config["RELEASE_ID"],
        host=socket.gethostname(),
        instance=current_app.config["INSTANCE_NAME"],
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/whoami")
def whoami() -> Response:
    """What the app sees of the client; behind proxies this checks the ProxyFix settings."""
    response = jsonify(
        remote_addr=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        x_forwarded_for=request.headers.get("X-Forwarded-For"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/visits")
def visits() -> Response:
    """Count a visit in the instance folder's database; the new total."""
    response = jsonify(visits=db.count_visit())
    response.headers["Cache-Control"] = "no-store"
    return response
