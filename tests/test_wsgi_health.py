"""wsgi-health: the gate's checker, against real HTTP servers on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from scriptload import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "rollout" / "files" / "wsgi_health.py"
health = load_module("wsgideploy_wsgi_health", SCRIPT)


def serve(answer):
    """A loopback server whose GET answers answer() -> (status, body); its host:port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            status, body = answer()
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def servers():
    started = []

    def start(answer):
        server, address = serve(answer)
        started.append(server)
        return address

    yield start
    for server in started:
        server.shutdown()


def test_every_instance_must_answer_200_with_the_release(servers, capsys):
    good = servers(lambda: (200, json.dumps({"release": "abc"}).encode()))
    old = servers(lambda: (200, json.dumps({"release": "old"}).encode()))
    failing = servers(lambda: (500, b"boom"))
    assert health.main([good, "--expect-release", "abc"]) == 0
    assert health.main([good, old, "--expect-release", "abc"]) == 1
    out = capsys.readouterr().out
    assert f"unhealthy: {old}: release 'old', expected 'abc'" in out
    assert health.main([good, failing]) == 1
    assert f"unhealthy: {failing}: status 500" in capsys.readouterr().out
    assert health.main(["127.0.0.1:1"]) == 1


def test_wait_retries_until_healthy_and_all_instances_wait_together(servers, capsys):
    ready_at = time.monotonic() + 1.5
    slow = [servers(lambda: (200 if time.monotonic() >= ready_at else 503, b"{}")) for _ in range(3)]
    start = time.monotonic()
    assert health.main([*slow, "--wait", "10"]) == 0
    took = time.monotonic() - start
    assert 1.0 <= took < 4.0, took  # together, not 3 x 1.5 s
    assert capsys.readouterr().out.count("healthy:") == 3


def test_wait_gives_up_at_the_deadline(servers, capsys):
    failing = servers(lambda: (503, b""))
    start = time.monotonic()
    assert health.main([failing, "--wait", "2"]) == 1
    assert 1.5 <= time.monotonic() - start < 5
    assert "status 503" in capsys.readouterr().out
