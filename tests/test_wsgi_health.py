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
    """A loopback server whose GET answers answer() -> (status, body[, headers]); its host:port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            status, body, *headers = answer()
            self.send_response(status)
            for name, value in (headers[0] if headers else {}).items():
                self.send_header(name, value)
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
    assert f"unhealthy: {failing}: status 500 on /" in capsys.readouterr().out
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


def test_the_release_header_needs_nothing_from_the_app(servers, capsys):
    # Any 2xx page of an app that knows nothing of us; the release comes from the entry point's header.
    plain = servers(lambda: (200, b"<html>welcome</html>", {"X-App-Release": "abc"}))
    created = servers(lambda: (204, b"", {"x-app-release": "abc"}))
    older = servers(lambda: (200, b"<html>welcome</html>", {"X-App-Release": "old"}))
    assert health.main([plain, created, "--expect-release", "abc", "--path", "/"]) == 0
    assert health.main([older, "--expect-release", "abc"]) == 1
    assert f"unhealthy: {older}: release 'old', expected 'abc'" in capsys.readouterr().out
    # The header wins over a body that says otherwise; another header name is honoured.
    both = servers(lambda: (200, json.dumps({"release": "old"}).encode(), {"X-Release": "abc"}))
    assert health.main([both, "--expect-release", "abc", "--release-header", "X-Release"]) == 0
    # Without the header, a page that is not JSON names no release.
    bare = servers(lambda: (200, b"<html>welcome</html>"))
    assert health.main([bare, "--expect-release", "abc"]) == 1
    assert "release None" in capsys.readouterr().out


def test_a_page_that_fails_or_redirects_is_unhealthy(servers, capsys):
    error = servers(lambda: (500, b"Internal Server Error", {"X-App-Release": "abc"}))
    moved = servers(lambda: (302, b"", {"X-App-Release": "abc", "Location": "/login"}))
    assert health.main([error, "--expect-release", "abc", "--path", "/"]) == 1
    assert health.main([moved, "--expect-release", "abc", "--path", "/"]) == 1
    out = capsys.readouterr().out
    assert f"unhealthy: {error}: status 500 on /" in out and f"unhealthy: {moved}: status 302 on /" in out


def test_a_listener_answers_from_an_upstream_or_redirects(servers, tmp_path, capsys):
    """The lb gate's question: the lb's proof header (sent only with the token) names an upstream."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    seen = []

    def lb(proof):
        def answer():
            seen.append(1)
            return (200, b"hello", {"X-Gate-Upstream": proof} if proof else {})

        return answer

    routed = servers(lb("10.0.0.2:80, 10.0.0.1:80"))
    itself = servers(lb(""))
    gate = ["--host", "www.example.org", "--header-file", f"X-Gate={token}", "--proof-header", "X-Gate-Upstream"]
    assert health.main([f"http://{routed}", *gate, "--proof-in", "10.0.0.1:80"]) == 0
    assert health.main([f"http://{routed}", *gate, "--proof-in", "10.0.0.3:80"]) == 1
    assert health.main([f"http://{itself}", *gate]) == 1
    out = capsys.readouterr().out
    assert f"healthy: http://{routed}/ (Host www.example.org) via 10.0.0.1:80: status 200" in out
    assert f"unhealthy: http://{itself}/ (Host www.example.org): status 200, b'hello', not answered" in out

    moved = servers(lambda: (301, b"", {"Location": "https://www.example.org:8443/"}))
    assert health.main([f"http://{moved}", "--redirect-to", "https://www.example.org:8443/"]) == 0
    assert health.main([f"http://{moved}", "--redirect-to", "https://www.example.org/"]) == 1
    # No header name or value that could add a line to the request.
    token.write_text("a\r\nX-Other: b")
    with pytest.raises(SystemExit):
        health.main([f"http://{routed}", *gate])
    with pytest.raises(SystemExit):
        health.main([f"http://{routed}", "--host", "a\r\nb"])


def test_any_of_several_releases(servers, capsys):
    new = servers(lambda: (200, b"ok", {"X-App-Release": "new"}))
    assert health.main([new, "--expect-release", "old,new"]) == 0
    assert health.main([new, "--expect-release", "old"]) == 1
    assert f"unhealthy: {new}: release 'new', expected 'old'" in capsys.readouterr().out
