#!/usr/bin/env python3
"""A small, bounded HTTP load generator for the molecule tests and benchmarks.

    loadgen.py URL [--requests N] [--duration SECONDS] [--rate RPS] [--concurrency C]
                   [--timeout SECONDS] [--insecure | --cacert FILE]
                   [--header 'Name: value' ...] [--expect-status CODE ...]
                   [--stop-file PATH] [--fail-on-error] [--progress] [--quiet]

Sends GET requests to URL from C worker threads and prints one JSON object on stdout:

    {"url", "requests", "ok", "failed", "errors": {kind: n}, "retried", "status": {code: n},
     "by_host": {host: n}, "by_instance": {"host/instance": n},
     "duration_s", "rate_achieved", "latency_ms": {"p50", "p95", "p99", "max"}}

Bounds: the run stops when N requests (default 100) have finished or when the duration
(default 30 s) has elapsed, whichever comes first; no request starts after the duration.
--stop-file PATH ends it sooner: once PATH exists no request starts, and the ones in flight
finish (a load that lasts as long as some action, the duration being its upper bound). Hard
caps, whatever the arguments: 100000 requests, 600 s of duration or timeout, 64 workers; above
them the script refuses to run (exit 2). The run always ends within duration + timeout + 1 s.

Load: without --rate every worker sends its next request as soon as the previous one is done
(--concurrency 1, the default, is sequential). With --rate the load is constant: request i is
scheduled at start + i/RPS and waits for that moment (it starts late if every worker is busy).

Connections: every worker keeps one persistent HTTP/1.1 connection and opens a new one after
any error, after a `Connection: close` from the server, or when the server closed the idle
connection. A request whose kept-alive connection the server closed as it went out (a reset or
close before any byte of the answer: nginx closes idle connections at a reload) is sent once more
on a new connection, as browsers and curl do for a GET; `retried` counts those. A request on a new
connection, or one whose answer had begun, is never sent again. Redirects are not followed (a 301 counts as status 301). HTTPS verifies against the
system CAs; --cacert FILE verifies against FILE instead; --insecure verifies nothing (self-signed
test certificates).

Failures: a request fails on a connection error, a timeout, or a status outside --expect-status
(repeatable; default: any 2xx). Errors are counted by kind: the exception's class name
("ConnectionRefusedError", "RemoteDisconnected", "SSLCertVerificationError", ...), "timeout",
or "status 502". --timeout (default 5 s) limits one request as a whole, from connecting to the
last byte of the body. A request still unfinished when the run has to end counts as a timeout.

Counts: `status` counts every response by status code; `by_host` counts responses by their
X-App-Host header and `by_instance` by "X-App-Host/X-App-Instance" (responses without the
header are not in these counts). `latency_ms` covers the requests that got a whole response,
whatever the status (null values when there were none).

Output: the JSON object only; --progress adds a line a second on stderr; --quiet guarantees
nothing but the JSON (no progress). Exit status: 0; 1 with --fail-on-error when a request
failed; 2 on bad arguments.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import select
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

MAX_REQUESTS = 100_000
MAX_SECONDS = 600.0
MAX_CONCURRENCY = 64
USER_AGENT = "wsgideploy-loadgen/1"

# How often the main thread checks the workers (request timeouts, the end of the run, progress).
TICK = 0.05
# A request exceeding --timeout by this much is cut off by closing its socket from outside.
KILL_GRACE = 0.05
# After the duration, requests in flight get --timeout plus this much before the run gives up.
END_GRACE = 0.5


class UsageError(Exception):
    """Bad arguments: the message goes to stderr and the exit status is 2."""


@dataclass
class Options:
    url: str
    scheme: str
    host: str
    port: int | None
    target: str
    requests: int = 100
    duration: float = 30.0
    rate: float | None = None
    concurrency: int = 1
    timeout: float = 5.0
    headers: dict[str, str] = field(default_factory=dict)
    expect_status: frozenset[int] | None = None  # None: any 2xx
    ssl_context: ssl.SSLContext | None = None
    fail_on_error: bool = False
    stop_file: str | None = None
    progress: bool = False


# --- arguments -----------------------------------------------------------------------------------


def _number(kind, name):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} wants a number, not {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} wants a finite number, not {text!r}")
        return value

    return convert


def _status(text: str) -> int:
    try:
        code = int(text)
    except ValueError:
        code = 0
    if not 100 <= code <= 599:
        raise argparse.ArgumentTypeError(f"--expect-status wants an HTTP status code (100-599), not {text!r}")
    return code


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c.isspace() or c in "()<>@,;:\\\"/[]?={}" for c in name):
        raise argparse.ArgumentTypeError(f"--header wants 'Name: value', not {text!r}")
    value = value.strip()
    if "\r" in value or "\n" in value:
        raise argparse.ArgumentTypeError(f"--header value of {name} contains a line break")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadgen.py",
        description="Send a bounded load of GET requests to URL and print a JSON summary on stdout.",
    )
    parser.add_argument("url", metavar="URL", help="http:// or https:// URL to GET")
    parser.add_argument(
        "--requests", "-n", type=_number(int, "--requests"), default=100, metavar="N",
        help=f"stop after N finished requests (default 100, at most {MAX_REQUESTS})",
    )
    parser.add_argument(
        "--duration", "-d", type=_number(float, "--duration"), default=30.0, metavar="SECONDS",
        help=f"start no request after SECONDS (default 30, at most {MAX_SECONDS:g})",
    )
    parser.add_argument(
        "--rate", "-r", type=_number(float, "--rate"), default=None, metavar="RPS",
        help="constant load of RPS requests a second in total (default: as fast as the workers go)",
    )
    parser.add_argument(
        "--concurrency", "-c", type=_number(int, "--concurrency"), default=1, metavar="C",
        help=f"worker threads, each with its own connection (default 1: sequential; at most {MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--timeout", "-t", type=_number(float, "--timeout"), default=5.0, metavar="SECONDS",
        help=f"limit of one request, connect to last byte (default 5, at most {MAX_SECONDS:g})",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--insecure", "-k", action="store_true", help="HTTPS: do not verify the server certificate")
    tls.add_argument("--cacert", metavar="FILE", help="HTTPS: verify the server against the CA certificates in FILE")
    parser.add_argument(
        "--header", "-H", type=_header, action="append", default=[], metavar="'Name: value'",
        help="extra request header (repeatable; a Host header replaces the URL's)",
    )
    parser.add_argument(
        "--expect-status", type=_status, action="append", default=None, metavar="CODE",
        help="a status that counts as success (repeatable; default: any 2xx)",
    )
    parser.add_argument("--stop-file", metavar="PATH", help="start no request once PATH exists (in-flight ones finish)")
    parser.add_argument("--fail-on-error", action="store_true", help="exit 1 when any request failed")
    parser.add_argument("--progress", action="store_true", help="a progress line a second on stderr")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing but the JSON (overrides --progress)")
    return parser


def options_from(ns: argparse.Namespace) -> Options:
    """Check the parsed arguments against the hard caps and build the run's Options."""
    if ns.requests < 1:
        raise UsageError(f"--requests must be at least 1, not {ns.requests}")
    if ns.requests > MAX_REQUESTS:
        raise UsageError(f"--requests {ns.requests} is above the cap of {MAX_REQUESTS}")
    if not 0 < ns.duration <= MAX_SECONDS:
        raise UsageError(f"--duration {ns.duration:g} is outside the range (0, {MAX_SECONDS:g}] seconds")
    if not 0 < ns.timeout <= MAX_SECONDS:
        raise UsageError(f"--timeout {ns.timeout:g} is outside the range (0, {MAX_SECONDS:g}] seconds")
    if ns.concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, not {ns.concurrency}")
    if ns.concurrency > MAX_CONCURRENCY:
        raise UsageError(f"--concurrency {ns.concurrency} is above the cap of {MAX_CONCURRENCY}")
    if ns.rate is not None and ns.rate <= 0:
        raise UsageError(f"--rate must be above 0, not {ns.rate:g}")

    try:
        parts = urllib.parse.urlsplit(ns.url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad URL {ns.url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"bad URL {ns.url!r}: want http://HOST[:PORT]/PATH or https://...")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query

    context = None
    if parts.scheme == "https":
        if ns.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            try:
                context = ssl.create_default_context(cafile=ns.cacert)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"--cacert {ns.cacert}: {exc}") from None

    headers = {"User-Agent": USER_AGENT}
    for name, value in ns.header:
        for known in [k for k in headers if k.lower() == name.lower()]:
            del headers[known]
        headers[name] = value

    return Options(
        url=ns.url,
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        target=target,
        requests=ns.requests,
        duration=ns.duration,
        rate=ns.rate,
        concurrency=ns.concurrency,
        timeout=ns.timeout,
        headers=headers,
        expect_status=frozenset(ns.expect_status) if ns.expect_status else None,
        ssl_context=context,
        fail_on_error=ns.fail_on_error,
        stop_file=ns.stop_file,
        progress=ns.progress and not ns.quiet,
    )


def parse_args(argv: list[str] | None = None) -> Options:
    """Options from the command line; exits 2 with a message on bad arguments."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return options_from(ns)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2


# --- the run -------------------------------------------------------------------------------------


class Stats:
    """The counts of one run, shared by the workers. Frozen once the run has ended."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frozen = False
        self.ok = 0
        self.failed = 0
        self.retried = 0
        self.errors: Counter[str] = Counter()
        self.status: Counter[int] = Counter()
        self.by_host: Counter[str] = Counter()
        self.by_instance: Counter[str] = Counter()
        self.latencies: list[float] = []

    def record(
        self,
        *,
        ok: bool,
        error: str | None = None,
        status: int | None = None,
        latency: float | None = None,
        host: str | None = None,
        instance: str | None = None,
    ) -> None:
        with self.lock:
            if self.frozen:
                return
            if ok:
                self.ok += 1
            else:
                self.failed += 1
                self.errors[error or "unknown"] += 1
            if status is not None:
                self.status[status] += 1
            if latency is not None:
                self.latencies.append(latency)
            if host:
                self.by_host[host] += 1
            if instance:
                self.by_instance[f"{host or '?'}/{instance}"] += 1

    def record_retry(self) -> None:
        with self.lock:
            if not self.frozen:
                self.retried += 1

    @property
    def finished(self) -> int:
        return self.ok + self.failed


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)]


# What a request sent on a kept-alive connection the server has just closed fails with, before any
# answer (http.client's RemoteDisconnected is a ConnectionResetError).
STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "timeout"
    return type(exc).__name__


def _server_closed(sock: socket.socket) -> bool:
    """True when an idle keep-alive connection is readable: the server closed it (or sent junk)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class Worker(threading.Thread):
    """Sends requests over one persistent connection until the run says stop."""

    def __init__(self, run: Run, number: int) -> None:
        super().__init__(name=f"loadgen-{number}", daemon=True)
        self.load = run
        self.lock = threading.Lock()
        self.conn: http.client.HTTPConnection | None = None
        self.since: float | None = None  # monotonic start of the request in flight
        self.killed = False  # the request in flight was cut off for taking too long

    # the main thread's view ---------------------------------------------------------------------

    def kill_if_overdue(self, now: float, limit: float) -> None:
        """Cut off a request in flight for longer than `limit` by shutting its socket down."""
        with self.lock:
            if self.since is None or self.killed or now - self.since <= limit:
                return
            self.killed = True
            sock = self.conn.sock if self.conn is not None else None
            if sock is not None:
                try:  # the plain socket's shutdown: it wakes a blocked read, TLS or not
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def in_flight(self) -> bool:
        with self.lock:
            return self.since is not None

    # the worker's own ---------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        opts = self.load.opts
        conn = self.conn
        if conn is not None and conn.sock is not None and _server_closed(conn.sock):
            conn.close()  # reconnects on the next request
        if conn is None:
            if opts.scheme == "https":
                conn = http.client.HTTPSConnection(
                    opts.host, opts.port, timeout=opts.timeout, context=opts.ssl_context
                )
            else:
                conn = http.client.HTTPConnection(opts.host, opts.port, timeout=opts.timeout)
            with self.lock:
                self.conn = conn
        return conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass

    def _one_request(self) -> None:
        opts = self.load.opts
        stats = self.load.stats
        with self.lock:
            self.since = time.monotonic()
            self.killed = False
        began = time.perf_counter()
        retried = False
        while True:
            conn = self._connection()
            reused = conn.sock is not None
            response = None
            try:
                conn.request("GET", opts.target, headers=opts.headers)
                response = conn.getresponse()
                while response.read(65536):
                    pass
                # http.client itself closes the connection after `Connection: close` (or
                # HTTP/1.0) and opens a new one on the next request.
            except Exception as exc:
                with self.lock:
                    killed = self.killed
                self._drop_connection()
                # The server closed a kept-alive connection as the request went out on it (nginx
                # closes idle ones at a reload): no byte of an answer came, and the request is a
                # GET. Sent once more on a new connection, as browsers and curl do; counted.
                if reused and response is None and not killed and not retried and isinstance(exc, STALE_CONNECTION):
                    retried = True
                    stats.record_retry()
                    continue
                with self.lock:
                    self.since = None
                stats.record(ok=False, error="timeout" if killed else error_kind(exc))
                return
            break
        latency = time.perf_counter() - began
        with self.lock:
            killed, self.since = self.killed, None
        if killed:  # finished anyway, but only after the cut-off
            self._drop_connection()
            stats.record(ok=False, error="timeout")
            return
        code = response.status
        ok = code in opts.expect_status if opts.expect_status else 200 <= code <= 299
        stats.record(
            ok=ok,
            error=None if ok else f"status {code}",
            status=code,
            latency=latency,
            host=response.getheader("X-App-Host"),
            instance=response.getheader("X-App-Instance"),
        )

    def run(self) -> None:
        try:
            while True:
                slot = self.load.claim()
                if slot is None:
                    break
                if self.load.wait_until(slot):
                    break
                try:
                    self._one_request()
                except Exception as exc:  # a surprise in this script: count it, carry on
                    with self.lock:
                        self.since = None
                    self._drop_connection()
                    self.load.stats.record(ok=False, error=f"internal {type(exc).__name__}")
        finally:
            self._drop_connection()
            self.load.worker_done()


class Run:
    """One bounded run: hands out request slots to the workers and watches the clock."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.stats = Stats()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.all_done = threading.Event()
        self.next_index = 0
        self.running = 0
        self.start = 0.0
        self.deadline = 0.0
        self.end: float | None = None
        self.interrupted = False

    def claim(self) -> float | None:
        """The start time of the next request, or None when no more requests may start."""
        with self.lock:
            if self.stop.is_set() or self.next_index >= self.opts.requests:
                return None
            if self.opts.rate:
                at = self.start + self.next_index / self.opts.rate
            else:
                at = time.monotonic()
            if at >= self.deadline:
                return None
            self.next_index += 1
            return at

    def wait_until(self, at: float) -> bool:
        """Sleep until `at`; True when the run was stopped meanwhile."""
        delay = at - time.monotonic()
        if delay > 0:
            return self.stop.wait(delay)
        return self.stop.is_set()

    def worker_done(self) -> None:
        with self.lock:
            self.running -= 1
            if self.running == 0:
                self.end = time.monotonic()
                self.all_done.set()

    def execute(self) -> dict:
        opts = self.opts
        workers = [Worker(self, n) for n in range(min(opts.concurrency, opts.requests))]
        self.running = len(workers)
        self.start = time.monotonic()
        self.deadline = self.start + opts.duration
        give_up = self.deadline + opts.timeout + END_GRACE
        next_progress = self.start + 1.0
        try:
            for worker in workers:
                try:
                    worker.start()
                except RuntimeError:  # no more threads to be had: run with those that started
                    self.worker_done()
            while not self.all_done.wait(TICK):
                now = time.monotonic()
                for worker in workers:
                    worker.kill_if_overdue(now, opts.timeout + KILL_GRACE)
                if now >= give_up:
                    break
                if opts.stop_file and now < self.deadline and os.path.exists(opts.stop_file):
                    with self.lock:
                        self.deadline = now
                    give_up = now + opts.timeout + END_GRACE
                if opts.progress and now >= next_progress:
                    next_progress += 1.0
                    self._progress(now)
        except KeyboardInterrupt:  # Ctrl-C: stop and report what there is
            self.interrupted = True
        finally:
            self.stop.set()
            with self.stats.lock:
                self.stats.frozen = True
                if self.end is None:  # gave up (or interrupted): what is still in flight timed out
                    self.end = time.monotonic()
                    stuck = sum(1 for worker in workers if worker.in_flight())
                    if stuck:
                        self.stats.failed += stuck
                        self.stats.errors["timeout"] += stuck
        return self.summary()

    def _progress(self, now: float) -> None:
        s = self.stats
        with s.lock:
            line = f"loadgen: {now - self.start:5.1f}s {s.finished} requests ({s.ok} ok, {s.failed} failed)"
        print(line, file=sys.stderr, flush=True)

    def summary(self) -> dict:
        s = self.stats
        duration = max((self.end or time.monotonic()) - self.start, 0.0)
        ordered = sorted(s.latencies)

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 2)

        return {
            "url": self.opts.url,
            "requests": s.finished,
            "ok": s.ok,
            "failed": s.failed,
            "errors": dict(sorted(s.errors.items())),
            "retried": s.retried,
            "status": {str(code): n for code, n in sorted(s.status.items())},
            "by_host": dict(sorted(s.by_host.items())),
            "by_instance": dict(sorted(s.by_instance.items())),
            "duration_s": round(duration, 3),
            "rate_achieved": round(s.finished / duration, 2) if duration > 0 else 0.0,
            "latency_ms": {
                "p50": ms(percentile(ordered, 50)),
                "p95": ms(percentile(ordered, 95)),
                "p99": ms(percentile(ordered, 99)),
                "max": ms(ordered[-1] if ordered else None),
            },
        }


def run(opts: Options) -> dict:
    """Run the load described by `opts` and return the summary."""
    return Run(opts).execute()


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    load = Run(opts)
    result = load.execute()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    if load.interrupted:
        return 130
    return 1 if opts.fail_on_error and result["failed"] > 0 else 0


if __name__ == "__main__":
    code = main()
    # Workers still stuck (in a DNS lookup, say) are daemon threads; leave without waiting for them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
