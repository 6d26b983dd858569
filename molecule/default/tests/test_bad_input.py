"""Bad input given with -e fails before anything changes on the converged host, naming the variable.

Each case runs site.yml (or playbooks/deploy.yml) with molecule's inventory against the converged
host and expects: a non-zero exit, a failure message that names the variable, no task of a role
that changes hosts in the output, and the same snapshot of the host before and after (config files,
settings, current release, kept releases, users and groups, the PIDs and start times of the app's
units and nginx). Every case fails in the validation at the start of the play (argument specs,
then playbooks/tasks/validate-input.yml, or the wsgi_app role's own checks, which come before any
other role), so each takes a few seconds.
"""

from __future__ import annotations

import concurrent.futures
import json
import re

import pytest
from wsgideploy_testlib import run_playbook

APP = "hello"

# One command, run on the host before and after each case.
SNAPSHOT = f"""set -e
cd /
{{ find /etc/uwsgi /etc/nginx \\( -type f -o -type l \\); find /etc/systemd/system -path '*{APP}*' \\( -type f -o -type l \\); }} \\
  | sort | while read -r f; do
  if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(stat -c '%a %U:%G' "$f") $(sha256sum < "$f")"; fi
done
sha256sum /srv/{APP}/shared/settings.py /etc/passwd /etc/group
echo "current $(readlink /srv/{APP}/current)"
echo "releases $(ls /srv/{APP}/releases | tr '\\n' ' ')"
for unit in $(systemctl list-units --all --plain --no-legend '{APP}*' | awk '{{print $1}}') nginx.service; do
  echo "$unit $(systemctl show -p ActiveEnterTimestamp,MainPID "$unit" | tr '\\n' ' ')"
  # A reload keeps the main PID but replaces the workers.
  pid=$(systemctl show -p MainPID --value "$unit")
  [ -z "$pid" ] || [ "$pid" = 0 ] || echo "$unit workers $(pgrep -P "$pid" | sort -n | tr '\\n' ' ')"
done
"""

# Tasks that may run: validation, the app definition's checks. Nothing of a role that changes hosts.
ALLOWED_TASK = re.compile(
    r"^TASK \[(Gathering Facts|Validate the input of every role before any change|Check .*|The app definition, for the whole play"
    r"|wsgi_app : .*|Refuse a process manager the host does not run"
    # app.yml run alone (deploy.yml): site.yml's check did not run, these find nothing to take or end.
    r"|Take site.yml's check, once|End here when the run applies none of the app hosts' concerns"
    r"|Note a host that check found as the last successful run left it \(the run's summary\)"
    r"|End here for a host that check found as the last successful run left it"
    r"|upstart_service : (Validating arguments .*|Look for upstart's control tool|Ask which init daemon answers"
    r"|Refuse a host without upstart))\]"
)
MISSING = "/nonexistent/wsgideploy-bad-input"

# (id, playbook, extra vars, words the failure message must contain: the variable first)
CASES = [
    # Bounds (playbooks/tasks/validate-input.yml)
    ("keep-releases-0", "site.yml", {"app_keep_releases": 0}, ["app_keep_releases", "got 0"]),
    ("base-port-0", "site.yml", {"wsgi_app_base_port": 0}, ["wsgi_app_base_port", "got 0"]),
    ("base-port-70000", "site.yml", {"wsgi_app_base_port": 70000}, ["wsgi_app_base_port", "70000"]),
    ("lb-https-port-70000", "site.yml", {"lb_https_port": 70000}, ["lb_https_port", "70000"]),
    ("lb-http-port-0", "site.yml", {"lb_http_port": 0}, ["lb_http_port", "got 0"]),
    ("uwsgi-processes-0", "site.yml", {"uwsgi_processes": 0}, ["uwsgi_processes", "got 0"]),
    ("instances-65", "site.yml", {"wsgi_app_instances": 65}, ["wsgi_app_instances", "65"]),
    ("timeouts-several", "site.yml",
     {"systemd_service_timeout_stop_sec": 0, "app_proxy_read_timeout": -5, "nginx_worker_connections": 0},
     ["systemd_service_timeout_stop_sec", "app_proxy_read_timeout", "-5", "nginx_worker_connections"]),
    ("worker-processes-word", "site.yml", {"nginx_worker_processes": "lots"}, ["nginx_worker_processes", "lots"]),
    # Names
    ("settings-key-space", "site.yml", {"app_settings": {"bad key": 1}}, ["app_settings", "bad key"]),
    ("settings-key-keyword", "site.yml", {"app_settings": {"GREETING": "hi", "class": 1}}, ["app_settings", "class"]),
    ("lb-header-name", "site.yml", {"lb_security_headers": {"X Frame": "DENY"}}, ["lb_security_headers", "X Frame"]),
    ("lb-header-two-lines", "site.yml", {"lb_security_headers": {"X-Test": "a\nb"}}, ["lb_security_headers", "X-Test"]),
    ("uwsgi-max-requests-delta-negative", "site.yml", {"uwsgi_max_requests_delta": -1}, ["uwsgi_max_requests_delta", "-1"]),
    ("chain-with-thunder-lock", "site.yml", {"uwsgi_reload_mode": "chain", "uwsgi_thunder_lock": True},
     ["uwsgi_thunder_lock", "chain"]),
    ("chain-without-lazy-apps", "site.yml", {"uwsgi_reload_mode": "chain", "uwsgi_lazy_apps": False},
     ["uwsgi_lazy_apps", "chain"]),
    ("socket-group-is-app-group", "site.yml", {"wsgi_app_socket_group": APP}, ["wsgi_app_socket_group"]),
    # Values that escape where they belong (plugins/filter/contain.py, playbooks/tasks/validate-host.yml)
    ("static-path-escape", "site.yml", {"wsgi_app_static_path": "../../../../etc"},
     ["wsgi_app_static_path", "../../../../etc"]),
    ("shared-link-escape", "site.yml", {"app_shared_links": [{"path": "../../etc"}]}, ["app_shared_links[0].path", ".."]),
    ("shared-dir-absolute", "site.yml", {"app_shared_dirs": ["/etc/cron.d"]}, ["app_shared_dirs[0]", "absolute"]),
    ("app-user-root", "site.yml", {"wsgi_app_user": "root"}, ["wsgi_app_user", "root"]),
    ("app-group-system", "site.yml", {"wsgi_app_group": "www-data"}, ["wsgi_app_group", "www-data"]),
    ("app-user-of-another-app", "site.yml", {"wsgi_app_user": APP, "wsgi_app_root": "/srv/other"},
     ["wsgi_app_user", "did not make for this app"]),
    ("hook-user-root", "site.yml", {"app_hooks_before_switch": [{"name": "x", "command": "true", "user": "root"}]},
     ["app_hooks_before_switch[0].user", "become_root"]),
    ("environment-newline", "site.yml",
     {"wsgi_app_environment": {"X": f"a\nExecStartPre=/usr/bin/touch /srv/{APP}/shared/data/pwned\nEnvironment=Y=z"}},
     ["wsgi_app_environment[X]", "control character"]),
    ("environment-bad-name", "site.yml", {"wsgi_app_environment": {"BAD NAME": "x"}}, ["wsgi_app_environment", "BAD NAME"]),
    ("lb-server-name-injection", "site.yml", {"lb_server_names": ["127.0.0.1; return 200 injected"]},
     ["lb_server_names[0]", "return 200 injected"]),
    ("lb-server-name-space", "site.yml", {"lb_server_names": ["bad name"]}, ["lb_server_names[0]", "bad name"]),
    ("base-port-of-nginx", "site.yml", {"wsgi_app_listen": "tcp", "wsgi_app_base_port": 80},
     ["wsgi_app_base_port", "80"]),
    ("base-port-of-nginx-status", "site.yml", {"wsgi_app_listen": "tcp", "wsgi_app_base_port": 8098},
     ["wsgi_app_base_port", "8099", "nginx_status_listen"]),
    ("url-prefix-nginx-syntax", "site.yml", {"wsgi_app_url_prefix": "/a;return"}, ["wsgi_app_url_prefix", "/a;return"]),
    ("app-root-in-etc", "site.yml", {"wsgi_app_root": "/etc/hello"}, ["wsgi_app_root", "/etc/hello"]),
    # Files on the controller
    ("missing-cert", "site.yml", {"lb_tls_cert_src": f"{MISSING}.crt"}, ["lb_tls_cert_src", f"{MISSING}.crt"]),
    ("missing-key", "site.yml", {"lb_tls_key_src": f"{MISSING}.key"}, ["lb_tls_key_src", f"{MISSING}.key"]),
    ("missing-ca-bundle", "site.yml", {"app_pip_cert_src": f"{MISSING}-ca.pem"}, ["app_pip_cert_src", "-ca.pem"]),
    ("ca-bundle-is-a-dir", "site.yml", {"app_pip_cert_src": "/etc"}, ["app_pip_cert_src", "not a file"]),
    ("missing-artifact", "site.yml", {"wsgi_app_source": "artifact", "wsgi_app_artifact": f"{MISSING}-1.0-py3-none-any.whl"},
     ["wsgi_app_artifact", "-1.0-py3-none-any.whl"]),
    ("missing-source-dir", "site.yml", {"wsgi_app_src": f"{MISSING}-src"}, ["wsgi_app_src", "-src"]),
    ("git-path-not-a-repo", "site.yml", {"wsgi_app_source": "git", "wsgi_app_git_repo": "/etc"},
     ["wsgi_app_git_repo", "not a git repository"]),
    # Choices and types (argument specs)
    ("choice-listen", "site.yml", {"wsgi_app_listen": "carrier-pigeon"}, ["wsgi_app_listen", "carrier-pigeon"]),
    ("choice-source", "site.yml", {"wsgi_app_source": "svn"}, ["wsgi_app_source", "svn"]),
    ("choice-server", "site.yml", {"wsgi_app_server": "waitress"}, ["wsgi_app_server", "waitress"]),
    ("choice-process-manager", "site.yml", {"wsgi_app_process_manager": "runit"}, ["wsgi_app_process_manager", "runit"]),
    ("gunicorn-speaks-no-uwsgi", "site.yml", {"wsgi_app_server": "gunicorn", "wsgi_app_protocol": "uwsgi"},
     ["wsgi_app_protocol=uwsgi", "only uWSGI speaks uwsgi"]),
    ("url-prefix-trailing-slash", "site.yml", {"wsgi_app_url_prefix": "/blog/"}, ["wsgi_app_url_prefix", "/blog/"]),
    # A legacy process manager on a host that does not run it
    ("upstart-on-systemd-host", "site.yml", {"wsgi_app_process_manager": "upstart"},
     ["wsgi_app_process_manager", "does not run upstart"]),
    ("choice-reload-mode", "site.yml", {"uwsgi_reload_mode": "sometimes"}, ["uwsgi_reload_mode", "sometimes"]),
    ("type-processes", "site.yml", {"uwsgi_processes": "many"}, ["uwsgi_processes", "many"]),
    ("type-keep-releases", "site.yml", {"app_keep_releases": "lots"}, ["app_keep_releases", "lots"]),
    ("type-settings", "site.yml", {"app_settings": "GREETING=hi"}, ["app_settings", "mapping"]),
    # The rolling deploy
    ("deploy-serial-abc", "playbooks/deploy.yml", {"deploy_serial": "abc"}, ["deploy_serial", "abc"]),
    ("deploy-serial-0", "playbooks/deploy.yml", {"deploy_serial": 0}, ["deploy_serial", "got 0"]),
    ("deploy-serial-150pct", "playbooks/deploy.yml", {"deploy_serial": "150%"}, ["deploy_serial", "150%"]),
    ("deploy-keep-releases-0", "playbooks/deploy.yml", {"app_keep_releases": 0}, ["app_keep_releases", "got 0"]),
]


def snapshot(host) -> str:
    out = host.run(SNAPSHOT)
    assert out.rc == 0, out.stderr
    return out.stdout


def failure_text(output: str) -> str:
    """The failure messages of a run: [ERROR] lines and the results under fatal/failed."""
    lines = output.splitlines()
    keep = []
    for n, line in enumerate(lines):
        if line.startswith("[ERROR]") or re.match(r"^(fatal|failed): ", line):
            keep.append(line)
            keep.extend(body for body in lines[n + 1 : n + 40] if body.startswith(" "))
    return "\n".join(keep)


# The cases run three at a time (each is mostly Ansible starting up on the controller), each with
# its own snapshots before and after. None may change the host, so the snapshots of all of them
# must be the same: a case that changed it fails, and so may a case that ran beside it.
PARALLEL = 3


@pytest.fixture(scope="module")
def outcomes(host, molecule_env) -> dict[str, tuple[str, int, str, str]]:
    """Case id -> (snapshot before, exit code, output, snapshot after)."""

    def run(case):
        name, playbook, extra, _ = case
        before = snapshot(host)
        rc, out = run_playbook(playbook, "-e", json.dumps(extra), timeout=300)
        return name, (before, rc, out, snapshot(host))

    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return dict(pool.map(run, CASES))


@pytest.mark.parametrize(("name", "words"), [pytest.param(c[0], c[3], id=c[0]) for c in CASES])
def test_bad_input_fails_before_any_change(outcomes, name, words):
    before, rc, out, after = outcomes[name]

    assert rc != 0, out[-4000:]
    message = failure_text(out)
    for word in words:
        assert word in message, f"{word!r} not in the failure message:\n{message}\n--- output\n{out[-4000:]}"
    ran = [line for line in out.splitlines() if line.startswith("TASK [")]
    assert ran and all(ALLOWED_TASK.match(line) for line in ran), "\n".join(ran)
    assert after == before, f"the host changed:\n--- before\n{before}\n--- after\n{after}"
    assert re.search(r"changed=0\s", out), out[-2000:]


def test_a_port_another_process_listens_on_is_refused_before_any_change(host, molecule_env):
    """The instances' TCP ports are checked on the host too (playbooks/tasks/validate-host.yml): a
    port that something other than the app's own instances listens on (here a web server run as
    nobody, as another app or service would) is refused, naming the variable; the host is unchanged."""
    port = 9107
    host.run_test(f"setsid -f runuser -u nobody -- python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1")
    try:
        host.run_test(f"for i in $(seq 50); do ss -Hltn | grep -q ':{port} ' && exit 0; sleep 0.1; done; exit 1")
        before = snapshot(host)
        rc, out = run_playbook("site.yml", "-e", json.dumps({"wsgi_app_listen": "tcp", "wsgi_app_base_port": port - 1}),
                               timeout=300)
        message = failure_text(out)
        assert rc != 0, out[-4000:]
        assert "wsgi_app_base_port" in message and f"port {port}" in message and "something else" in message, message
        assert snapshot(host) == before
    finally:
        host.run(f"pkill -u nobody -f 'http.server {port}'")
