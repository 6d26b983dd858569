"""A third-party app, deployed by inventory variables only: guestbook/ knows nothing of the
collection (no health route, its own instance/config.py, pyproject-only packaging with a flit
build backend, SQLite in its instance folder). The gate needs nothing from it: the collection's
entry point adds the release header the gate reads, and the health page is the app's `/`.

Its fleet: an lb (ip_hash) in front of two app hosts, the app mounted under /guestbook: gb1
(Debian 12) uWSGI under systemd, gb2 (Debian 13) Gunicorn under supervisord, on unix sockets.
Every playbook runs with -e wsgideploy_app_group=gb_app -e wsgideploy_lb_group=gb_lb. Runs beside
the example app's tests (its own xdist worker); neither touches the other's fleet.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time

import pytest
import yaml
from wsgideploy_testlib import (assert_check_diff_clean, assert_fleet_unchanged, assert_serves_under, converge, finish,
                                ledger, load_during, lock_holder, recap, playbook, record_figure, run_playbook,
                                scenario_host, start_playbook, wait_for_lock, fleet_state as shared_fleet_state)

testinfra_hosts = ["ansible://wsgideploy-cluster-client"]

LB = "wsgideploy-cluster-gb-lb"
HELLO_LB = "wsgideploy-cluster-lb"
APPS = ["wsgideploy-cluster-gb1", "wsgideploy-cluster-gb2"]
PREFIX = "/guestbook"
HTTPS = f"https://{LB}{PREFIX}"
RUNS_UNDER = {APPS[0]: ("uwsgi", "systemd"), APPS[1]: ("gunicorn", "supervisord")}
FLEET = ("-e", "wsgideploy_app_group=gb_app", "-e", "wsgideploy_lb_group=gb_lb")


def fleet_state() -> dict[str, str]:
    return shared_fleet_state(APPS, LB)


def current_release(name: str) -> str:
    return os.path.basename(scenario_host(name).check_output("readlink /srv/guestbook/current"))


def head(client, url: str, *curl: str) -> tuple[int, dict[str, str], str]:
    """GET url from the client: status, headers (lower-case names), body."""
    out = client.check_output(
        "curl -sk -m 10 -D - -o /tmp/gb-body " + " ".join(shlex.quote(a) for a in (*curl, url)) + " && cat /tmp/gb-body")
    head_, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head_.split("\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def guestbook_copy(tmp_path, name: str, change) -> str:
    src = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "guestbook")
    dest = tmp_path / name
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "instance", "tests"))
    change(dest)
    return str(dest)


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def under_load(action, rate: int = 10) -> tuple[dict, object]:
    """Constant load on the app's own front page through its lb while action() runs (until 2 s
    after it returns)."""
    return load_during(action, "wsgideploy-cluster-client", HTTPS + "/", 600, rate, until_done=True)


@pytest.fixture(scope="module")
def first_release():
    releases = {current_release(name) for name in APPS}
    assert len(releases) == 1, releases
    return releases.pop()


def test_site_yml_serves_the_app_with_the_release_header(host, first_release):
    status, headers, body = head(host, HTTPS + "/")
    assert status == 200 and "<form" in body and 'name="csrf_token"' in body, body[:2000]
    # wsgi_app_release_header_visible: the client sees which release served it.
    assert headers.get("x-app-release") == first_release, headers
    # Mounted under the prefix: the app's own links carry it (url_for), its static files come from
    # the release through both nginx layers, and nothing outside the prefix reaches it.
    assert f'href="{PREFIX}/static/style.css"' in body and f'action="{PREFIX}/sign"' in body, body[:2000]
    assert head(host, HTTPS + "/static/style.css")[0] == 200
    assert head(host, f"https://{LB}/")[0] == 404
    assert head(host, f"https://{LB}/static/style.css")[0] == 404
    bare = host.check_output(f"curl -sk -o /dev/null -w '%{{http_code}} %{{redirect_url}}' https://{LB}{PREFIX}")
    assert bare == f"301 https://{LB}{PREFIX}/", bare
    # The example app's fleet keeps the header hidden (the default).
    _, hello_headers, _ = head(host, f"https://{HELLO_LB}/healthz")
    assert "x-app-release" not in hello_headers, hello_headers


def test_the_app_runs_from_source_with_its_pyproject_dependencies(host, first_release):
    for name in APPS:
        app = scenario_host(name)
        release = f"/srv/guestbook/releases/{first_release}"
        # No requirements file in the source: the release's is generated from pyproject.toml.
        assert "pyproject.toml" in app.check_output(f"head -1 {release}/requirements.txt")
        assert app.run(f"{release}/venv/bin/python -c 'import flask'").rc == 0
        # Run from the release dir, not installed.
        assert app.run(f"ls -d {release}/venv/lib/python3*/site-packages/guestbook*").rc != 0
        # The settings were rendered where the app reads them: its instance folder, in shared/.
        config = app.file("/srv/guestbook/shared/instance/config.py")
        assert config.exists and config.mode == 0o640 and config.group == "guestbook", name
        assert app.file(f"{release}/instance").linked_to == "/srv/guestbook/shared/instance"
        # The app server loads the collection's entry point, which loads the app's callable and
        # mounts it under the prefix.
        server, manager = RUNS_UNDER[name]
        mains = assert_serves_under(app, "guestbook", 2, server, manager)
        env = app.check_output(f"tr '\\0' '\\n' < /proc/{mains[0]['pid']}/environ")
        assert "WSGIDEPLOY_CALLABLE=guestbook:create_app()" in env and f"WSGIDEPLOY_URL_PREFIX={PREFIX}" in env, env
        if server == "uwsgi":
            assert "module = wsgideploy_release:application" in app.check_output("cat /etc/uwsgi/guestbook/guestbook-0.ini")
        else:
            conf = app.check_output("cat /etc/gunicorn/guestbook/guestbook-0.conf.py")
            assert 'wsgi_app = "wsgideploy_release:application"' in conf, conf


def sign(host, base: str, jar: str, name: str, message: str) -> str:
    """The form flow: GET / (a session with a csrf token), POST /sign; the entry's URL."""
    _, _, page = head(host, base + "/", "-c", jar, "-b", jar)
    token = re.search(r'name="csrf_token"\s+value="([^"]+)"', page).group(1)
    out = host.check_output(
        "curl -sk -m 10 -o /dev/null -w '%{http_code} %{redirect_url}' -c " + jar + " -b " + jar
        + " --data-urlencode " + shlex.quote(f"name={name}") + " --data-urlencode " + shlex.quote(f"message={message}")
        + " --data-urlencode " + shlex.quote(f"csrf_token={token}") + " " + shlex.quote(base + "/sign"))
    code, _, location = out.partition(" ")
    assert code == "303", out
    return location


def test_a_session_flow_through_the_lb(host):
    jar = "/tmp/gb-cookies"
    host.run(f"rm -f {jar}")
    entry = sign(host, HTTPS, jar, "Ada", "Hello through the lb")
    status, _, page = head(host, entry, "-b", jar)
    assert status == 200 and '<p id="message">Hello through the lb</p>' in page, page[:2000]
    _, _, index = head(host, HTTPS + "/", "-b", jar)
    assert re.search(r'<p id="who">\s*Signed in as Ada\s*</p>', index), index[:2000]
    # One SECRET_KEY for the fleet (app_settings): the session cookie the lb's host signed works on
    # every host, asked directly from the lb (the cookie is the lb's, so it is sent by hand; gb1's
    # firewall lets only its lb in).
    cookie = next(line.split("\t")[-1] for line in host.check_output(f"cat {jar}").splitlines()
                  if line.split("\t")[5:6] == ["session"])
    for name in APPS:
        _, _, page = head(scenario_host(LB), f"http://{name}{PREFIX}/", "-b", f"session={cookie}")
        assert re.search(r"Signed in as Ada", page), (name, page[:1000])
    # Without the session the form is refused (the csrf token lives in the session).
    code = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' --data 'name=x&message=y&csrf_token=forged' {HTTPS}/sign")
    assert code == "400", code


def test_check_diff_is_clean_on_this_fleet(host):
    # The scenario's converge, limited to this fleet (test_cluster.py checks the other one's).
    assert_check_diff_clean("--limit", "gb_lb:gb_app", hosts={LB, *APPS})


def test_a_run_tagged_lb_changes_the_lb_alone(host):
    """--tags lb, with changes pending for the app hosts too (uWSGI's and Gunicorn's timeouts): the
    lb takes its change, the app hosts' files and processes stay as they were. A whole run puts
    the lb back."""
    def hsts() -> str:
        return head(host, HTTPS + "/")[1].get("strict-transport-security", "")

    def servers() -> dict[str, str]:
        return {name: scenario_host(name).check_output("pgrep -u guestbook | sort") for name in APPS}

    before, pids = fleet_state(), servers()
    assert "max-age=31536000" in hsts()
    changes = json.dumps({"lb_hsts_max_age": 600, "uwsgi_harakiri": 31, "gunicorn_timeout": 31})
    try:
        out = converge("--limit", "gb_lb:gb_app", "--tags", "lb", "-e", changes)
        assert "max-age=600" in hsts(), out[-3000:]
        after = fleet_state()
        assert after[LB] != before[LB], out[-3000:]
        assert {name: after[name] for name in APPS} == {name: before[name] for name in APPS}, out[-3000:]
        assert servers() == pids, out[-3000:]
        counts = recap(out)
        assert all(counts[name]["changed"] == 0 for name in APPS) and counts[LB]["changed"] > 0, counts
    finally:
        back = converge("--limit", "gb_lb:gb_app")
    assert "max-age=31536000" in hsts(), back[-3000:]
    assert fleet_state() == before, back[-3000:]


@pytest.fixture(scope="module")
def v2_source(tmp_path_factory):
    def change(d):
        edit(d / "pyproject.toml", 'version = "1.0.0"', 'version = "1.1.0"')
        with open(d / "guestbook" / "static" / "style.css", "a") as fh:
            fh.write("\n/* 1.1.0 */\n")
    return guestbook_copy(tmp_path_factory.mktemp("gb-v2"), "guestbook", change)


def drained_on_lb(name: str) -> bool:
    """Whether an app host's upstream file on the lb has a server marked down."""
    return scenario_host(LB).run(f"grep -qs ' down;' /etc/nginx/wsgideploy/guestbook/*/{name}.conf").rc == 0


@pytest.fixture(scope="module")
def v3_source(tmp_path_factory, v2_source):
    def change(d):
        with open(d / "guestbook" / "static" / "style.css", "a") as fh:
            fh.write("\n/* 1.1.0, second build */\n")
    dest = tmp_path_factory.mktemp("gb-v3") / "guestbook"
    shutil.copytree(v2_source, dest)
    change(dest)
    return str(dest)


def test_rolling_deploy_of_the_next_version_as_a_package_under_load(host, first_release, v2_source, v3_source, tmp_path):
    """deploy.yml, install mode `package`: pip builds the app with its flit backend in an isolated
    build environment, which reaches the package index with the CA bundle only through pip's
    environment (Debian 12 and 13).

    Under the same load, the lock: a deploy whose controller is killed (SIGKILL) in the middle of
    gb1's switch (gb1 out of the lb) leaves the app's lock; the next deploy is refused, naming it
    and its age; a deploy that takes it over (deploy_lock_steal) switches both hosts, gated, puts
    gb1 back into the lb and records the steal; a deploy of v3 started meanwhile with
    deploy_lock_wait waits, then runs: the fleet ends on v3, every host in rotation."""
    jar = "/tmp/gb-cookies-deploy"
    host.run(f"rm -f {jar}")
    entry = sign(host, HTTPS, jar, "Grace", "Written before the deploy")
    package = ("-e", "wsgi_app_install_mode=package")
    reports = {name: tmp_path / f"{name}.json" for name in ("steal", "wait")}
    figures = {}

    def deploy():
        start = time.monotonic()
        killed = start_playbook("playbooks/deploy.yml", *FLEET, *package, "-e", f"wsgi_app_src={v2_source}",
                                "-e", json.dumps({"deploy_message": "killed mid-run"}))
        dead = wait_for_lock(LB, "guestbook")
        # Mid-switch: gb1 is out of the lb (its switch under way), gb2 serves alone.
        deadline = time.monotonic() + 600
        while not drained_on_lb(APPS[0]) and time.monotonic() < deadline and killed.poll() is None:
            time.sleep(0.3)
        assert killed.poll() is None, finish(killed)[1][-3000:]
        killed.kill()
        killed.communicate()
        figures["killed_run_seconds"] = round(time.monotonic() - start)
        time.sleep(2)
        refused = run_playbook("playbooks/deploy.yml", *FLEET, *package, "-e", f"wsgi_app_src={v2_source}")
        steal_start = time.monotonic()
        steal = start_playbook("playbooks/deploy.yml", *FLEET, *package, "-e", f"wsgi_app_src={v2_source}",
                               "-e", "deploy_lock_steal=true", "-e", f"deploy_report={reports['steal']}")
        stealer = wait_for_lock(LB, "guestbook", not_run=dead["run"])
        waiter = start_playbook("playbooks/deploy.yml", *FLEET, *package, "-e", f"wsgi_app_src={v3_source}",
                                "-e", "deploy_lock_wait=900", "-e", f"deploy_report={reports['wait']}")
        stolen = finish(steal)
        figures["steal_deploy_seconds"] = round(time.monotonic() - steal_start)
        waited = finish(waiter)
        figures["all_seconds"] = round(time.monotonic() - start)
        return dead, refused, stealer, stolen, waited

    load, (dead, (refused_rc, refused), stealer, (steal_rc, stolen), (wait_rc, waited)) = under_load(deploy)
    record_figure("guestbook_rolling_deploy", {**figures, "load_total": load["requests"],
                                               "load_failed": load["failed"], "load_seconds": load["duration_s"]})
    assert load["failed"] == 0, load
    assert load["requests"] >= load["duration_s"] * 10 * 0.9, load
    # The killed run's lock refused the next run, naming it and its age; that run changed nothing.
    assert refused_rc != 0, refused[-3000:]
    refusal = re.sub(r"\s+", " ", refused)
    assert f"is held by {dead['owner']} (deploy.yml, release {dead['release']}), taken {dead['started_at']}" in refusal, \
        refused[-3000:]
    assert re.search(r", (\d+ min )?\d+ s ago: \"killed mid-run\"", refusal) and "deploy_lock_steal=true" in refusal, refused[-3000:]
    assert all(c["changed"] == 0 for c in recap(refused).values()), refused[-3000:]
    # The steal ran the deploy and recorded the steal; the waiting run waited for it, then ran.
    assert steal_rc == 0, stolen[-6000:]
    assert wait_rc == 0, waited[-6000:]
    assert stealer["stolen_from"]["run"] == dead["run"], stealer
    steal_doc, wait_doc = (json.loads(reports[name].read_text()) for name in ("steal", "wait"))
    assert steal_doc["stolen_from"]["run"] == dead["run"] and steal_doc["result"] == "ok", steal_doc
    assert wait_doc["waited"] > 10 and wait_doc["result"] == "ok", wait_doc
    assert wait_doc["started_at"] < steal_doc["ended_at"] <= wait_doc["locked_at"], (steal_doc, wait_doc)
    # gb1's current may have moved before the kill; either way it was switched again, gated.
    assert all(h["result"] == "switched" and h["from"] in (first_release, steal_doc["release"])
               for h in steal_doc["hosts"]), steal_doc
    assert not any(drained_on_lb(name) for name in APPS), "a host left out of the lb"
    assert all(h["result"] == "switched" and h["from"] == steal_doc["release"] for h in wait_doc["hosts"]), wait_doc
    # The fleet is on one release, the waiting run's, as its report says; the lock is free.
    new = {current_release(name) for name in APPS}
    assert new == {wait_doc["release"]} and {h["to"] for h in wait_doc["hosts"]} == new, (new, wait_doc)
    assert lock_holder(LB, "guestbook") == {}
    entries = ledger(LB, "guestbook")
    assert [e["event"] for e in entries if e["kind"] == "lock"][-1:] == ["stolen"], entries[-5:]
    assert [e["run"] for e in entries if e["kind"] == "run"][-2:] == [steal_doc["run"], wait_doc["run"]], entries[-5:]
    history = playbook("playbooks/history.yml", *FLEET, "-e", "history_count=3")
    rows = re.findall(r"\d{4}-\d\d-\d\dT[\d:]+Z (lock stolen|ok|failed) +(\S+)", re.sub(r"\s+", " ", history))
    assert rows == [("lock stolen", "-"), ("ok", "deploy.yml"), ("ok", "deploy.yml")], history[-3000:]
    release = new.pop()
    for name in APPS:
        app = scenario_host(name)
        dist = app.check_output(f"ls -d /srv/guestbook/releases/{release}/venv/lib/python3*/site-packages/guestbook-*.dist-info")
        assert dist.endswith("guestbook-1.1.0.dist-info"), (name, dist)
        _, headers, _ = head(scenario_host(LB), f"http://{name}{PREFIX}/")
        assert headers.get("x-app-release") == release, (name, headers)
    # The data and the session survived the release (shared instance folder, same SECRET_KEY).
    status, _, page = head(host, entry, "-b", jar)
    assert status == 200 and "Written before the deploy" in page, page[:1000]
    assert "/* 1.1.0, second build */" in head(host, HTTPS + "/static/style.css")[2]


def test_rollback_under_load(host, first_release):
    # Two deploys (v2, then v3) came before: straight back to the first release.
    load, _ = under_load(lambda: playbook("playbooks/rollback.yml", *FLEET, "-e", f"rollback_to={first_release}"))
    record_figure("guestbook_rollback", {"load_total": load["requests"], "load_failed": load["failed"],
                                         "load_seconds": load["duration_s"]})
    assert load["failed"] == 0, load
    assert {current_release(name) for name in APPS} == {first_release}
    _, headers, _ = head(host, HTTPS + "/")
    assert headers.get("x-app-release") == first_release, headers


def test_a_front_page_that_answers_500_fails_the_gate_and_changes_nothing(host, first_release, tmp_path):
    def change(d):
        edit(d / "guestbook" / "views.py", "    entries = get_db().execute(",
             "    raise RuntimeError('broken front page')\n    entries = get_db().execute(")
    broken = guestbook_copy(tmp_path, "guestbook", change)
    before = fleet_state()
    start = time.monotonic()
    load, (rc, out) = under_load(lambda: run_playbook("site.yml", *FLEET, "-e", f"wsgi_app_src={broken}"))
    seconds = round(time.monotonic() - start)
    record_figure("guestbook_health_500", {"playbook_rc": rc, "playbook_seconds": seconds,
                                           "load_total": load["requests"], "load_failed": load["failed"]})
    assert rc != 0, out[-3000:]
    assert f"failed on {APPS[0]}" in out and f"status 500 on {PREFIX}/" in out, out[-4000:]
    assert load["failed"] == 0, load
    new = re.search(r"The change \(release (\w+)\) failed", out).group(1)
    # gb2 prepared the release and never switched to it: its directory is left out.
    assert_fleet_unchanged(before, fleet_state(), out, prepared=new)
    assert {current_release(name) for name in APPS} == {first_release}


def knock(client, name: str) -> int:
    """curl's exit code for a GET of an app host's nginx from `client` (28: timed out, dropped)."""
    return client.run(f"curl -s -o /dev/null -m 3 http://{name}{PREFIX}/").rc


def test_the_firewall_lets_only_the_lb_in(host):
    """gb1 runs the firewall (firewall_enabled): its nginx answers its lb, and drops the client
    and the other fleet's lb; gb2, without it, answers everyone (the control)."""
    gb1, gb2 = APPS
    assert knock(scenario_host(LB), gb1) == 0
    assert knock(host, gb1) == 28
    assert knock(scenario_host(HELLO_LB), gb1) == 28
    assert knock(host, gb2) == 0
    # Its table, with the lb's address; SSH still lets Ansible (and these tests) in.
    lb_address = scenario_host(LB).check_output("hostname -I").split()[0]
    table = scenario_host(gb1).check_output("nft list table inet wsgideploy")
    assert lb_address in table and "policy drop" in table, table


def test_a_firewall_change_that_shuts_out_the_lb_is_put_back(host):
    """A wrong lb address (firewall_address) would let nobody in: the check from the lb fails,
    the previous ruleset is loaded again and the run fails, naming the host; nothing else changed."""
    gb1 = scenario_host(APPS[0])
    before = fleet_state()
    ruleset = gb1.check_output("sha256sum /etc/wsgideploy/firewall.nft")
    rc, out = run_playbook("site.yml", *FLEET, "-e", "firewall_address=192.0.2.1")
    assert rc != 0, out[-3000:]
    assert f"firewall on {APPS[0]}: the new ruleset was put back" in out, out[-4000:]
    assert "192.0.2.1" not in gb1.check_output("nft list table inet wsgideploy")
    assert gb1.check_output("sha256sum /etc/wsgideploy/firewall.nft") == ruleset
    assert knock(scenario_host(LB), APPS[0]) == 0
    assert_fleet_unchanged(before, fleet_state(), out)


# A second app on this fleet's hosts and lb: a Django site (djangosite/) that knows nothing of the
# collection either, from an inventory of its own.
DJANGO = "django-on-gb.test"  # its host name at the lb (the client resolves it to the lb)
DJANGO_URL = f"https://{DJANGO}"
DJANGO_TOKEN_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ADMIN_CSS = "/static/admin/css/base.css"
# Every hook leaves a line in shared/data/hooks.log: its phase, the action, the release, the user
# it ran as, and whether it could write into the release.
HOOK_LOG = ("bash -c 'echo \"$WSGIDEPLOY_PHASE $WSGIDEPLOY_ACTION $WSGIDEPLOY_RELEASE $(id -un)"
            " $(test -w . && echo writable || echo read-only)\" >> \"$WSGIDEPLOY_SHARED/data/hooks.log\"'")


def django_inventory(tmp_path) -> str:
    """This fleet's inventory for its second app: the same hosts (and their own variables: gb1's
    firewall, gb2's Gunicorn under supervisord), the Django site's definition in place of the
    guestbook's, as its README's recipe has it (settings module and the rest through the
    environment, collectstatic a build hook, migrate after install); at the lb a host name of its
    own, and not the default server (the guestbook keeps that)."""
    src = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    dst = tmp_path / "django-inventory"
    shutil.copytree(src, dst)
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    log = {"name": "Log the phase", "command": HOOK_LOG}
    definition = {
        "wsgi_app_name": "djangosite",
        "wsgi_app_src": f"{project}/djangosite",
        "wsgi_app_callable": "project.wsgi:application",
        "wsgi_app_instances": 2,
        "wsgi_app_release_header_visible": True,
        # collectstatic's STATIC_ROOT, in the release: nginx serves it.
        "wsgi_app_static_path": "staticfiles",
        "wsgi_app_static_url": "/static/",
        "wsgi_app_environment": {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_SECRET_KEY_FILE": "/srv/djangosite/shared/secret_key",
            # Each host its own SQLite database (the lb keeps a client on one host, ip_hash).
            "DJANGO_DATABASE_PATH": "/srv/djangosite/shared/data/db.sqlite3",
            # Its name at the lb, the app hosts' own names, and localhost (the health gate's).
            "DJANGO_ALLOWED_HOSTS": ",".join([DJANGO, *APPS, "localhost"]),
            "DJANGO_CSRF_TRUSTED_ORIGINS": DJANGO_URL,
            "DJANGO_TRUST_X_FORWARDED_PROTO": "1",
        },
        "app_hooks_build": [{"name": "Collect the static files", "command": "python manage.py collectstatic --noinput"},
                            # A generated module nothing imports: only the release's precompile
                            # (after the build) gives it bytecode.
                            {"name": "Write the build's own module",
                             "command": "bash -c 'echo \"RELEASE = \\\"$WSGIDEPLOY_RELEASE\\\"\" > project/build_info.py'"},
                            log],
        # Each host has its own database, so every host migrates (with a database server:
        # run_once).
        "app_hooks_after_install": [{"name": "Migrate the database", "command": "python manage.py migrate --noinput"},
                                    log],
        "app_hooks_before_switch": [log],
        "app_hooks_after_switch": [log],
    }
    (dst / "group_vars" / "guestbook").write_text(yaml.safe_dump(definition))
    (dst / "group_vars" / "gb_lb").write_text(yaml.safe_dump(
        {"lb_backend_group": "gb_app", "lb_method": "ip_hash", "lb_server_names": [DJANGO],
         "lb_default_server": False}))
    return str(dst / os.path.basename(os.environ["MOLECULE_INVENTORY_FILE"]))


def django_release() -> set[str]:
    return {os.path.basename(scenario_host(n).check_output("readlink /srv/djangosite/current")) for n in APPS}


def add_note(client, author: str, text: str) -> None:
    """The form flow as a browser has it: GET / (a csrftoken cookie and the token in the form),
    POST / with both, Origin and Referer; a redirect to /, and the note on the page."""
    jar = "/tmp/dj-cookies"
    client.run(f"rm -f {jar}")
    status, _, page = head(client, DJANGO_URL + "/", "-c", jar, "-b", jar)
    assert status == 200, page[:2000]
    token = DJANGO_TOKEN_RE.search(page).group(1)
    out = client.check_output(
        "curl -sk -m 10 -o /dev/null -w '%{http_code} %{redirect_url}' -c " + jar + " -b " + jar
        + f" -H 'Origin: {DJANGO_URL}' -H 'Referer: {DJANGO_URL}/'"
        + " --data-urlencode " + shlex.quote(f"author={author}") + " --data-urlencode " + shlex.quote(f"text={text}")
        + " --data-urlencode " + shlex.quote(f"csrfmiddlewaretoken={token}") + " " + shlex.quote(DJANGO_URL + "/"))
    assert out == f"302 {DJANGO_URL}/", out
    _, _, page = head(client, DJANGO_URL + "/", "-b", jar)
    assert f"<b>{author}</b>: {text}" in page, page[:2000]


def assert_django_site(client, release: str) -> None:
    """The Django site's release `release`, from outside: its form page through the lb, the admin's
    login page and its stylesheet, served by nginx from the release's collected static files; the
    release sealed after its build; every hook of it as the app user."""
    status, headers, page = head(client, DJANGO_URL + "/")
    assert status == 200 and DJANGO_TOKEN_RE.search(page), page[:2000]
    assert headers.get("x-app-release") == release, headers
    out = client.check_output(f"curl -sk -o /dev/null -w '%{{http_code}} %{{redirect_url}}' {DJANGO_URL}/admin/")
    assert out == f"302 {DJANGO_URL}/admin/login/?next=/admin/", out
    status, _, login = head(client, DJANGO_URL + "/admin/login/?next=/admin/")
    assert status == 200 and f'href="{ADMIN_CSS}"' in login, login[:2000]
    # The stylesheet is the release's collected file, sent by nginx: a static file's headers
    # (ETag, Last-Modified), none of the app's (the release header the collection's entry point
    # adds to every answer of the app).
    status, headers, css = head(client, DJANGO_URL + ADMIN_CSS)
    assert status == 200 and "etag" in headers and "last-modified" in headers, headers
    assert "x-app-release" not in headers, headers
    digest = client.check_output(f"curl -sk {DJANGO_URL}{ADMIN_CSS} | sha256sum")
    root = f"/srv/djangosite/releases/{release}"
    for name in APPS:
        app = scenario_host(name)
        assert app.check_output(f"sha256sum < {root}/staticfiles{ADMIN_CSS.removeprefix('/static')}") == digest, name
        # Sealed: root's, nothing in it writable but by root (links aside: their mode means
        # nothing), and the app user cannot write into it; the shared virtualenv is root's too.
        loose = app.check_output(f"find -P {root} \\( ! -user root -o ! -group root -o \\( ! -type l -perm /022 \\) \\) -print")
        assert loose == "", (name, loose)
        assert app.run(f"runuser -u djangosite -- test -w {root}").rc != 0, name
        assert app.run(f"runuser -u djangosite -- test -w {root}/staticfiles/admin").rc != 0, name
        venv = app.check_output(f"readlink -f {root}/venv")
        assert venv.startswith("/srv/djangosite/venvs/"), venv
        assert app.check_output(f"find -P {venv} ! -user root -print -quit") == "", name
        # Compiled after the build: the module the build wrote has its bytecode (root's, the find
        # above says).
        assert app.check_output(f"cat {root}/project/build_info.py") == f'RELEASE = "{release}"', name
        assert app.run(f"ls {root}/project/__pycache__/build_info.*.pyc").rc == 0, name
        # Every hook of this release ran as the app user: the build in a writable release, the
        # others in the sealed one.
        lines = [line.split() for line in app.check_output("cat /srv/djangosite/shared/data/hooks.log").splitlines()]
        mine = [line for line in lines if line[2] == release]
        assert {line[0] for line in mine} >= {"build", "after_install"}, (name, lines)
        assert all(line[3] == "djangosite" for line in lines), (name, lines)
        assert all(line[4] == ("writable" if line[0] == "build" else "read-only") for line in lines), (name, lines)


def app_state(name: str, app: str) -> str:
    """What a change of the other app must leave as it is on an app host: this app's release, its
    processes (PIDs: not even reloaded), its config, units and nginx files."""
    return scenario_host(name).check_output(
        f"readlink /srv/{app}/current; pgrep -u {app} | sort; cd / && sha256sum /etc/uwsgi/{app}/*.ini"
        f" /etc/gunicorn/{app}/*.py /etc/systemd/system/{app}*.service /etc/supervisor/conf.d/{app}.conf"
        f" /etc/nginx/conf.d/{app}.conf /etc/nginx/wsgideploy-servers/*/{app}.conf 2>/dev/null; true")


def lb_app_state(app: str) -> str:
    return scenario_host(LB).check_output(
        f"cd / && sha256sum /etc/nginx/conf.d/{app}-lb.conf /etc/nginx/wsgideploy/{app}/*/*.conf"
        f" /etc/ansible/facts.d/wsgideploy_lb_{app}.fact 2>/dev/null; true")


def both_under_load(action) -> tuple[dict, dict, object]:
    """The guestbook's front page and the Django site's form page, each under constant load
    through the lb, while action() runs: (guestbook's load, the Django site's load, action's
    result)."""
    def with_django():
        return load_during(action, "wsgideploy-cluster-client", DJANGO_URL + "/", 600, 10, until_done=True)
    gb, (django, result) = under_load(with_django)
    return gb, django, result


def test_a_second_app_on_the_same_hosts_and_lb(host, tmp_path):
    """A Django site joins the guestbook's hosts and lb: its own user, releases, instances,
    sockets and units; at the app hosts the root of the server the guestbook is mounted in
    (/guestbook), at the lb a host name of its own. Its releases are built by its own steps
    (collectstatic as a build hook, migrate after install, every hook as its user), then sealed;
    its admin's static files are served by nginx. Its first deploy and a new release rolled under
    load leave the guestbook's processes, release and files as they were; then its rollback and a
    settings change of the guestbook run at the same time, each under its own lock. No request of
    either fails."""
    inventory = django_inventory(tmp_path)
    lb_address = scenario_host(LB).check_output("hostname -I").split()[0]
    # /etc/hosts is Docker's bind mount (no sed -i): the line is appended once.
    host.run_test(f"grep -qx '{lb_address} {DJANGO}' /etc/hosts || echo '{lb_address} {DJANGO}' >> /etc/hosts")
    figures = {}

    def untouched(app: str, action):
        before = {name: app_state(name, app) for name in APPS} | {LB: lb_app_state(app)}
        gb, django, out = both_under_load(action)
        after = {name: app_state(name, app) for name in APPS} | {LB: lb_app_state(app)}
        assert after == before, (app, before, after, str(out)[-3000:])
        assert gb["failed"] == 0 and django["failed"] == 0, (gb, django)
        return gb, django

    # First deploy: the guestbook is read under load meanwhile (the Django site's load starts with it).
    before = {name: app_state(name, "guestbook") for name in APPS} | {LB: lb_app_state("guestbook")}
    gb, _ = under_load(lambda: playbook("site.yml", *FLEET, inventory=inventory))
    assert gb["failed"] == 0, gb
    assert {name: app_state(name, "guestbook") for name in APPS} | {LB: lb_app_state("guestbook")} == before
    figures["first_deploy_guestbook"] = {"total": gb["requests"], "failed": gb["failed"]}
    for name in APPS:
        server, manager = RUNS_UNDER[name]
        assert_serves_under(scenario_host(name), "djangosite", 2, server, manager)
        assert_serves_under(scenario_host(name), "guestbook", 2, server, manager)
    # One server block at the app hosts, two apps in it; two sites at the lb.
    gb1 = scenario_host(APPS[0])
    assert gb1.check_output("ls /etc/nginx/wsgideploy-servers/default") == "djangosite.conf\nguestbook.conf"
    assert gb1.run("grep -l default_server /etc/nginx/conf.d/*.conf").stdout.split() == [
        "/etc/nginx/conf.d/wsgideploy-server-default.conf"]
    first = django_release()
    assert len(first) == 1, first
    assert_django_site(host, *first)
    add_note(host, "Ada", "Written on the first release")
    status, _, page = head(host, HTTPS + "/")
    assert status == 200 and "Guestbook" in page, page[:500]

    # A new release of the Django site (a template changed), rolled under load on both apps: the
    # guestbook is not touched.
    v2 = tmp_path / "djangosite-v2"
    shutil.copytree(os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "djangosite"), v2,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "staticfiles", "db.sqlite3", "tests"))
    edit(v2 / "notes" / "templates" / "notes" / "index.html", "<h1>Notes</h1>", "<h1>Notes, v2</h1>")
    gb, django = untouched("guestbook", lambda: playbook("playbooks/deploy.yml", *FLEET, "-e", f"wsgi_app_src={v2}",
                                                         inventory=inventory))
    figures["django_deploy"] = {"guestbook_total": gb["requests"], "guestbook_failed": gb["failed"],
                                "django_total": django["requests"], "django_failed": django["failed"]}
    second = django_release()
    assert len(second) == 1 and second != first, (first, second)
    assert_django_site(host, *second)
    # The data survived the release (the database in shared/).
    status, _, page = head(host, DJANGO_URL + "/")
    assert "<h1>Notes, v2</h1>" in page and "<b>Ada</b>: Written on the first release" in page, page[:2000]

    # At the same time, each app under its own lock (two directories on the same lb): the Django
    # site's rollback, and a settings change of the guestbook that rolls through its hosts (its
    # instances reload). Both hold their locks at once; neither waits for the other.
    settings = {"app_settings": {"SECRET_KEY": "guestbook-molecule-secret-key-not-for-production",
                                 "GUESTBOOK_NOTE": "beside the Django site"}}

    def both_at_once():
        rollback = start_playbook("playbooks/rollback.yml", *FLEET, inventory=inventory)
        django_holder = wait_for_lock(LB, "djangosite")
        gb_run = start_playbook("site.yml", *FLEET, "-e", json.dumps(settings))
        gb_holder = wait_for_lock(LB, "guestbook")
        overlap = lock_holder(LB, "djangosite")
        return django_holder, gb_holder, overlap, finish(rollback), finish(gb_run)

    gb, django, (django_holder, gb_holder, overlap, (rollback_rc, rollback_out), (gb_rc, gb_out)) = \
        both_under_load(both_at_once)
    figures["django_rollback_and_guestbook_settings_at_once"] = {
        "guestbook_total": gb["requests"], "guestbook_failed": gb["failed"],
        "django_total": django["requests"], "django_failed": django["failed"]}
    assert rollback_rc == 0, rollback_out[-6000:]
    assert gb_rc == 0, gb_out[-6000:]
    assert gb["failed"] == 0 and django["failed"] == 0, (gb, django)
    assert overlap.get("run") == django_holder["run"] != gb_holder["run"], (django_holder, gb_holder, overlap)
    assert "Switch the running app hosts" in gb_out and "Switch the running app hosts" in rollback_out
    assert django_release() == first
    assert_django_site(host, *first)
    add_note(host, "Grace", "Written after the rollback")
    assert "beside the Django site" in scenario_host(APPS[0]).check_output("cat /srv/guestbook/shared/instance/config.py")
    assert [e["playbook"] for e in ledger(LB, "djangosite") if e["kind"] == "run"][-1] == "rollback.yml"
    assert [e["playbook"] for e in ledger(LB, "guestbook") if e["kind"] == "run"][-1] == "site.yml"
    # A second run of the Django site's definition changes nothing (its sealed release included).
    assert all(c["changed"] == 0 for c in recap(playbook("site.yml", *FLEET, inventory=inventory)).values())
    record_figure("two_apps", figures)


def test_uninstall_removes_the_app_and_keeps_its_data(host):
    """Last: playbooks/uninstall.yml takes the app off its lb, then off its hosts (whichever app
    server and process manager runs it); shared/ stays until app_remove_shared; nginx goes on
    serving on every host, and the other app on them (the Django site) too; a second run changes
    nothing."""
    out = playbook("playbooks/uninstall.yml", *FLEET)
    counts = recap(out)
    assert set(counts) == {LB, *APPS} and all(c["changed"] > 0 for c in counts.values()), counts
    lb = scenario_host(LB)
    assert lb.run(f"ls /etc/nginx/conf.d/guestbook-lb.conf /etc/nginx/wsgideploy/guestbook").rc != 0
    assert lb.service("nginx").is_running and lb.run("nginx -t -q").rc == 0
    # The lb no longer serves it: nothing of the app answers on its HTTPS port (nginx's 404, or a
    # 400 from the Django site, now the lb's only site there, which refuses the host name).
    assert head_code(host, f"{HTTPS}/") in (0, 400, 404)
    assert "Guestbook" not in head(host, f"{HTTPS}/")[2]
    for name in APPS:
        app = scenario_host(name)
        assert app.check_output("pgrep -u guestbook -c || true") == "0", name
        assert app.check_output("ls /srv/guestbook") == "shared", name
        assert app.check_output("ls /etc/uwsgi/guestbook /etc/gunicorn/guestbook /etc/nginx/conf.d/guestbook.conf "
                                "/etc/systemd/system/guestbook* /etc/supervisor/conf.d/guestbook.conf "
                                "/var/lib/wsgideploy/guestbook 2>/dev/null || true") == "", name
        assert app.service("nginx").is_running and app.run("nginx -t -q").rc == 0, name
        # The Django site (test_a_second_app_on_the_same_hosts_and_lb) stays, alone in the server block.
        assert app.check_output("ls /etc/nginx/wsgideploy-servers/default") == "djangosite.conf", name
        assert app.check_output("pgrep -u djangosite -c || true") != "0", name
    status, _, page = head(host, DJANGO_URL + "/")
    assert status == 200 and DJANGO_TOKEN_RE.search(page), page[:1000]
    assert head(host, DJANGO_URL + ADMIN_CSS)[0] == 200
    assert all(c["changed"] == 0 for c in recap(playbook("playbooks/uninstall.yml", *FLEET)).values())
    playbook("playbooks/uninstall.yml", *FLEET, "-e", "app_remove_shared=true", "--limit", APPS[0])
    assert scenario_host(APPS[0]).run("test -e /srv/guestbook").rc != 0


def head_code(client, url: str) -> int:
    """The HTTP status of a GET (0: no HTTP answer at all)."""
    return int(client.run(f"curl -sk -o /dev/null -w '%{{http_code}}' -m 5 {url}").stdout or 0)
