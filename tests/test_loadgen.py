"""Tests of scripts/loadgen.py against small HTTP(S) servers on 127.0.0.1.

Every server listens on an ephemeral port of 127.0.0.1 and every run is bounded to a few seconds.
Timing assertions are loose on purpose: the tests must hold on a busy two-core machine.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "loadgen.py"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in scripts/
    try:
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


loadgen = _load("wsgideploy_loadgen", SCRIPT)


# --- servers -------------------------------------------------------------------------------------


@dataclass
class Reply:
    """What the test server answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok\n"
    delay: float = 0.0  # seconds before answering


@dataclass
class Seen:
    """What the test server saw: request number, path, headers, connection, arrival time."""

    number: int
    path: str
    headers: dict[str, str]
    client: tuple[str, int]
    at: float


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose answers come from `respond(request_number)`."""

    def __init__(self, respond: Callable[[int], Reply], context: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                with outer.lock:
                    number = len(outer.seen)
                    outer.seen.append(
                        Seen(number, self.path, dict(self.headers), self.client_address, time.monotonic())
                    )
                reply = outer.respond(number)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # clients that hang up early are part of the tests

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def connections(self) -> int:
        with self.lock:
            return len({s.client for s in self.seen})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """`serve(respond)`: a started Server, shut down after the test."""
    servers: list[Server] = []

    def start(respond: Callable[[int], Reply] = lambda n: Reply(), context: ssl.SSLContext | None = None) -> Server:
        server = Server(respond, context)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port of 127.0.0.1 that accepts TCP connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock.getsockname()[1]
    sock.close()


def load(url: str, *args: str) -> tuple[dict, float]:
    """Run loadgen in this process: (summary, wall-clock seconds)."""
    opts = loadgen.parse_args([url, *map(str, args)])
    began = time.monotonic()
    result = loadgen.run(opts)
    return result, time.monotonic() - began


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
    )


def alternating(n: int) -> Reply:
    """Request n: host web1/web2 in turn, instance hello-1 for two requests, then hello-2 for two."""
    host = ("web1", "web2")[n % 2]
    instance = ("hello-1", "hello-2")[(n // 2) % 2]
    return Reply(headers={"X-App-Host": host, "X-App-Instance": instance, "X-App-Release": "r1"})


# --- counting ------------------------------------------------------------------------------------


def test_sequential_counts_hosts_and_instances(serve):
    server = serve(alternating)
    result, _ = load(server.url("/healthz?x=1"), "--requests", 8, "--concurrency", 1)
    assert result["url"] == server.url("/healthz?x=1")
    assert (result["requests"], result["ok"], result["failed"]) == (8, 8, 0)
    assert result["errors"] == {}
    assert result["status"] == {"200": 8}
    assert result["by_host"] == {"web1": 4, "web2": 4}
    assert result["by_instance"] == {"web1/hello-1": 2, "web1/hello-2": 2, "web2/hello-1": 2, "web2/hello-2": 2}
    assert [s.path for s in server.seen] == ["/healthz?x=1"] * 8


def test_summary_has_every_field_and_sane_latencies(serve):
    server = serve()
    result, _ = load(server.url(), "--requests", 20, "--concurrency", 4)
    assert list(result) == [
        "url", "requests", "ok", "failed", "errors", "retried", "status", "by_host", "by_instance",
        "duration_s", "rate_achieved", "latency_ms",
    ]  # fmt: skip
    assert result["requests"] == result["ok"] == 20
    assert len(server.seen) == 20
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert result["duration_s"] > 0 and result["rate_achieved"] > 0
    assert result["by_host"] == {} and result["by_instance"] == {}  # no X-App-* headers, no counts


def test_keep_alive_one_connection_per_worker(serve):
    server = serve()
    result, _ = load(server.url(), "--requests", 30, "--concurrency", 1)
    assert result["ok"] == 30
    assert server.connections == 1


def test_connection_close_reconnects(serve):
    server = serve(lambda n: Reply(headers={"Connection": "close"}))
    result, _ = load(server.url(), "--requests", 6, "--concurrency", 1)
    assert result["ok"] == 6 and result["failed"] == 0
    assert server.connections == 6


def test_extra_headers_are_sent(serve):
    server = serve()
    result, _ = load(server.url(), "-n", 2, "--header", "X-Probe: yes", "--header", "Host: app.example")
    assert result["ok"] == 2
    for seen in server.seen:
        assert seen.headers["X-Probe"] == "yes"
        assert seen.headers["Host"] == "app.example"
        assert seen.headers["User-Agent"].startswith("wsgideploy-loadgen")


# --- bounds and pacing ---------------------------------------------------------------------------


def test_request_bound_stops_early(serve):
    server = serve()
    result, elapsed = load(server.url(), "--requests", 5, "--duration", 30, "--concurrency", 2)
    assert result["requests"] == result["ok"] == 5
    assert len(server.seen) == 5
    assert elapsed < 3


def test_duration_bound_stops_the_run(serve):
    server = serve(lambda n: Reply(delay=0.005))
    result, elapsed = load(server.url(), "--requests", 1000, "--duration", 1, "--concurrency", 2)
    assert 0 < result["requests"] < 1000
    assert result["failed"] == 0
    assert 0.9 <= elapsed < 3
    assert 0.9 <= result["duration_s"] < 3


def test_stop_file_ends_the_run_early_and_lets_requests_in_flight_finish(serve, tmp_path):
    server = serve(lambda n: Reply(delay=0.3))
    stop = tmp_path / "stop"
    threading.Timer(1.0, stop.touch).start()
    result, elapsed = load(server.url(), "--rate", 20, "--duration", 30, "--requests", 1000, "--concurrency", 4,
                           "--stop-file", stop)
    assert 1.0 <= elapsed < 3, elapsed
    assert result["failed"] == 0 and 5 <= result["requests"] <= 30, result


def test_rate_paces_the_load(serve):
    server = serve()
    result, elapsed = load(server.url(), "--rate", 20, "--duration", 1, "--requests", 1000, "--concurrency", 2)
    assert 15 <= result["requests"] <= 25
    assert result["failed"] == 0
    assert 0.85 <= elapsed < 3
    arrivals = [s.at - server.seen[0].at for s in server.seen]
    assert sum(1 for a in arrivals if a >= 0.5) >= 5  # spread over the second, not a burst


def test_rate_with_request_bound(serve):
    server = serve()
    result, elapsed = load(server.url(), "--rate", 10, "--requests", 5, "--duration", 30)
    assert result["requests"] == result["ok"] == 5
    assert 0.35 <= elapsed < 2.5  # requests at 0, 0.1, ... 0.4 s


# --- failures ------------------------------------------------------------------------------------


def test_bad_status_counts_as_failure(serve):
    server = serve(lambda n: Reply(status=502) if n % 3 == 2 else Reply())
    result, _ = load(server.url(), "--requests", 9)
    assert (result["requests"], result["ok"], result["failed"]) == (9, 6, 3)
    assert result["errors"] == {"status 502": 3}
    assert result["status"] == {"200": 6, "502": 3}


def test_redirect_is_not_followed_and_expect_status(serve):
    server = serve(lambda n: Reply(status=301, headers={"Location": "/elsewhere"}))
    result, _ = load(server.url(), "--requests", 3)
    assert (result["ok"], result["failed"]) == (0, 3)
    assert result["errors"] == {"status 301": 3}
    assert result["status"] == {"301": 3}

    result, _ = load(server.url(), "--requests", 3, "--expect-status", 301, "--expect-status", 302)
    assert (result["ok"], result["failed"], result["errors"]) == (3, 0, {})
    assert {s.path for s in server.seen} == {"/"}


def test_expect_status_makes_200_a_failure(serve):
    server = serve()
    result, _ = load(server.url(), "--requests", 2, "--expect-status", 204)
    assert (result["ok"], result["failed"], result["errors"]) == (0, 2, {"status 200": 2})


def test_refused_connection_counts_and_does_not_hang(closed_port):
    result, elapsed = load(f"http://127.0.0.1:{closed_port}/", "--requests", 5, "--timeout", 1, "--duration", 5)
    assert (result["requests"], result["ok"], result["failed"]) == (5, 0, 5)
    assert result["errors"] == {"ConnectionRefusedError": 5}
    assert result["status"] == {}
    assert result["latency_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}
    assert elapsed < 2


def test_slow_server_counts_timeout(serve):
    server = serve(lambda n: Reply(delay=1.5))
    result, elapsed = load(server.url(), "--requests", 2, "--timeout", 0.3, "--duration", 5)
    assert (result["requests"], result["ok"], result["failed"]) == (2, 0, 2)
    assert result["errors"] == {"timeout": 2}
    assert elapsed < 1.5


class Trickle(BaseHTTPRequestHandler):
    """Answers at once but sends the body a byte every 0.1 s: every read is quick, the whole is not."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "40")
        self.end_headers()
        try:
            for _ in range(40):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


def test_timeout_limits_the_whole_request():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        result, elapsed = load(url, "--requests", 1, "--timeout", 0.5, "--duration", 5)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result["errors"] == {"timeout": 1}
    assert elapsed < 2


def test_run_ends_within_duration_plus_timeout(silent_port):
    result, elapsed = load(
        f"http://127.0.0.1:{silent_port}/", "--requests", 100, "--duration", 1, "--timeout", 0.5, "--concurrency", 4
    )
    assert result["ok"] == 0 and result["failed"] == result["requests"] > 0
    assert set(result["errors"]) == {"timeout"}
    assert elapsed < 1 + 0.5 + 1


def test_run_ends_even_when_a_worker_is_stuck(serve, monkeypatch):
    """A worker stuck where no socket timeout reaches (a DNS lookup, say) cannot hold the run up."""
    server = serve()
    release = threading.Event()

    def stuck(*args, **kwargs):
        release.wait(10)
        raise OSError("released")

    monkeypatch.setattr(loadgen.http.client.socket, "create_connection", stuck)
    try:
        result, elapsed = load(server.url(), "--requests", 10, "--duration", 0.5, "--timeout", 0.3)
    finally:
        release.set()
    assert (result["requests"], result["ok"], result["failed"]) == (1, 0, 1)
    assert result["errors"] == {"timeout": 1}
    assert 0.5 + 0.3 <= elapsed < 0.5 + 0.3 + 1


def socket_server(handle: Callable[[socket.socket], None]) -> tuple[int, Callable[[], None]]:
    """A plain TCP server on 127.0.0.1 that gives each connection to `handle` in a thread of its
    own; (its port, a function that stops it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                handle(conn)
            except OSError:
                pass

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(2)
        listener.close()

    return listener.getsockname()[1], close


def test_malformed_response_is_counted_not_fatal():
    """A server speaking garbage: each request fails with the parser's error, the run carries on."""
    def garbage(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"NOT-HTTP at all\r\n\r\n")

    port, close = socket_server(garbage)
    try:
        result, elapsed = load(f"http://127.0.0.1:{port}/", "--requests", 3, "--timeout", 1)
    finally:
        close()
    assert (result["requests"], result["failed"]) == (3, 3)
    assert result["errors"] == {"BadStatusLine": 3}
    assert elapsed < 3


def closing_server(answers_per_connection: int) -> tuple[int, Callable[[], None]]:
    """A server that answers the first `answers_per_connection` requests of each connection (200,
    kept alive), then reads the next one and closes the connection without a word: the race of a
    server closing an idle kept-alive connection as the client sends on it."""
    def answer_then_close(conn: socket.socket) -> None:
        for _ in range(answers_per_connection):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        conn.recv(65536)

    return socket_server(answer_then_close)


def test_a_request_on_a_kept_alive_connection_the_server_closed_is_sent_again_once():
    """The server closes each connection as the second request goes out on it: that request goes
    again on a new connection (as browsers and curl do) and succeeds; the retries are counted."""
    port, close = closing_server(answers_per_connection=1)
    try:
        result, _ = load(f"http://127.0.0.1:{port}/", "--requests", 4, "--timeout", 2)
    finally:
        close()
    assert (result["requests"], result["ok"], result["failed"], result["retried"]) == (4, 4, 0, 3), result


def test_a_request_on_a_new_connection_is_never_sent_again():
    """A server that closes every connection without answering: each request fails once, on its new
    connection, and is not retried."""
    port, close = closing_server(answers_per_connection=0)
    try:
        result, _ = load(f"http://127.0.0.1:{port}/", "--requests", 3, "--timeout", 2)
    finally:
        close()
    assert (result["requests"], result["failed"], result["retried"]) == (3, 3, 0), result
    assert result["errors"] == {"RemoteDisconnected": 3}, result


def test_worker_exception_does_not_kill_the_run(serve, monkeypatch):
    server = serve()
    calls = {"n": 0}
    real = loadgen.http.client.HTTPConnection.getresponse

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] % 2:
            raise RuntimeError("surprise")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(loadgen.http.client.HTTPConnection, "getresponse", flaky)
    result, _ = load(server.url(), "--requests", 6)
    assert (result["requests"], result["ok"], result["failed"]) == (6, 3, 3)
    assert result["errors"] == {"RuntimeError": 3}


# --- the command line ----------------------------------------------------------------------------


def test_cli_prints_json_and_exit_codes(serve):
    good = serve()
    bad = serve(lambda n: Reply(status=502))

    done = cli(good.url(), "--requests", 3, "--fail-on-error")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["ok"] == 3
    assert done.stdout.count("\n") == 1

    done = cli(bad.url(), "--requests", 3, "--fail-on-error")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["errors"] == {"status 502": 3}

    done = cli(bad.url(), "--requests", 3)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["failed"] == 3


def test_cli_refused_connection_fail_on_error(closed_port):
    done = cli(f"http://127.0.0.1:{closed_port}/", "--requests", 2, "--timeout", 1, "--fail-on-error")
    assert done.returncode == 1
    assert json.loads(done.stdout)["errors"] == {"ConnectionRefusedError": 2}


def test_cli_progress_goes_to_stderr_and_quiet_silences_it(serve):
    server = serve(lambda n: Reply(delay=0.01))
    done = cli(server.url(), "--requests", 100000, "--duration", 1.2, "--progress")
    assert done.returncode == 0, done.stderr
    assert "loadgen:" in done.stderr
    assert json.loads(done.stdout)["failed"] == 0

    done = cli(server.url(), "--requests", 100000, "--duration", 1.2, "--progress", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["failed"] == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--requests", "100001"], "--requests 100001 is above the cap of 100000"),
        (["--duration", "601"], "--duration 601 is outside the range (0, 600]"),
        (["--concurrency", "65"], "--concurrency 65 is above the cap of 64"),
    ],
)
def test_cli_refuses_above_the_hard_caps(serve, args, message):
    server = serve()
    done = cli(server.url(), *args, timeout=10)
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr
    assert server.seen == []  # refused before sending anything


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeout", "601"], "--timeout 601 is outside the range"),
        (["--requests", "0"], "--requests must be at least 1"),
        (["--duration", "0"], "--duration 0 is outside the range"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--rate", "0"], "--rate must be above 0"),
        (["--duration", "nan"], "finite"),
        (["--requests", "many"], "--requests wants a number"),
        (["--header", "no colon"], "--header wants 'Name: value'"),
        (["--expect-status", "99"], "--expect-status wants an HTTP status code"),
        (["--insecure", "--cacert", "/dev/null"], "not allowed with"),
    ],
)
def test_refuses_bad_arguments(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        loadgen.parse_args(["http://127.0.0.1/", *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8080/", "http:///nohost", "http://127.0.0.1:99999/"])
def test_refuses_bad_urls(capsys, url):
    with pytest.raises(SystemExit) as exit_:
        loadgen.parse_args([url])
    assert exit_.value.code == 2
    assert "bad URL" in capsys.readouterr().err


def test_caps_themselves_are_allowed():
    opts = loadgen.parse_args(
        ["http://127.0.0.1/", "--requests", "100000", "--duration", "600", "--timeout", "600", "--concurrency", "64"]
    )
    assert (opts.requests, opts.duration, opts.timeout, opts.concurrency) == (100000, 600, 600, 64)


def test_script_is_executable_with_env_python3():
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")
    assert SCRIPT.stat().st_mode & 0o111


# --- HTTPS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for IP 127.0.0.1 (cert.pem, key.pem), made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(serve, certificate) -> Server:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return serve(alternating, context=context)


def test_https_insecure_accepts_self_signed(tls_server):
    result, _ = load(tls_server.url(scheme="https"), "--requests", 4, "--insecure")
    assert (result["ok"], result["failed"]) == (4, 0)
    assert result["by_host"] == {"web1": 2, "web2": 2}
    assert tls_server.connections == 1  # keep-alive over TLS too


def test_https_verifies_by_default(tls_server):
    result, elapsed = load(tls_server.url(scheme="https"), "--requests", 3, "--timeout", 2)
    assert (result["ok"], result["failed"]) == (0, 3)
    assert list(result["errors"]) == ["SSLCertVerificationError"]
    assert elapsed < 3


def test_https_cacert_verifies(tls_server, certificate):
    cert, _ = certificate
    result, _ = load(tls_server.url(scheme="https"), "--requests", 3, "--cacert", str(cert))
    assert (result["ok"], result["failed"]) == (3, 0)


def test_cli_https_fail_on_error(tls_server, certificate):
    cert, _ = certificate
    assert cli(tls_server.url(scheme="https"), "-n", 2, "--fail-on-error", "--timeout", 2).returncode == 1
    assert cli(tls_server.url(scheme="https"), "-n", 2, "--fail-on-error", "--cacert", cert).returncode == 0
    assert cli(tls_server.url(scheme="https"), "-n", 2, "--fail-on-error", "--insecure").returncode == 0


def test_timeout_limits_the_whole_request_over_tls(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/"
        result, elapsed = load(url, "--requests", 1, "--timeout", 0.5, "--duration", 5, "--cacert", str(cert))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result["errors"] == {"timeout": 1}
    assert elapsed < 2


def test_cacert_must_be_readable(tmp_path):
    done = cli("https://127.0.0.1:1/", "--cacert", tmp_path / "missing.pem", timeout=10)
    assert done.returncode == 2
    assert "--cacert" in done.stderr
