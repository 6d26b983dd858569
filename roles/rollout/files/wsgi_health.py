#!/usr/bin/env python3
"""Ask app server instances for their health page, bypassing nginx.

    wsgi-health ADDRESS... [--protocol http|uwsgi] [--path /] [--expect-release ID]
                           [--release-header X-App-Release] [--timeout 5] [--wait 0]

ADDRESS is what an instance listens on: a unix socket path or host:port. An instance is healthy
when it answers PATH with a 2xx status and, with --expect-release, runs that release (so "healthy"
means "the new code answers"). The release is read from the response header --release-header,
which the collection's WSGI entry point (wsgideploy_release) adds to every answer, so the app needs
no route of its own; an answer without that header may name the release in a JSON body
{"release": ID} instead (apps that report it themselves). With --wait SECONDS every instance is asked again, once a second, until
it is healthy or the time is up (all instances wait together, so the gate of a host takes at most
SECONDS whatever their number). Prints one line per instance; exit 0 all healthy, 1 some
unhealthy, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time


def connect(address: str, timeout: float) -> socket.socket:
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


def fetch(address: str, protocol: str, path: str, timeout: float) -> tuple[int, dict[str, str], bytes]:
    with connect(address, timeout) as sock:
        if protocol == "uwsgi":
            sock.sendall(uwsgi_packet(path, "localhost"))
        else:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: wsgi-health\r\n\r\n".encode())
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


def check(address: str, args: argparse.Namespace) -> tuple[bool, str]:
    try:
        status, headers, body = fetch(address, args.protocol, args.path, args.timeout)
    except (OSError, ValueError) as exc:
        return False, f"unhealthy: {address}: {exc.__class__.__name__}: {exc}"
    if not 200 <= status < 300:
        return False, f"unhealthy: {address}: status {status} on {args.path}"
    if args.expect_release:
        release = release_of(headers, body, args.release_header)
        if release != args.expect_release:
            return False, f"unhealthy: {address}: release {release!r}, expected {args.expect_release!r}"
    return True, f"healthy: {address}: status {status}" + (f", release {args.expect_release}" if args.expect_release else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", nargs="+")
    parser.add_argument("--protocol", choices=["http", "uwsgi"], default="http")
    parser.add_argument("--path", default="/")
    parser.add_argument("--expect-release", default="")
    parser.add_argument("--release-header", default="X-App-Release")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--wait", type=float, default=0.0)
    args = parser.parse_args(argv)
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
