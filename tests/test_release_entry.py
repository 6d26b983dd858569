"""wsgideploy_release: the entry point the app servers load, around an app that knows nothing of us."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from scriptload import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "rollout" / "files" / "wsgideploy_release.py"
entry = load_module("wsgideploy_release_under_test", SCRIPT)


class Body(list):
    closed = False

    def close(self):
        self.closed = True


def plain_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App-Release", "the app's own")])
    return Body([b"hi"])


def call(app):
    environ: dict = {}
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = app(environ, start_response)
    return seen["status"], seen["headers"], body


@pytest.fixture
def fake_module(monkeypatch):
    mod = types.ModuleType("thirdparty_site")
    mod.app = plain_app
    mod.factory = lambda: plain_app
    mod.holder = types.SimpleNamespace(wsgi=plain_app)
    mod.not_callable = 3
    monkeypatch.setitem(sys.modules, "thirdparty_site", mod)
    return mod


def test_the_release_header_is_added_and_replaces_the_apps(fake_module):
    app = entry.wrap(entry.load("thirdparty_site:app"), "X-App-Release", "20261201-abc")
    status, headers, body = call(app)
    assert status == "200 OK"
    assert [v for k, v in headers if k.lower() == "x-app-release"] == ["20261201-abc"]
    assert ("Content-Type", "text/plain") in headers
    # The app's iterable itself comes back: close() reaches it.
    assert isinstance(body, Body)
    body.close()
    assert body.closed


@pytest.mark.parametrize("spec", ["thirdparty_site:app", "thirdparty_site:factory()", "thirdparty_site:holder.wsgi"])
def test_callable_forms(fake_module, spec):
    assert entry.load(spec) is plain_app


@pytest.mark.parametrize(("spec", "error"), [("thirdparty_site:missing", AttributeError),
                                             ("thirdparty_site:not_callable", TypeError),
                                             ("no colon", ValueError),
                                             ("no_such_module_anywhere:app", ImportError)])
def test_a_bad_callable_fails_at_import(fake_module, spec, error):
    with pytest.raises(error):
        entry.load(spec)


def test_release_is_the_directory_below_releases(tmp_path):
    release = tmp_path / "releases" / "20261201T000000-abc"
    (release / "pkg").mkdir(parents=True)
    (tmp_path / "current").symlink_to(release)
    assert entry.release_of(str(tmp_path / "current"), str(tmp_path / "releases")) == "20261201T000000-abc"
    assert entry.release_of(str(release / "pkg"), str(tmp_path / "releases")) == "20261201T000000-abc"
    assert entry.release_of(str(tmp_path), str(tmp_path / "releases")) == ""
    assert entry.release_of(str(tmp_path / "releases"), str(tmp_path / "releases")) == ""


def test_without_a_release_or_header_the_app_is_served_as_is():
    assert entry.wrap(plain_app, "X-App-Release", "") is plain_app
    assert entry.wrap(plain_app, "", "abc") is plain_app


def test_from_environment(fake_module, tmp_path, monkeypatch):
    release = tmp_path / "releases" / "r2"
    release.mkdir(parents=True)
    monkeypatch.chdir(release)
    app = entry.from_environment({"WSGIDEPLOY_CALLABLE": "thirdparty_site:factory()",
                                  "WSGIDEPLOY_RELEASES": str(tmp_path / "releases"),
                                  "WSGIDEPLOY_RELEASE_HEADER": "X-Release"})
    _, headers, _ = call(app)
    assert ("X-Release", "r2") in headers and ("X-App-Release", "the app's own") in headers


def test_enter_release_follows_current_and_keeps_one_release_on_the_path(tmp_path, monkeypatch):
    releases = tmp_path / "releases"
    old, new = releases / "r1", releases / "r2"
    for d in (old, new):
        (d / "venv" / "lib").mkdir(parents=True)
    current = tmp_path / "current"
    current.symlink_to(new)
    monkeypatch.chdir(old)  # the arbiter started in the old release
    path = ["", str(current), str(old), "/usr/lib/python3/dist-packages", str(current / "venv" / "lib"),
            str(old / "venv" / "lib"), "/opt/entry"]
    assert entry.enter_release(str(current), str(releases), path) == str(new)
    assert Path.cwd() == new
    # The new release first; the old release's code root gone; the virtualenv through current
    # pinned to the new release; a package-mode virtualenv inside a release is not a code root.
    assert path == [str(new), "/usr/lib/python3/dist-packages", str(new / "venv" / "lib"),
                    str(old / "venv" / "lib"), "/opt/entry"]


def test_mount_moves_the_prefix_to_script_name_and_refuses_other_paths():
    seen = {}

    def app(environ, start_response):
        seen["script"], seen["path"] = environ["SCRIPT_NAME"], environ["PATH_INFO"]
        start_response("200 OK", [])
        return [b""]

    mounted = entry.mount(app, "/blog/")
    for path, script, rest in (("/blog/post/1", "/blog", "/post/1"), ("/blog", "/blog", ""), ("/blog/", "/blog", "/")):
        environ: dict = {}
        setup_testing_defaults(environ)
        environ.update(SCRIPT_NAME="", PATH_INFO=path)
        mounted(environ, lambda status, headers, exc_info=None: None)
        assert (seen["script"], seen["path"]) == (script, rest)
    for outside in ("/", "/blogger", "/static/x.css"):
        environ = {}
        setup_testing_defaults(environ)
        environ.update(SCRIPT_NAME="", PATH_INFO=outside)
        status = []
        mounted(environ, lambda s, h, exc_info=None: status.append(s))
        assert status == ["404 Not Found"], outside
    assert entry.mount(app, "") is app
    with pytest.raises(ValueError):
        entry.mount(app, "blog")


def test_a_mounted_flask_app_builds_prefixed_links():
    flask = pytest.importorskip("flask")
    app = flask.Flask("mounted", static_folder=None)
    app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=lambda filename: filename)

    @app.route("/")
    def index():
        return f"{flask.url_for('index')} {flask.url_for('static', filename='s.css')}"

    client_app = entry.mount(app, "/blog")
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(SCRIPT_NAME="", PATH_INFO="/blog/")
    out = {}
    body = b"".join(client_app(environ, lambda s, h, exc_info=None: out.setdefault("status", s)))
    assert out["status"].startswith("200") and body == b"/blog/ /blog/static/s.css"
