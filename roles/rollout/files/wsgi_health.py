#!/usr/bin/env python3
"""Ask app server instances for their health page, bypassing nginx.

    wsgi-health ADDRESS... [--protocol http|uwsgi] [--path /] [--expect-release ID[,ID]]
                           [--release-header X-App-Release] [--timeout 5] [--wait 0]
                           [--host NAME] [--header-file NAME=FILE] [--proof-header NAME]
                           [--proof-in VALUE ...] [--redirect-to URL]

ADDRESS is what an instance listens on: a unix socket path or host:port. An instance is healthy
when it answers PATH with a 2xx status and, with --expect-release, runs that release (so "healthy"
means "the new code answers"; several IDs: any of them). The release is read from the response header --release-header,
which the collection's WSGI entry point (wsgideploy_release) adds to every answer, so the app needs
no route of its own; an answer without that header may name the release in a JSON body
{"release": ID} instead (apps that report it themselves). With --wait SECONDS every instance is asked again, once a second, until
it is healthy or the time is up (all instances wait together, so the gate of a host takes at most
SECONDS whatever their number). Prints one line per instance; exit 0 all healthy, 1 some
unhealthy, 2 usage.

A load balancer's listener is asked the same way (roles/lb/tasks/gate.yml): ADDRESS is then
http://HOST:PORT or https://HOST:PORT (TLS, the certificate not verified: the question is where the
lb routes, not who it is), --host names the site (Host header and TLS SNI), --header-file sends a
header whose value is read from FILE (a secret stays out of the command line), and --proof-header
names a header the answer must carry (the last of its comma-separated values one of --proof-in,
when given): the lb's word that an upstream server answered. --redirect-to URL: the answer must be
a redirect to exactly URL instead (a plain HTTP listener that sends clients to HTTPS).
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
import sys
import time


def connect(address: str, timeout: float, server_name: str = "localhost") -> socket.socket:
    scheme, sep, rest = address.partition("://")
    if sep:
        sock = connect(rest, timeout)
        if scheme == "https":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=server_name)
        return sock
    if address.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return socket.create_connection((host, int(port)), timeout=timeout)


def uwsgi_packet(path: str, host: str) -> bytes:
    """A uwsgi protocol request (modifier 0): the WSGI environ as length-prefixed pairs."""
    env = {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": path,
        "PATH_INFO": path.split("?", 1)[0],
        "QUERY_STRING": path.split("?", 1)[1] if "?" in path else "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "HTTP_USER_AGENT": "wsgi-health",
    }
    body = b"".join(
        struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode() for k, v in env.items()
    )
    return struct.pack("<BHB", 0, len(body), 0) + body


def fetch(
    address: str, protocol: str, path: str, timeout: float, host: str = "localhost", extra: str = ""
) -> tuple[int, dict[str, str], bytes]:
    with connect(address, timeout, host) as sock:
        if protocol == "uwsgi":
            sock.sendall(uwsgi_packet(path, host))
        else:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: wsgi-health\r\n{extra}\r\n".encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP answer: {raw[:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(status_line[1]), headers, body


def release_of(headers: dict[str, str], body: bytes, header: str) -> str | None:
    """The release an answer names: the header, else a JSON body's "release"."""
    if header and header.lower() in headers:
        return headers[header.lower()]
    try:
        release = json.loads(body).get("release")
    except (ValueError, AttributeError):
        return None
    return release if isinstance(release, str) else None


def extra_headers(specs: list[str]) -> str:
    """Request header lines from NAME=FILE specs: each value is FILE's content, stripped."""
    lines = ""
    for spec in specs:
        name, _, path = spec.partition("=")
        with open(path, encoding="ascii") as fh:
            value = fh.read().strip()
        if not name.replace("-", "").isalnum() or not value.isprintable():
            raise ValueError(f"--header-file {spec}: not a header name and a one-line value")
        lines += f"{name}: {value}\r\n"
    return lines


def check(address: str, args: argparse.Namespace) -> tuple[bool, str]:
    # A listener's answer names the URL and Host asked; an instance's, its address.
    where = f"{address}{args.path} (Host {args.host})" if "://" in address else address
    try:
        status, headers, body = fetch(address, args.protocol, args.path, args.timeout, args.host, args.extra)
    except (OSError, ValueError) as exc:
        return False, f"unhealthy: {where}: {exc.__class__.__name__}: {exc}"
    said = f"status {status}, {body[:80]!r}"
    if args.redirect_to:
        location = headers.get("location")
        if status in (301, 302, 307, 308) and location == args.redirect_to:
            return True, f"healthy: {where}: status {status} to {location}"
        return False, f"unhealthy: {where}: {said}, location {location!r}, expected a redirect to {args.redirect_to}"
    if args.proof_header:
        proof = headers.get(args.proof_header.lower(), "").split(",")[-1].strip()
        if not proof or (args.proof_in and proof not in args.proof_in):
            return False, (
                f"unhealthy: {where}: {said}, not answered by an upstream server of the app"
                f" ({args.proof_header}: {proof!r}" + (f", expected one of {args.proof_in}" if args.proof_in else "") + ")"
            )
        where += f" via {proof}"
    if not 200 <= status < 300:
        if "://" in address:
            return False, f"unhealthy: {where}: {said}"
        return False, f"unhealthy: {address}: status {status} on {args.path}"
    if args.expect_release:
        release = release_of(headers, body, args.release_header)
        # More than one: any of them (a load balancer's answer, while the fleet runs either).
        expected = [r for r in args.expect_release.split(",") if r]
        if release not in expected:
            return False, f"unhealthy: {where}: release {release!r}, expected {args.expect_release!r}"
        return True, f"healthy: {where}: status {status}, release {release}"
    return True, f"healthy: {where}: status {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", nargs="+")
    parser.add_argument("--protocol", choices=["http", "uwsgi"], default="http")
    parser.add_argument("--path", default="/")
    parser.add_argument("--expect-release", default="")
    parser.add_argument("--release-header", default="X-App-Release")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--wait", type=float, default=0.0)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--header-file", action="append", default=[])
    parser.add_argument("--proof-header", default="")
    parser.add_argument("--proof-in", action="append", default=[])
    parser.add_argument("--redirect-to", default="")
    args = parser.parse_args(argv)
    if not args.host.replace(".", "").replace("-", "").replace(":", "").isalnum():
        parser.error(f"--host {args.host!r}: not a host name")
    try:
        args.extra = extra_headers(args.header_file)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    deadline = time.monotonic() + args.wait
    results: dict[str, tuple[bool, str]] = {}
    pending = list(dict.fromkeys(args.address))
    while True:
        for address in pending:
            results[address] = check(address, args)
        pending = [a for a in pending if not results[a][0]]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(1)
    for address in args.address:
        print(results[address][1])
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main())
