"""The cluster seen from outside: a client container talks to the load balancer.

Load is bounded (requests, seconds) and only ever targets the scenario's own containers.
The tests run in file order; the topology switch comes last and restores the host topology.
These are the example app's hosts (site.yml's default groups); test_guestbook.py has the
third-party app's.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import time

import pytest
import yaml
from wsgideploy_testlib import (assert_check_diff_clean, assert_fleet_unchanged, assert_serves_under, converge,
                                fleet_state, gixy_report, host_state, load_during, loadgen, playbook, recap,
                                record_figure, run_playbook, scenario_host)

testinfra_hosts = ["ansible://wsgideploy-cluster-client"]

LB = "wsgideploy-cluster-lb"
CLIENT = "wsgideploy-cluster-client"
APPS = ["wsgideploy-cluster-app1", "wsgideploy-cluster-app2", "wsgideploy-cluster-app3"]
HTTPS = f"https://{LB}"
INSTANCES = {f"{h}/hello-{i}" for h in APPS for i in (0, 1)}
# Each app host's app server and process manager (molecule.yml's host_vars).
RUNS_UNDER = {APPS[0]: ("uwsgi", "systemd"), APPS[1]: ("gunicorn", "systemd"), APPS[2]: ("uwsgi", "supervisord")}


def sequential(host, path: str = "/healthz", n: int = 30) -> dict:
    return loadgen(host, HTTPS + path, "--insecure", "--requests", str(n), "--concurrency", "1", "--duration", "60")


def wait_in_rotation(host, app: str, seconds: int = 30) -> dict:
    """Sequential rounds until `app` answers again (passive health checks re-admit it)."""
    deadline = time.monotonic() + seconds
    while True:
        res = sequential(host, n=12)
        if res["by_host"].get(app) or time.monotonic() > deadline:
            return res
        time.sleep(1)


def test_every_app_host_serves_requests(host):
    res = sequential(host)
    record_figure("distribution_host_topology", res["by_host"])
    assert res["failed"] == 0, res
    assert set(res["by_host"]) == set(APPS), res
    # least_conn with no concurrency rotates evenly.
    assert min(res["by_host"].values()) >= 5, res


@pytest.mark.parametrize("name", [LB, *APPS])
def test_hosts_are_reached_over_ssh_as_a_non_root_deploy_user(name):
    """The scenario runs as a real fleet: SSH, a deploy user with a key, sudo for root; no root
    login, no password login."""
    plain = scenario_host(name, sudo=False)
    assert plain.check_output("id -un") == "deploy"
    assert plain.check_output("sudo -n id -un") == "root"
    sshd = scenario_host(name).check_output("sshd -T 2>/dev/null | grep -E '^(permitrootlogin|passwordauthentication) '")
    assert "permitrootlogin no" in sshd and "passwordauthentication no" in sshd, sshd
    # What Ansible itself used for this host (molecule's inventory): SSH to the published port.
    inventory_vars = plain.backend.get_variables()
    assert inventory_vars.get("ansible_connection") == "ssh" and inventory_vars.get("ansible_user") == "deploy", inventory_vars


@pytest.mark.parametrize("name", APPS)
def test_each_host_runs_its_app_server_under_its_process_manager(host, name):
    server, manager = RUNS_UNDER[name]
    assert_serves_under(scenario_host(name), "hello", 2, server, manager)
    # Its own nginx answers, from the client, whatever runs behind it.
    code = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' http://{name}/healthz")
    assert code == "200", (name, code)


def test_logs_playbook_reads_every_host(host):
    """One command for every host's logs: a request through the lb shows up in the lb's and an
    app host's nginx logs, and each app host shows its instances' output under its own process
    manager (the journal for systemd, supervisord's files for app3)."""
    marker = f"/log-marker-{time.time_ns()}"
    host.run(f"curl -sk -o /dev/null -m 10 {HTTPS}{marker}")
    time.sleep(2.5)  # nginx writes its access log at least every second
    out = playbook("playbooks/logs.yml", "-e", "logs_lines=300", "--limit", ",".join([LB, *APPS]))
    counts = recap(out)
    assert set(counts) == {LB, *APPS}, counts
    assert all(c.get("failed", 0) == 0 and c.get("changed", 0) == 0 for c in counts.values()), counts
    assert out.count(marker) >= 2, out[-4000:]  # the lb's line and the app host's
    assert "WSGI app 0" in out and "Booting worker" in out, out[-4000:]  # uWSGI's and Gunicorn's output


def test_nginx_counters_are_refused_from_another_host(host):
    for name in (LB, APPS[0]):
        refused = host.run(f"curl -sS -m 5 http://{name}:8099/nginx_status")
        assert refused.rc == 7, (name, refused.rc, refused.stdout)
        local = scenario_host(name).check_output("curl -sS -m 5 http://127.0.0.1:8099/nginx_status")
        assert local.startswith("Active connections:"), (name, local)


@pytest.mark.parametrize("name", APPS)
def test_app_host_nginx_fails_nothing_under_closed_loop_load(host, name):
    """Each app host's nginx -> its instances, as fast as they answer, from many connections at once
    (HTTP on every host here: uWSGI's http-socket on app1 and app3, Gunicorn's gthread on app2).
    nginx must never send a request on a connection the instance has closed or is closing: uWSGI's
    http-socket closes after every answer, Gunicorn after its keep-alive seconds."""
    res = loadgen(host, f"http://{name}/healthz", "--requests", "4000", "--concurrency", "48", "--duration", "60",
                  "--timeout", "10")
    record_figure(f"closed_loop_app_host_nginx_{name}", {k: res[k] for k in ("requests", "failed", "errors")}
                  | {"rps": res["rate_achieved"]})
    assert res["requests"] >= 1000 and res["failed"] == 0, res
    # Both instances kept serving: none was taken out as failed (max_fails) along the way.
    assert {i.split("/")[1] for i in res["by_instance"] if i.startswith(name + "/")} == {"hello-0", "hello-1"}, res


def test_page_names_the_backend_that_served_it(host):
    page = host.check_output(f"curl -sk {HTTPS}/")
    served_by = re.search(r'<span id="host">([^<]+)</span>', page).group(1)
    assert served_by in APPS


def test_http_redirects_to_https(host):
    head = host.check_output(f"curl -sS -o /dev/null -D - 'http://{LB}/some/page?x=1'")
    assert head.splitlines()[0].split()[1] == "301"
    assert re.search(rf"^Location: https://{LB}/some/page\?x=1\r?$", head, re.M | re.I), head


def test_hsts_on_https(host):
    head = host.check_output(f"curl -sk -o /dev/null -D - {HTTPS}/")
    assert re.search(r"^Strict-Transport-Security: max-age=\d+", head, re.M | re.I), head


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin",
                    "Content-Security-Policy": "frame-ancestors 'self'"}


def handshake_done(res) -> bool:
    """Whether `openssl s_client` agreed on a cipher; a failed handshake reports "Cipher is (NONE)"."""
    return res.rc == 0 and re.search(r"Cipher is (?!\(NONE\))", res.stdout) is not None


def header_values(head: str, name: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith(name.lower() + ":")]


@pytest.mark.parametrize("url", [f"http://{LB}/some/page", f"{HTTPS}/healthz", f"{HTTPS}/no-such-page"])
def test_security_headers_on_every_answer(host, url):
    """The lb's headers (lb_security_headers) on its own redirect, the app's answer and the app's 404, once each."""
    head = host.check_output(f"curl -sk -o /dev/null -D - '{url}'")
    for name, value in SECURITY_HEADERS.items():
        assert header_values(head, name) == [value], head


def test_the_apps_own_header_wins(host):
    """The example app sends Cache-Control: no-store on /healthz; the lb's value for it (molecule.yml:
    private) goes only on answers that lack one, such as the lb's own redirect."""
    app = host.check_output(f"curl -sk -o /dev/null -D - {HTTPS}/healthz")
    assert header_values(app, "Cache-Control") == ["no-store"], app
    redirect = host.check_output(f"curl -sS -o /dev/null -D - http://{LB}/")
    assert header_values(redirect, "Cache-Control") == ["private"], redirect


@pytest.mark.parametrize(("groups", "accepted"), [("X25519", True), ("prime256v1", True), ("secp521r1", False),
                                                  ("ffdhe2048", False)])
def test_key_exchange_groups_are_mozilla_intermediates(host, groups, accepted):
    """ssl_ecdh_curve X25519:prime256v1:secp384r1: a client that offers only another group is refused."""
    res = host.run(f"openssl s_client -connect {LB}:443 -servername {LB} -groups {groups} </dev/null")
    assert handshake_done(res) == accepted, res.stdout[-1500:] + res.stderr[-500:]


def test_no_ocsp_stapling_for_a_self_signed_certificate(host):
    """A self-signed certificate names no OCSP responder: lb_tls_ocsp_stapling is off by default for it."""
    res = host.run(f"openssl s_client -connect {LB}:443 -servername {LB} -status </dev/null")
    assert "OCSP response: no response sent" in res.stdout, res.stdout[-1500:]


@pytest.mark.parametrize(("flag", "accepted"), [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)])
def test_only_tls_12_and_newer(host, flag, accepted):
    # The client is made willing to speak old protocols (security level 0): only the server refuses.
    cipher = "-cipher DEFAULT@SECLEVEL=0" if flag in ("-tls1", "-tls1_1") else ""
    res = host.run(f"openssl s_client -connect {LB}:443 -servername {LB} {flag} {cipher} </dev/null")
    assert handshake_done(res) == accepted, res.stdout[-1500:] + res.stderr[-500:]


def test_app_sees_the_real_client_and_https(host):
    client_ip = host.check_output("hostname -I").split()[0]
    doc = host.check_output(f"curl -sk {HTTPS}/whoami")
    assert f'"remote_addr":"{client_ip}"' in doc, doc
    assert '"scheme":"https"' in doc, doc
    # A forged X-Forwarded-For from the client changes nothing: only the nginx hops are trusted.
    forged = host.check_output(f"curl -sk -H 'X-Forwarded-For: 203.0.113.66' {HTTPS}/whoami")
    assert f'"remote_addr":"{client_ip}"' in forged, forged


def run_load_while(action, seconds: int = 20, rate: int = 20) -> dict:
    """Constant load through the lb for `seconds` while `action()` runs; the load summary."""
    return load_during(action, CLIENT, HTTPS + "/healthz", seconds, rate)[0]


def test_stopping_one_app_host_loses_no_request(host):
    app2 = scenario_host(APPS[1])

    def stop_and_start():
        time.sleep(5)
        app2.run_test("systemctl stop hello.target")
        assert not app2.service("hello-0.service").is_running
        time.sleep(7)
        app2.run_test("systemctl start hello.target")

    res = run_load_while(stop_and_start)
    record_figure("failover_host_topology", {"total": res["requests"], "failed": res["failed"], "by_host": res["by_host"]})
    assert res["requests"] >= 300, res
    assert res["failed"] == 0, res
    # Started again, it comes back into rotation.
    back = wait_in_rotation(host, APPS[1])
    assert back["by_host"].get(APPS[1]), back


def test_drain_takes_a_host_out_and_back_without_errors(host):
    def drain():
        time.sleep(3)
        playbook("playbooks/drain.yml", "-e", f"drain={APPS[2]}")

    res = run_load_while(drain, seconds=15)
    assert res["failed"] == 0, res
    drained = sequential(host, n=18)
    assert APPS[2] not in drained["by_host"], drained
    # A full converge keeps the drain (it is kept on the lb, not in a template edit).
    out = playbook("site.yml", "--limit", LB)
    assert recap(out)[LB]["changed"] == 0
    assert APPS[2] not in sequential(host, n=12)["by_host"]

    def undrain():
        time.sleep(3)
        playbook("playbooks/drain.yml", "-e", f"undrain={APPS[2]}")

    res = run_load_while(undrain, seconds=15)
    assert res["failed"] == 0, res
    assert sequential(host, n=18)["by_host"].get(APPS[2])


def inventory_with(tmp_path, leave_out: str = "", host_vars: dict | None = None) -> str:
    """A copy of molecule's inventory (its group_vars and host_vars too): without the host
    `leave_out`, with more `host_vars` ({host: {name: value}}); the copy's file."""
    src = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    dst = tmp_path / f"inventory-{time.time_ns()}"
    shutil.copytree(src, dst)
    path = dst / os.path.basename(os.environ["MOLECULE_INVENTORY_FILE"])
    inventory = yaml.safe_load(path.read_text())
    for group in inventory.values():
        if isinstance(group, dict) and isinstance(group.get("hosts"), dict):
            group["hosts"].pop(leave_out, None)
    for name, values in (host_vars or {}).items():
        inventory["all"]["hosts"][name] = {**(inventory["all"]["hosts"][name] or {}), **values}
    path.write_text(yaml.safe_dump(inventory))
    return str(path)


def test_scale_in_and_out_under_load(host, tmp_path):
    """Scale in: app3 leaves the inventory, and site.yml takes it out of the lb (nginx reloads
    without it; requests in flight on it finish). Scale out: back in the inventory, it joins the lb
    only once its gate has passed: with an app that cannot load, the run fails and the lb stays
    without it; fixed, it joins. No request fails through any of it."""
    app3 = APPS[2]

    def run(inventory: str, until_done_rc: int = 0) -> str:
        rc, out = run_playbook("site.yml", inventory=inventory)
        assert rc == until_done_rc, out[-4000:]
        return out

    smaller = inventory_with(tmp_path, leave_out=app3)
    res, _ = load_during(lambda: run(smaller), CLIENT, HTTPS + "/healthz", 240, 20, until_done=True)
    record_figure("scale_in", {"total": res["requests"], "failed": res["failed"], "by_host": res["by_host"]})
    assert res["failed"] == 0, res
    assert app3 not in sequential(host, n=18)["by_host"]

    # Back, with an app that cannot load on it: its gate fails, the run fails, the lb never takes it.
    broken = inventory_with(tmp_path, host_vars={app3: {"wsgi_app_callable": "hello:no_such_app"}})
    res, out = load_during(lambda: run(broken, until_done_rc=2), CLIENT, HTTPS + "/healthz", 300, 20, until_done=True)
    assert res["failed"] == 0, res
    assert f"failed on {app3}" in out, out[-4000:]
    assert app3 not in sequential(host, n=18)["by_host"]

    res, _ = load_during(lambda: run(os.environ["MOLECULE_INVENTORY_FILE"]), CLIENT, HTTPS + "/healthz", 300, 20,
                         until_done=True)
    record_figure("scale_out", {"total": res["requests"], "failed": res["failed"], "by_host": res["by_host"]})
    assert res["failed"] == 0, res
    assert sequential(host, n=18)["by_host"].get(app3)


# The example app at the site root, and the guestbook under its sub-path.
@pytest.mark.parametrize("container", [LB, APPS[0], "wsgideploy-cluster-gb-lb", "wsgideploy-cluster-gb1"])
def test_rendered_nginx_configs_pass_gixy(host, container, tmp_path):
    rc, report = gixy_report(container, str(tmp_path))
    assert rc == 0 and "No issues found" in report, report


def test_check_diff_is_clean_across_the_fleet(host):
    # The scenario's converge, limited to this fleet: test_guestbook.py checks the other one's (its
    # tests run beside these, so its hosts may be mid-deploy here).
    assert_check_diff_clean("--limit", "lb:app", hosts={LB, *APPS})


def test_a_fleet_rerun_is_one_check_per_host_and_repairs_a_hand_edited_lb(host):
    """With nothing to change, every host of the fleet, the lb too, passes its stamp check and
    skips the rest. A hand edit of the lb's site is not vouched for: the lb goes through its whole
    play again, which puts the file back."""
    # The drain test's drain and undrain came last: they change the lb's inputs (its drained
    # list) since its last stamp, so the first run takes the lb's whole play (and changes
    # nothing); the second is one check everywhere.
    first = converge("--limit", "lb:app")
    assert all(counts["changed"] == 0 for counts in recap(first).values()), first[-3000:]
    out = converge("--limit", "lb:app")
    assert all(counts["changed"] == 0 for counts in recap(out).values()), out[-3000:]
    # A skipped include prints its own name only; role tasks print as "role : task".
    assert "TASK [base : " not in out and "TASK [nginx : " not in out, out[-3000:]
    lb = scenario_host(LB)
    site = "/etc/nginx/conf.d/hello-lb.conf"
    lb.run_test(f"echo '# edited by hand' >> {site}")
    out = converge("--limit", "lb")
    assert "TASK [lb : Write the load balancer site" in out, out[-3000:]
    assert lb.run(f"grep -q 'edited by hand' {site}").rc == 1, out[-3000:]
    assert sequential(host)["failed"] == 0


LB_FILES = "find /etc/nginx /etc/ansible/facts.d -type f | sort | xargs sha256sum"


def test_an_lb_change_that_stops_reaching_the_app_is_refused_under_load(host):
    """An lb site whose prefix no longer routes to the app (nginx -t accepts it): the lb's gate asks
    a twin of nginx on the new config before the live nginx loads it, the app's health path under
    the prefix answers 404 from the app, not 2xx: the lb's files are put back byte for byte, the run
    fails naming the lb and the check, and no client request ever sees the change (every answer
    comes from an app host). The next run changes nothing."""
    before = host_state(LB, LB_FILES)
    load, (rc, out) = load_during(
        lambda: run_playbook("playbooks/lb.yml", "-e", json.dumps({"lb_url_prefix": "/nowhere"})),
        CLIENT, HTTPS + "/healthz", 300, 20, until_done=True)
    record_figure("lb_change_refused", {"playbook_rc": rc, "total": load["requests"], "failed": load["failed"]})
    assert rc != 0, out[-3000:]
    assert f"The lb change failed on {LB}" in out, out[-3000:]
    # The twin's https listener (port 443 + lb_gate_twin_offset) was answered by an app host: 404.
    assert re.search(rf"unhealthy: https://127\.0\.0\.1:\d+/nowhere/healthz \(Host {LB}\) via \S+: status 404", out), out[-3000:]
    assert load["failed"] == 0, load
    assert sum(load["by_host"].values()) == load["requests"], load
    after = host_state(LB, LB_FILES)
    assert after == before, "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm=""))
    assert sequential(host)["failed"] == 0
    assert recap(playbook("playbooks/lb.yml"))[LB]["changed"] == 0


def test_a_move_that_fails_its_gate_puts_the_old_process_manager_back(host):
    """app3's move to systemd fails (the new units cannot start: an ExecStartPre that fails): its
    supervisord programs come back and run, the systemd units the move wrote go, the host is back
    in the lb; no request fails and the fleet is as it was."""
    app3 = scenario_host(APPS[2])
    before = fleet_state(APPS, LB)
    load, (rc, out) = load_during(
        lambda: run_playbook("playbooks/app.yml", "--limit", APPS[2], "-e", json.dumps(
            {"wsgi_app_process_manager": "systemd", "systemd_service_extra_directives": {"ExecStartPre": "/bin/false"}})),
        CLIENT, HTTPS + "/healthz", 600, 10, until_done=True)
    record_figure("process_manager_move_failed", {"playbook_rc": rc, "total": load["requests"], "failed": load["failed"]})
    assert rc != 0 and f"failed on {APPS[2]} at 'Enable and start the target and instances'" in out, out[-3000:]
    assert load["failed"] == 0, load
    assert_serves_under(app3, "hello", 2, "uwsgi", "supervisord")
    assert_fleet_unchanged(before, fleet_state(APPS, LB), out)
    assert wait_in_rotation(host, APPS[2])["by_host"].get(APPS[2])


def test_moving_a_host_to_another_process_manager_loses_no_request(host):
    """app3 leaves supervisord for systemd, a gated switch under load through the lb: the old
    copies stop and their definitions go while the host is drained, the new ones pass the gate;
    exactly one copy runs afterwards. The next test's site.yml run brings it back (its host_vars)."""
    app3 = scenario_host(APPS[2])
    load, _ = load_during(
        lambda: playbook("playbooks/app.yml", "--limit", APPS[2], "-e", "wsgi_app_process_manager=systemd"),
        CLIENT, HTTPS + "/healthz", 600, 10, until_done=True)
    record_figure("process_manager_move_to_systemd", {"total": load["requests"], "failed": load["failed"]})
    assert load["failed"] == 0, load
    assert_serves_under(app3, "hello", 2, "uwsgi", "systemd")
    assert not app3.file("/etc/supervisor/conf.d/hello.conf").exists
    assert wait_in_rotation(host, APPS[2])["by_host"].get(APPS[2])


def test_process_topology_reaches_every_instance(host):
    """lb -> every app server instance (host:port): all six serve, failover still loses nothing."""
    try:
        # The app hosts' proxy hops change with the topology (a settings change, rolled out): two
        # hosts per batch, app3 stays in rotation.
        playbook("site.yml", "-e", "lb_topology=process", "-e", "deploy_serial=2")
        # The same gated run moved app3 back to supervisord (its host_vars; the test before moved it).
        assert_serves_under(scenario_host(APPS[2]), "hello", 2, "uwsgi", "supervisord")
        res = sequential(host, n=30)
        record_figure("distribution_process_topology", res["by_instance"])
        assert res["failed"] == 0, res
        assert set(res["by_instance"]) == INSTANCES, res

        # One hop fewer in front of the app: it still sees the real client and https.
        client_ip = host.check_output("hostname -I").split()[0]
        doc = host.check_output(f"curl -sk {HTTPS}/whoami")
        assert f'"remote_addr":"{client_ip}"' in doc and '"scheme":"https"' in doc, doc
        # Static files still come from the app hosts' nginx.
        head = host.check_output(f"curl -sk -o /dev/null -D - {HTTPS}/static/style.css")
        assert "200" in head.splitlines()[0] and "x-app-" not in head.lower(), head

        app1 = scenario_host(APPS[0])

        def stop_and_start():
            time.sleep(5)
            app1.run_test("systemctl stop hello.target")
            time.sleep(7)
            app1.run_test("systemctl start hello.target")

        res = run_load_while(stop_and_start)
        record_figure("failover_process_topology", {"total": res["requests"], "failed": res["failed"]})
        assert res["failed"] == 0, res
    finally:
        playbook("site.yml", "-e", "deploy_serial=2")
    assert set(sequential(host)["by_host"]) == set(APPS)
