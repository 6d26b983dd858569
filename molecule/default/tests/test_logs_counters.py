"""Day-2 on the converged host: bounded logs, one command to read them, counters on loopback only.

Behaviour from outside: what journald says of its own limit, a forced rotation that nginx follows,
the logs playbook showing a request just made, and who can reach nginx's and uWSGI's counters.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from wsgideploy_testlib import playbook, recap

APP = "hello"
STATUS = "http://127.0.0.1:8099/nginx_status"


def request_marked(host) -> str:
    """A request through the host's nginx with a path of its own; the path."""
    path = f"/log-marker-{uuid.uuid4().hex}"
    host.run(f"curl -s -o /dev/null -m 10 http://127.0.0.1{path}")
    return path


def wait_logged(host, path: str, log: str = "/var/log/nginx/access.log") -> None:
    """nginx writes its access log in blocks, at least every second (nginx_access_log_flush)."""
    for _ in range(20):
        if host.run(f"grep -qF -- {path} {log}").rc == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{path} never reached {log}")


def test_journald_applies_the_limit(host):
    # journald reports its limit each time it starts: "System Journal (...) is 8.0M, max 500.0M".
    lines = host.check_output("journalctl -u systemd-journald --no-pager -o cat | grep -E '(System|Runtime) Journal'")
    latest = lines.splitlines()[-1]
    kind = "System" if host.file("/var/log/journal").is_directory else "Runtime"
    limit = {"System": "500.0M", "Runtime": "64.0M"}[kind]
    assert latest.startswith(f"{kind} Journal") and f"max {limit}" in latest, latest


def test_nginx_logs_rotate_and_nginx_follows(host):
    assert host.run("logrotate --debug /etc/logrotate.d/nginx").rc == 0
    before = request_marked(host)
    wait_logged(host, before)
    rotated = host.run("logrotate --force /etc/logrotate.d/nginx")
    assert rotated.rc == 0, rotated.stderr
    # The old lines moved (delaycompress: the newest rotated file stays plain) ...
    assert host.run(f"grep -qF -- {before} /var/log/nginx/access.log.1").rc == 0
    # ... and nginx reopened its logs: the next request lands in the new file, owned as nginx's.
    after = request_marked(host)
    wait_logged(host, after)
    assert host.run(f"grep -qF -- {before} /var/log/nginx/access.log").rc != 0
    log = host.file("/var/log/nginx/access.log")
    assert (log.user, log.group, log.mode) == ("www-data", "adm", 0o640)


def test_logs_playbook_shows_the_instances_and_nginx(host, molecule_env):
    path = request_marked(host)
    wait_logged(host, path)
    out = playbook("playbooks/logs.yml", "-e", "logs_lines=200")
    assert path in out, out[-3000:]
    # The instances' output from the journal: uWSGI's own lines, from each instance's unit.
    # (the debug output wraps long lines)
    assert re.search(r"uwsgi\[\d+\]: ", out) and "WSGI app 0" in out, out[-3000:]
    assert all(v.get("changed", 0) == 0 and v.get("failed", 0) == 0 for v in recap(out).values())


def test_nginx_counters_answer_on_loopback_only(host):
    page = host.check_output(f"curl -sS -m 5 {STATUS}")
    assert re.search(r"^Active connections: \d+", page) and "server accepts handled requests" in page, page
    assert host.run("curl -s -o /dev/null -w '%{http_code}' -m 5 http://127.0.0.1:8099/").stdout == "404"
    # Not on the host's own network address (what any other host would reach).
    address = host.check_output("hostname -I").split()[0]
    refused = host.run(f"curl -sS -m 5 http://{address}:8099/nginx_status")
    assert refused.rc == 7, (refused.rc, refused.stdout)  # 7: connection refused
    # Nor through the app's own server block.
    assert "Active connections" not in host.run("curl -s -m 5 http://127.0.0.1/nginx_status").stdout


def test_uwsgi_counters_on_a_socket_of_the_app_user(host):
    stats_sock = f"/run/{APP}-0/stats.sock"
    sock = host.file(stats_sock)
    assert sock.is_socket and (sock.user, sock.mode) == (APP, 0o660)
    raw = host.check_output(
        "python3 -c \"import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
        "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())\" " + stats_sock)
    stats = json.loads(raw)
    assert len(stats["workers"]) >= 1 and all("requests" in w for w in stats["workers"]), raw[:500]
    # nginx's user, which reaches the app's socket, cannot read the counters.
    denied = host.run(f"runuser -u www-data -- python3 -c \"import socket; socket.socket(socket.AF_UNIX).connect('{stats_sock}')\"")
    assert denied.rc != 0 and "Permission denied" in denied.stderr, denied.stderr
