"""Rolling deploys, the health gate and rollback, under constant load through the lb; and changes
that break the app, sent through site.yml, which must fail the run, lose no request and leave
every host as it was.

Runs after test_cluster.py (file order), on the host topology it leaves behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
from wsgideploy_testlib import (assert_fleet_unchanged, finish, ledger, load_during, lock_holder, playbook, recap,
                                record_figure, run_playbook, scenario_host, start_playbook, wait_for_lock,
                                fleet_state as shared_fleet_state)

testinfra_hosts = ["ansible://wsgideploy-cluster-client"]

LB = "wsgideploy-cluster-lb"
APPS = ["wsgideploy-cluster-app1", "wsgideploy-cluster-app2", "wsgideploy-cluster-app3"]
HTTPS = f"https://{LB}"
# The cluster's own app settings (molecule.yml), as -e app_settings must repeat them.
SETTINGS = {"GREETING": "Hello from the cluster", "PROXY_FIX_X_FOR": 2, "PROXY_FIX_X_PROTO": 2}


def fleet_state() -> dict[str, str]:
    return shared_fleet_state(APPS, LB)


def greetings(host, n: int = 30) -> dict[str, set]:
    """Host -> the greetings its pages showed, from sequential requests through the lb."""
    seen: dict[str, set] = {}
    for _ in range(n):
        page = host.check_output(f"curl -sk {HTTPS}/")
        who = re.search(r"wsgideploy-cluster-app\d", page).group(0)
        seen.setdefault(who, set()).add(re.search(r"<h1>(.*?)</h1>", page, re.S).group(1).strip())
    return seen


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


def under_load(action, seconds: int = 600, rate: int = 10) -> tuple[dict, object]:
    """Constant load through the lb while action() runs, until 2 s after it returns (at most
    `seconds`); (load summary, action result)."""
    return load_during(action, "wsgideploy-cluster-client", HTTPS + "/healthz", seconds, rate, until_done=True)


@pytest.fixture(scope="module")
def first_release(host):
    rel = set(releases_seen(host).values())
    assert len(rel) == 1, rel
    return rel.pop()


def release_source(tmp_path_factory, n: int) -> str:
    """A copy of the app whose stylesheet names release n: the same app, another release."""
    def change(d):
        with open(d / "hello" / "static" / "style.css", "a") as fh:
            fh.write(f"\n/* release {n} */\n")
    return app_copy(tmp_path_factory.mktemp(f"v{n}"), "app", change)


@pytest.fixture(scope="module")
def v2_source(tmp_path_factory):
    return release_source(tmp_path_factory, 2)


@pytest.fixture(scope="module")
def v3_source(tmp_path_factory):
    return release_source(tmp_path_factory, 3)


def test_rolling_deploy_under_load_loses_nothing(host, first_release, v2_source, v3_source, tmp_path):
    """The rolling deploy of v2, and a deploy of v3 started while it runs: the app's lock (on the
    lb) refuses v3 at once, naming the holder, and it changes nothing. The v2 run ends with its
    summary, the same as JSON in the report file, and its lines in the ledger."""
    report = tmp_path / "report.json"

    def deploy():
        start = time.monotonic()
        first = start_playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={v2_source}", "-e", f"deploy_report={report}",
                               "-e", json.dumps({"deploy_message": "rolling v2"}))
        holder = wait_for_lock(LB, "hello")
        second_start = time.monotonic()
        second = run_playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={v3_source}")
        second_seconds = time.monotonic() - second_start
        rc, out = finish(first)
        return time.monotonic() - start, (rc, out), holder, second, second_seconds

    load, (seconds, (rc, out), holder, (second_rc, second_out), second_seconds) = under_load(deploy)
    record_figure("rolling_deploy", {"deploy_seconds": round(seconds), "load_total": load["requests"],
                                     "load_failed": load["failed"], "load_seconds": load["duration_s"],
                                     "refused_run_seconds": round(second_seconds)})
    assert rc == 0, out[-6000:]
    # The load covered the whole run, at its rate (10/s).
    assert load["duration_s"] >= seconds and load["requests"] >= load["duration_s"] * 10 * 0.9, load
    assert load["failed"] == 0, load
    # The second run was refused at once by the first one's lock, naming it, and changed nothing.
    assert holder["playbook"] == "deploy.yml" and holder["message"] == "rolling v2", holder
    assert second_rc != 0, second_out[-3000:]
    refusal = re.sub(r"\s+", " ", second_out)
    assert f"is held by {holder['owner']} (deploy.yml, release {holder['release']}" in refusal, second_out[-3000:]
    assert " ago: \"rolling v2\"" in refusal and "has changed nothing" in refusal, second_out[-3000:]
    assert all(c["changed"] == 0 for c in recap(second_out).values()), second_out[-3000:]
    assert "TASK [app : " not in second_out.split("Take the lock on")[-1], second_out[-3000:]
    assert lock_holder(LB, "hello") == {}
    # A new release alone: every host redid only the release (no base, no app server config).
    assert out.count("a new release (all else is as the last run left it)") == len(APPS), out[-3000:]
    assert "TASK [base : " not in out and "TASK [uwsgi : " not in out and "TASK [gunicorn : " not in out, out[-3000:]
    new = releases_seen(host)
    assert set(new) == set(APPS), new
    assert len(set(new.values())) == 1 and first_release not in new.values(), new
    # The summary, as Ansible printed it and as JSON, and the ledger say what moved.
    assert f"release {holder['release']} - OK in" in out, out[-3000:]
    assert "requests the lbs answered as failed (5xx) for the app during the run: 0" in out, out[-3000:]
    doc = json.loads(report.read_text())
    assert doc["result"] == "ok" and doc["playbook"] == "deploy.yml" and doc["release"] == holder["release"], doc
    assert {h["host"]: h["to"] for h in doc["hosts"]} == new and doc["failed_requests"] == 0, doc
    assert all(h["result"] == "switched" and h["from"] == first_release and h["gate"] == "passed"
               and float(h["gate_s"]) >= 0 for h in doc["hosts"]), doc
    runs = [e for e in ledger(LB, "hello") if e["kind"] == "run"]
    assert runs[-1]["run"] == doc["run"] and runs[-1]["message"] == "rolling v2", runs[-1]
    assert [e["to"] for e in ledger(LB, "hello") if e["kind"] == "host" and e["run"] == doc["run"]] == [new[a] for a in APPS]
    for name in APPS:  # each host keeps its own line
        assert [e["host"] for e in ledger(name, "hello") if e.get("run") == doc["run"]] == [name]
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


def broken_change(host, name: str, *extra: str, prepared: str = "") -> tuple[str, dict]:
    """site.yml with a change that breaks the app, under constant load: it must fail, lose no
    request, and leave every host (and the lb) exactly as it was. `prepared`: the regex of the
    output that names a new release; the hosts the run never switched keep it prepared (built,
    never activated, pruned first by the next run), so its line is left out of their listing.
    (output, load summary)"""
    before, releases = fleet_state(), releases_seen(host)
    start = time.monotonic()
    load, (rc, out) = under_load(lambda: run_playbook("site.yml", *extra))
    record_figure(name, {"load_total": load["requests"], "load_failed": load["failed"], "playbook_rc": rc,
                         "playbook_seconds": round(time.monotonic() - start)})
    assert rc != 0, out[-3000:]
    # In full (a dict repr is cut short): which requests failed, how, and when.
    assert load["failed"] == 0, json.dumps(load)
    assert load["duration_s"] >= time.monotonic() - start - 5, (load, "the load ended before the run")
    assert load["requests"] >= load["duration_s"] * 10 * 0.9, load
    assert_fleet_unchanged(before, fleet_state(), out, re.search(prepared, out).group(1) if prepared else "")
    assert releases_seen(host) == releases
    return out, load


def test_settings_that_would_not_compile_are_refused_before_any_change(host):
    # `bad key = 1` would be a syntax error in the settings file. The keys are checked before any
    # host changes (and a candidate that does not compile could never replace the live file).
    out, _ = broken_change(host, "broken_settings", "-e", json.dumps({"app_settings": {**SETTINGS, "bad key": 1}}))
    assert "app_settings" in out and '"bad key"' in out and "not a Python" in out, out[-3000:]
    # Refused before anything ran on a host: no host was drained or switched.
    assert "Take the host out of every load balancer" not in out, out[-3000:]


def test_a_bad_lb_value_is_refused_before_any_app_host_changes(host):
    # site.yml checks the lb's input with the app hosts', in its first play: a change for the app
    # hosts (new settings) never reaches them when a value only the lb reads is wrong.
    out, _ = broken_change(host, "broken_lb_value", "-e", json.dumps(
        {"app_settings": {**SETTINGS, "GREETING": "Never shown"}, "lb_topology": "mesh"}))
    assert "lb_topology" in out and "mesh" in out, out[-3000:]
    # Refused before the release was even packed: nothing prepared, drained or switched.
    assert "TASK [app : " not in out and "Take the host out of every load balancer" not in out, out[-3000:]


def test_a_renamed_callable_is_rolled_back_on_the_first_host(host, v2_source):
    # The fleet runs v2: the callable is the only change.
    # The load lasts as long as the run (prepare, app1's switch, its gate and rollback).
    out, _ = broken_change(host, "broken_callable", "-e", f"wsgi_app_src={v2_source}",
                           "-e", "wsgi_app_callable=hello:no_such_factory()")
    assert f"failed on {APPS[0]}" in out and "the run stopped here" in out, out[-3000:]
    assert "Ask every instance for its health" in out  # the message names the failing check


def test_an_app_that_raises_at_import_is_rolled_back_and_deleted(host, first_release, tmp_path):
    broken = app_copy(tmp_path, "app", lambda d: open(d / "hello" / "__init__.py", "a").write(
        "\nraise RuntimeError('broken release: fails at import')\n"))
    kept_before = {name: scenario_host(name).check_output("ls /srv/hello/releases").split() for name in APPS}
    # keep 1: pruning before the gate would have removed the release to go back to. No
    # after_install hook: the scenario's hook imports the app and would refuse the release while
    # preparing, before any switch; here the gate is what must catch it.
    out, _ = broken_change(host, "broken_import", "-e", f"wsgi_app_src={broken}", "-e", "app_keep_releases=1",
                           "-e", json.dumps({"app_hooks_after_install": []}),
                           prepared=r"The change \(release (\w+)\) failed")
    assert f"failed on {APPS[0]}" in out and "the run stopped here" in out, out[-3000:]
    broken_id = re.search(r"The change \(release (\w+)\) failed", out).group(1)
    for name in APPS:
        kept = scenario_host(name).check_output("ls /srv/hello/releases").split()
        # app2 and app3 built it while preparing and never switched to it; app1 deleted it after
        # rolling back. Nothing was pruned.
        assert broken_id not in kept or name != APPS[0], (name, kept, out[-4000:])
        assert sorted(set(kept) - {broken_id}) == sorted(kept_before[name]), (name, kept, kept_before[name])


def upstream(lb, app: str) -> list[str]:
    """The server lines of an app host's upstream file on the lb."""
    return lb.check_output(f"grep '^server' /etc/nginx/wsgideploy/hello/app/{app}.conf").splitlines()


def test_a_batch_with_one_failing_host_finishes_the_others_and_keeps_a_drain(host, v2_source):
    """deploy_serial 2: app1 (drained by an operator) and app2 switch together; app2's change
    fails. app1 finishes and stays drained, app2 is rolled back into rotation, app3 is never
    touched."""
    playbook("playbooks/drain.yml", "-e", f"drain={APPS[0]}")
    lb = scenario_host(LB)
    try:
        new = {**SETTINGS, "GREETING": "Hello from batch two"}
        callable_ = ("{{ 'hello:no_such_factory()' if inventory_hostname == '%s' else 'hello:create_app()' }}" % APPS[1])
        load, (rc, out) = under_load(lambda: run_playbook(
            "site.yml", "-e", json.dumps({"app_settings": new, "deploy_serial": 2, "wsgi_app_callable": callable_,
                                          "wsgi_app_src": v2_source})))
        record_figure("batch_one_failing", {"load_total": load["requests"], "load_failed": load["failed"], "playbook_rc": rc})
        assert rc != 0 and f"failed on {APPS[1]}" in out, out[-3000:]
        assert load["failed"] == 0, load
        seen = greetings(host)
        # app1 is still drained (the operator's drain survived the switch), app2 is back, on its
        # old settings, and app3 was never changed.
        assert APPS[0] not in seen, seen
        assert seen.get(APPS[1]) == {"Hello from the cluster"} and seen.get(APPS[2]) == {"Hello from the cluster"}, seen
        assert all(line.endswith(" down;") for line in upstream(lb, APPS[0])), upstream(lb, APPS[0])
        assert not any(" down" in line for line in upstream(lb, APPS[1])), upstream(lb, APPS[1])
        # app1 finished its switch although its batch-mate failed.
        app1 = scenario_host(APPS[0])
        assert "Hello from batch two" in app1.check_output("curl -s localhost/")
    finally:
        playbook("playbooks/drain.yml", "-e", f"undrain={APPS[0]}")
    # Back to the inventory's settings (still on v2): only app1 has a change pending.
    out = playbook("site.yml", "-e", f"wsgi_app_src={v2_source}")
    assert "Switch the running app hosts" in out
    assert greetings(host) == {name: {"Hello from the cluster"} for name in APPS}


def test_a_batch_that_would_empty_the_lb_is_refused_before_it_leaves(host):
    """An operator drained app1 and app2: app3 is all the lb has. A change to app3 would take it
    out too; the run refuses before app3 leaves the lb, and nothing changes."""
    playbook("playbooks/drain.yml", "-e", f"drain={APPS[0]},{APPS[1]}")
    try:
        new = {**SETTINGS, "GREETING": "Hello from an empty lb"}
        out, _ = broken_change(host, "last_in_rotation", "--limit", APPS[2], "-e", json.dumps({"app_settings": new}))
        assert f"would leave it no app host in rotation (in rotation there now: {APPS[2]})" in out, out[-3000:]
        assert "Take the host out of every load balancer" not in out, out[-3000:]
        assert greetings(host) == {APPS[2]: {"Hello from the cluster"}}
    finally:
        playbook("playbooks/drain.yml", "-e", f"undrain={APPS[0]},{APPS[1]}")
    assert set(greetings(host)) == set(APPS)


def test_rollback_returns_every_host_under_load(host, first_release):
    before = set(releases_seen(host).values()).pop()
    load, _ = under_load(lambda: playbook("playbooks/rollback.yml"))
    record_figure("rollback", {"load_total": load["requests"], "load_failed": load["failed"]})
    assert load["failed"] == 0, load
    back = releases_seen(host)
    assert set(back) == set(APPS) and set(back.values()) == {first_release}, back
    # The first converge ran the run-once hook for this release already.
    assert_hooks_ran(back, before, "rollback", once_before=1)

    # Each host's history now holds nothing before the first release: a second rollback has
    # nowhere to go, says so, and changes nothing.
    state = fleet_state()
    rc, out = run_playbook("playbooks/rollback.yml")
    assert rc != 0 and "nothing to roll back to" in out, out[-3000:]
    assert fleet_state() == state


def test_status_reports_release_and_health(host, first_release):
    out = playbook("playbooks/status.yml")
    for name in APPS:
        assert name in out
    assert out.count(f"active release: {first_release}") == len(APPS), out[-3000:]
    assert out.count(f"release {first_release}") >= 2 * len(APPS)  # each instance healthy on it
    assert "unhealthy" not in out
    # The lock, free, and the last run the ledger recorded: the rollback (its summary).
    assert f"deploy lock of hello (on {LB}): free" in out, out[-3000:]
    last = re.search(r"last run:.*?'?run (\S+): (\S+) by", out, re.S)
    assert last and last.group(2) == "rollback.yml", out[-3000:]


def test_a_lock_taken_by_hand_freezes_changes_until_released(host):
    """lock.yml takes the app's lock by hand with a message (an incident: no deploys); a change
    sent meanwhile is refused naming it, and changes nothing; lock.yml shows it, then releases it;
    the ledger records both."""
    playbook("playbooks/lock.yml", "-e", "lock=take", "-e", json.dumps({"deploy_message": "incident 42: no deploys"}))
    holder = lock_holder(LB, "hello")
    try:
        assert holder["playbook"] == "lock.yml (by hand)" and holder["message"] == "incident 42: no deploys", holder
        before = fleet_state()
        rc, out = run_playbook("site.yml", "-e", json.dumps({"app_settings": {**SETTINGS, "GREETING": "Frozen"}}))
        assert rc != 0 and "is held by" in out and "lock.yml (by hand)" in re.sub(r"\s+", " ", out), out[-3000:]
        assert all(c["changed"] == 0 for c in recap(out).values()), out[-3000:]
        assert_fleet_unchanged(before, fleet_state(), out)
        shown = re.sub(r"\s+", " ", playbook("playbooks/lock.yml"))
        assert f"deploy lock of hello (on {LB}): held by {holder['owner']} (lock.yml (by hand))" in shown, shown[-2000:]
    finally:
        playbook("playbooks/lock.yml", "-e", "lock=release")
    assert lock_holder(LB, "hello") == {}
    events = [(e["event"], e.get("message", "")) for e in ledger(LB, "hello") if e["kind"] == "lock"][-2:]
    assert events == [("taken by hand", "incident 42: no deploys"), ("released by hand", "")], events
    assert "): free" in playbook("playbooks/lock.yml")
