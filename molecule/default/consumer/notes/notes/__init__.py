"""A plain WSGI app, no framework: its title comes from the Python file NOTES_SETTINGS names."""

import html
import os
import runpy


def _title():
    path = os.environ.get("NOTES_SETTINGS")
    settings = runpy.run_path(path) if path and os.path.isfile(path) else {}
    return settings.get("NOTES_TITLE", "Notes")


def application(environ, start_response):
    body = f"<h1>{html.escape(_title())}</h1>\n<p>{html.escape(environ.get('PATH_INFO', '/'))}</p>\n".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
