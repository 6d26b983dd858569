"""The WSGI entry point the app servers load: the app's own callable, plus a release header.

The app server (uWSGI, Gunicorn) is pointed at `wsgideploy_release:application` instead of the
app's callable. At import, in each worker, this module:

- imports the app's callable named by WSGIDEPLOY_CALLABLE (`module:name`, `module:obj.attr`, or
  `module:factory()` to call an application factory without arguments); an import error is the
  app server's error, as if it had loaded the app itself;
- with WSGIDEPLOY_CURRENT (the `current` symlink), first enters the release it names at this
  moment: the working directory becomes that release directory (resolved) and it alone of the
  releases stays on sys.path, at the front. An app server whose workers start from an arbiter
  that was started in an older release (Gunicorn's reload) so loads the new one, and a worker
  never mixes two releases even if `current` moves while it runs;
- notes the release the worker runs: the first component of its working directory (the release
  directory, `current` resolved) below WSGIDEPLOY_RELEASES (the releases directory).

With WSGIDEPLOY_URL_PREFIX (e.g. `/blog`) the app is mounted under that prefix, as uWSGI's
`mount` with `manage-script-name` does, for any app server: a request for `/blog/x` reaches the
app with SCRIPT_NAME `/blog` and PATH_INFO `/x`, so the app's own URL building (Flask's url_for,
static files included) yields prefixed links; a path outside the prefix gets 404 without reaching
the app.

Every response then carries the header named by WSGIDEPLOY_RELEASE_HEADER (default X-App-Release)
with that release id, replacing one the app may set itself. The collection's health gate reads it,
so the app needs no health route of its own and knows nothing of the collection: any path that
answers 2xx will do. Nothing else of the request or the response is touched (the app's iterable is
returned as is, so close() and wsgi.file_wrapper keep working).

Python standard library only; the module is installed outside the release (the app server's
python path) and never imported by the app.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

_SPEC = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)(?P<call>\(\))?$")


def load(spec: str):
    """The WSGI callable named by spec (`module:attr`, dotted attrs, `()` calls a factory)."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError(f"WSGIDEPLOY_CALLABLE {spec!r} is not module:callable or module:factory()")
    obj = importlib.import_module(match["module"])
    for part in match["attr"].split("."):
        obj = getattr(obj, part)
    if match["call"]:
        obj = obj()
    if not callable(obj):
        raise TypeError(f"WSGIDEPLOY_CALLABLE {spec!r} is not callable")
    return obj


def release_of(cwd: str, releases: str) -> str:
    """The release directory's name when cwd is inside releases/, else ''."""
    cwd, releases = os.path.realpath(cwd), os.path.realpath(releases)
    rel = os.path.relpath(cwd, releases)
    if rel == "." or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return ""
    return rel.split(os.sep, 1)[0]


def wrap(app, header: str, release: str):
    """app, with `header: release` on every response (the app's own header of that name dropped)."""
    if not header or not release:
        return app
    lower = header.lower()

    def application(environ, start_response):
        def start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if k.lower() != lower]
            headers.append((header, release))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return app(environ, start)

    application.wsgideploy_release = release  # type: ignore[attr-defined]
    application.wsgideploy_app = app  # type: ignore[attr-defined]
    return application


def mount(app, prefix: str):
    """app, served under the URL prefix (SCRIPT_NAME += prefix, PATH_INFO loses it); other paths
    answer 404 here. An empty prefix: app unchanged."""
    prefix = prefix.rstrip("/")
    if not prefix:
        return app
    if not prefix.startswith("/"):
        raise ValueError(f"WSGIDEPLOY_URL_PREFIX {prefix!r} must start with /")

    def application(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != prefix and not path.startswith(prefix + "/"):
            body = b"Not Found\n"
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + prefix
        environ["PATH_INFO"] = path[len(prefix):]
        return app(environ, start_response)

    application.wsgideploy_app = app  # type: ignore[attr-defined]
    return application


def enter_release(current: str, releases: str, path: list[str]) -> str:
    """chdir into the release `current` names now. On `path` (sys.path) that release directory
    comes first, other releases' directories go, and entries through `current` (its virtualenv)
    are pinned to what it names now, so later imports cannot reach a newer release."""
    release_dir = os.path.realpath(current)
    os.chdir(release_dir)
    current_abs = os.path.abspath(current)
    releases_real = os.path.realpath(releases) if releases else ""
    keep = []
    for entry in path:
        absolute = os.path.abspath(entry) if entry not in ("", ".") else ""
        if not absolute or absolute == current_abs:
            continue
        if absolute.startswith(current_abs + os.sep):
            keep.append(os.path.realpath(absolute))
            continue
        if releases_real:
            rel = os.path.relpath(os.path.realpath(absolute), releases_real)
            if not rel.startswith(os.pardir) and rel != "." and os.sep not in rel:
                continue  # another release's directory
        keep.append(entry)
    path[:] = [release_dir, *[e for e in dict.fromkeys(keep) if e != release_dir]]
    return release_dir


def from_environment(environ=os.environ):
    releases = environ.get("WSGIDEPLOY_RELEASES", "")
    if environ.get("WSGIDEPLOY_CURRENT"):
        enter_release(environ["WSGIDEPLOY_CURRENT"], releases, sys.path)
    release = release_of(os.getcwd(), releases) if releases else ""
    app = mount(load(environ["WSGIDEPLOY_CALLABLE"]), environ.get("WSGIDEPLOY_URL_PREFIX", ""))
    # An empty header name: the app is served as it is (the release is still pinned above).
    return wrap(app, environ.get("WSGIDEPLOY_RELEASE_HEADER", "X-App-Release"), release)


if "WSGIDEPLOY_CALLABLE" in os.environ:
    application = from_environment()
