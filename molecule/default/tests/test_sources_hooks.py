"""Where releases come from (git, a wheel), shared state across releases, hooks, offline installs.

Runs after test_single_host_deploy.py (file order); each test deploys a new release with
playbooks/deploy.yml and checks what the app answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from wsgideploy_testlib import playbook, run_playbook

HEALTH = "/usr/local/lib/wsgideploy/wsgi-health"
INSTANCES = ("hello-0", "hello-1")
# Loopback port nothing listens on: pip fails at once if it tries the index.
DEAD_INDEX = "http://127.0.0.1:9/simple/"


def app_copy(tmp_path, change=None) -> str:
    dest = tmp_path / "app"
    shutil.copytree(os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "app"), dest,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.egg-info", "build"))
    if change:
        change(dest)
    return str(dest)


def mark_static(marker: str):
    def change(d):
        with open(d / "hello" / "static" / "style.css", "a") as fh:
            fh.write(f"\n/* {marker} */\n")
    return change


def current(host) -> str:
    return host.file("/srv/hello/current/REVISION").content_string.strip()


def assert_serving(host, release: str) -> None:
    for instance in INSTANCES:
        res = host.run(f"{HEALTH} /run/{instance}/app.sock --protocol uwsgi --expect-release {release}")
        assert res.rc == 0, res.stdout + res.stderr


def visit(host) -> int:
    return json.loads(host.check_output("curl -sf -X POST http://127.0.0.1/visits"))["visits"]


def deploy(*extra: str) -> str:
    return playbook("playbooks/deploy.yml", *extra)


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_hooks_ran_as_the_app_user_in_the_release_with_its_ids(host):
    log = host.file("/srv/hello/shared/data/hooks.log").content_string.splitlines()
    rel = current(host)
    # The single-host deploy before this test moved current from an earlier release to this one.
    previous = [line.split()[2] for line in log if line.startswith("before_switch") and line.split()[3] == rel][-1]
    for phase in ("before_switch", "after_switch"):
        assert f"{phase} deploy {previous} {rel} hello /srv/hello/releases/{rel}" in log, log
    assert log.count(f"once before_switch {rel}") == 1, log
    # The after_install hook made the database in the instance folder, which lives in shared/.
    db = host.file("/srv/hello/shared/instance/hello.sqlite")
    assert db.user == "hello" and db.is_file
    assert host.file(f"/srv/hello/releases/{rel}/instance").linked_to == "/srv/hello/shared/instance"


def test_git_source_deploys_the_commit_and_state_survives(host, tmp_path):
    repo = app_copy(tmp_path, mark_static("committed in git"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "release from git")
    git(repo, "tag", "v-git")
    # Uncommitted work in the checkout is not part of the release.
    with open(os.path.join(repo, "hello", "static", "style.css"), "a") as fh:
        fh.write("\n/* uncommitted */\n")
    visits = visit(host)

    deploy("-e", json.dumps({"wsgi_app_source": "git", "wsgi_app_git_repo": repo, "wsgi_app_git_ref": "v-git"}))

    rel = current(host)
    assert_serving(host, rel)
    css = host.check_output("curl -sf http://127.0.0.1/static/style.css")
    assert "committed in git" in css and "uncommitted" not in css
    # The counter lives in shared/instance: the new release continues it.
    assert visit(host) == visits + 1


def test_wheel_source_deploys_the_built_package(host, tmp_path):
    src = app_copy(tmp_path, mark_static("built as a wheel"))
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), src],
                           capture_output=True, text=True, check=False)
    if build.returncode != 0:
        pytest.fail("building the example app's wheel on the controller failed: " + build.stderr[-2000:])
    wheel = next(dist.glob("hello-*.whl"))
    visits = visit(host)

    deploy("-e", json.dumps({"wsgi_app_source": "artifact", "wsgi_app_artifact": str(wheel)}))

    rel = current(host)
    assert_serving(host, rel)
    assert host.file(f"/srv/hello/releases/{rel}/hello-1.0.0.dist-info").is_directory
    # The wheel's dependency list became the release's requirements.
    assert "Flask" in host.file(f"/srv/hello/releases/{rel}/requirements.txt").content_string
    assert "built as a wheel" in host.check_output("curl -sf http://127.0.0.1/static/style.css")
    assert visit(host) == visits + 1


def test_offline_host_installs_new_requirements_from_the_wheelhouse(host, tmp_path):
    before = current(host)
    src = app_copy(tmp_path, lambda d: open(d / "requirements.txt", "a").write("six==1.17.0\n"))
    dead_index = {"wsgi_app_src": src, "app_pip_index_url": DEAD_INDEX}

    # Without the wheelhouse pip needs the (unreachable) index: the deploy fails while preparing,
    # before the running app is touched.
    rc, out = run_playbook("playbooks/deploy.yml", "-e", json.dumps(dead_index))
    assert rc != 0 and "Create the virtualenv with the app's requirements" in out, out[-3000:]
    assert "Drain, switch, gate, undrain" not in out, out[-3000:]
    assert current(host) == before
    assert_serving(host, before)

    out = deploy("-e", json.dumps({**dead_index, "app_wheelhouse": True}))
    rel = current(host)
    assert rel != before
    assert_serving(host, rel)
    assert host.run(f"/srv/hello/releases/{rel}/venv/bin/python -c 'import six, flask, pyuwsgi'").rc == 0
    wheels = host.check_output(f"ls /srv/hello/releases/{rel}/venv/wheelhouse").split()
    assert any(w.startswith("six-1.17.0") for w in wheels), wheels
