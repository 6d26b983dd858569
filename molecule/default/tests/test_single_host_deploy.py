"""A code deploy on a single host with no load balancer in front drops no request.

uWSGI reloads gracefully (SIGHUP: the master keeps its listening socket, requests queue while the
workers come back with the new release). Runs last: it leaves the host on a new release.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

from wsgideploy_testlib import playbook, record_figure

APP_HOST = "wsgideploy-default-app"


def test_code_deploy_under_load_loses_nothing(host, tmp_path):
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    subprocess.run(["docker", "cp", os.path.join(project, "scripts", "loadgen.py"), f"{APP_HOST}:/usr/local/bin/loadgen"],
                   check=True, capture_output=True)
    src = tmp_path / "app"
    shutil.copytree(os.path.join(project, "app"), src, ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "hello" / "static" / "style.css", "a") as fh:
        fh.write("\n/* single-host release */\n")
    before = host.file("/srv/hello/current/REVISION").content_string.strip()
    venv_before = host.check_output("readlink -f /srv/hello/current/venv")

    result = {}

    def load():
        out = host.run("python3 /usr/local/bin/loadgen http://127.0.0.1/healthz --duration 60 --rate 20 "
                       "--requests 1200 --concurrency 4 --timeout 10")
        result.update(json.loads(out.stdout))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        out = playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={src}")
    finally:
        worker.join(timeout=180)
    record_figure("single_host_deploy", {k: result.get(k) for k in ("requests", "failed", "duration_s", "latency_ms")})

    after = host.file("/srv/hello/current/REVISION").content_string.strip()
    assert after != before
    # A new release alone on a host as the last run left it: only the release is redone.
    assert "a new release (all else is as the last run left it)" in out, out[-3000:]
    assert "TASK [base : " not in out and "TASK [uwsgi : " not in out, out[-3000:]
    # Every instance answers with the new release.
    for instance in ("hello-0", "hello-1"):
        res = host.run(f"/usr/local/lib/wsgideploy/wsgi-health /run/{instance}/app.sock --protocol uwsgi --expect-release {after}")
        assert res.rc == 0, res.stdout
    assert result["requests"] >= 1000, result
    assert result["failed"] == 0, result
    # Same requirements: the new release reuses the virtualenv, nothing was reinstalled.
    assert host.check_output("readlink -f /srv/hello/current/venv") == venv_before
