"""Rolling deploys, the health gate and rollback, under constant load through the lb.

Runs after test_cluster.py (file order), on the host topology it leaves behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
from wsgideploy_testlib import load_during, playbook, record_figure, run_playbook, scenario_host

testinfra_hosts = ["ansible://wsgideploy-cluster-client"]

LB = "wsgideploy-cluster-lb"
APPS = ["wsgideploy-cluster-app1", "wsgideploy-cluster-app2", "wsgideploy-cluster-app3"]
HTTPS = f"https://{LB}"


def releases_seen(host, n: int = 30) -> dict[str, str]:
    """Host -> release id, from sequential requests through the lb."""
    seen: dict[str, set] = {}
    for _ in range(n):
        doc = json.loads(host.check_output(f"curl -sk {HTTPS}/healthz"))
        seen.setdefault(doc["host"], set()).add(doc["release"])
    assert all(len(r) == 1 for r in seen.values()), seen
    return {h: r.pop() for h, r in seen.items()}


def app_copy(tmp_path, name: str, change) -> str:
    src = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "app")
    dest = tmp_path / name
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    change(dest)
    return str(dest)


def under_load(action, seconds: int, rate: int = 10) -> tuple[dict, object]:
    """Constant load through the lb for `seconds` while action() runs; (load summary, action result)."""
    return load_during(action, "wsgideploy-cluster-client", HTTPS + "/healthz", seconds, rate)


@pytest.fixture(scope="module")
def first_release(host):
    rel = set(releases_seen(host).values())
    assert len(rel) == 1, rel
    return rel.pop()


@pytest.fixture(scope="module")
def v2_source(tmp_path_factory):
    def change(d):
        with open(d / "hello" / "static" / "style.css", "a") as fh:
            fh.write("\n/* release 2 */\n")
    return app_copy(tmp_path_factory.mktemp("v2"), "app", change)


def test_rolling_deploy_under_load_loses_nothing(host, first_release, v2_source):
    def deploy():
        start = time.monotonic()
        playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={v2_source}")
        return time.monotonic() - start

    load, seconds = under_load(deploy, seconds=150)
    record_figure("rolling_deploy", {"deploy_seconds": round(seconds), "load_total": load["requests"],
                                     "load_failed": load["failed"], "load_seconds": load["duration_s"]})
    assert load["duration_s"] >= 60 and load["requests"] >= 600, load
    assert load["failed"] == 0, load
    new = releases_seen(host)
    assert set(new) == set(APPS), new
    assert len(set(new.values())) == 1 and first_release not in new.values(), new
    # Code-only change: both releases share one virtualenv on every host (nothing reinstalled).
    for name, rel in new.items():
        app = scenario_host(name)
        venvs = {app.check_output(f"readlink -f /srv/hello/releases/{r}/venv") for r in (first_release, rel)}
        assert len(venvs) == 1, (name, venvs)
    assert_hooks_ran(new, first_release, "deploy")


def hook_lines(release: str) -> dict[str, list[str]]:
    """Host -> the lines its hooks logged for `release` (shared/data/hooks.log)."""
    return {name: [line for line in scenario_host(name).check_output("cat /srv/hello/shared/data/hooks.log").splitlines()
                   if line.split()[-1:] == [release] or f" {release} " in line]
            for name in APPS}


def assert_hooks_ran(now: dict[str, str], previous: str, action: str, once_before: int = 0) -> None:
    """The every-host hooks ran once on each host, the run-once hook once in the whole fleet (on
    the first host; once_before: its lines for this release from earlier runs), as the app user,
    in the release directory, told the release, the previous one and the action."""
    release = set(now.values()).pop()
    lines = hook_lines(release)
    once = [(name, line) for name, host_lines in lines.items() for line in host_lines if line.startswith("once ")]
    assert len(once) == once_before + 1, lines
    assert once.count((APPS[0], f"once before_switch {release}")) >= 1, lines
    for name, host_lines in lines.items():
        for phase in ("before_switch", "after_switch"):
            want = f"{phase} {action} {previous} {release} hello /srv/hello/releases/{release}"
            assert host_lines.count(want) == 1, (name, want, host_lines)


def test_broken_release_stops_at_the_first_host_and_rolls_it_back(host, first_release, tmp_path):
    good = set(releases_seen(host).values())
    broken = app_copy(tmp_path, "app", lambda d: open(d / "hello" / "__init__.py", "a").write(
        "\nraise RuntimeError('broken release: fails at import')\n"))

    load, (rc, out) = under_load(lambda: run_playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={broken}"), seconds=90)
    record_figure("broken_deploy", {"load_total": load["requests"], "load_failed": load["failed"], "playbook_rc": rc})
    assert rc != 0
    assert f"failed on {APPS[0]}" in out and "rollout stopped" in out, out[-3000:]
    assert "Ask every instance for its health" in out  # the message names the failing check
    # Only the first host was touched; it is back on the good release, and nothing was lost.
    assert load["failed"] == 0, load
    assert set(releases_seen(host).values()) == good
    broken_id = re.search(r"Deploy of release (\w+) failed", out).group(1)
    assert broken_id not in good
    for name in APPS:
        kept = scenario_host(name).check_output("ls /srv/hello/releases").split()
        # app2 and app3 never got it; app1 deleted it after rolling back.
        assert broken_id not in kept, (name, kept)
        assert len(kept) == 2, (name, kept)


def test_rollback_returns_every_host_under_load(host, first_release):
    before = set(releases_seen(host).values()).pop()
    load, _ = under_load(lambda: playbook("playbooks/rollback.yml"), seconds=120)
    record_figure("rollback", {"load_total": load["requests"], "load_failed": load["failed"]})
    assert load["failed"] == 0, load
    back = releases_seen(host)
    assert set(back) == set(APPS) and set(back.values()) == {first_release}, back
    # The first converge ran the run-once hook for this release already.
    assert_hooks_ran(back, before, "rollback", once_before=1)


def test_status_reports_release_and_health(host, first_release):
    out = playbook("playbooks/status.yml")
    for name in APPS:
        assert name in out
    assert out.count(f"active release: {first_release}") == len(APPS), out[-3000:]
    assert out.count(f"release {first_release}") >= 2 * len(APPS)  # each instance healthy on it
    assert "unhealthy" not in out
