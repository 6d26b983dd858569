#!/usr/bin/env python3
"""Try nginx's config as it is on disk, before the live nginx loads it: a twin of nginx.

    nginx-trial [--offset 20000] [--conf-dir DIR ...] -- COMMAND [ARG ...] [-- COMMAND [ARG ...]] ...
    nginx-trial --live -- COMMAND [ARG ...] [-- COMMAND [ARG ...]] ...

Copies the config directories (default /etc/nginx) to a private directory (root only), moves every
`listen` of the copy to 127.0.0.1 and its port plus OFFSET (IPv6 and unix listeners left out: the
same servers answer on IPv4), its pid file into the copy, and starts a second nginx master on it.
The live nginx and its clients see nothing of it. Then runs each COMMAND (a check that asks the
twin's ports), stops the twin (QUIT: it finishes its answers) and removes the copy. Prints each
command's output; exit 0 when every command succeeded, 1 when one failed or the twin could not
start, 2 usage. --live: no twin, the commands only (they ask the live nginx), in one go.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LISTEN = re.compile(r"^(\s*listen\s+)(\S+?)(?=[\s;])(.*)$")
PID = re.compile(r"^\s*pid\s+[^;]*;", re.MULTILINE)


def twin_listen(line: str, offset: int) -> str | None:
    """A listen line moved to 127.0.0.1:port+offset; None for IPv6 or unix listeners."""
    match = LISTEN.match(line)
    if not match:
        return line
    head, address, rest = match.groups()
    if address.startswith("[") or address.startswith("unix:"):
        return None
    port = address.rpartition(":")[2] if ":" in address else address
    if not port.isdigit():  # a host name alone: port 80
        port = "80"
    if int(port) + offset > 65535:
        raise ValueError(f"port {port} + offset {offset} is above 65535")
    return f"{head}127.0.0.1:{int(port) + offset}{rest}"


def rewrite(path: str, root: str, dirs: list[str], offset: int) -> None:
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        text = fh.read()
    lines = []
    for line in text.split("\n"):
        moved = twin_listen(line, offset)
        if moved is not None:
            lines.append(moved)
    text = "\n".join(lines)
    for conf_dir in dirs:  # every path into the live config points into the copy
        text = text.replace(conf_dir.rstrip("/") + "/", root + conf_dir.rstrip("/") + "/")
    text = PID.sub(f"pid {root}/nginx.pid;", text)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(text)


def run(commands: list[list[str]]) -> int:
    """Each command in turn, its output passed on; 1 when one failed."""
    failed = False
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        failed = failed or done.returncode != 0
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    offset, dirs, rest, live = 20000, [], argv, False
    while rest and rest[0] != "--":
        if rest[0] == "--live":
            live, rest = True, rest[1:]
        elif rest[0] == "--offset" and len(rest) > 1 and rest[1].isdigit():
            offset, rest = int(rest[1]), rest[2:]
        elif rest[0] == "--conf-dir" and len(rest) > 1 and rest[1].startswith("/"):
            dirs, rest = dirs + [os.path.normpath(rest[1])], rest[2:]
        else:
            print(__doc__, file=sys.stderr)
            return 2
    commands: list[list[str]] = []
    for word in rest:
        if word == "--":
            commands.append([])
        else:
            commands[-1].append(word)
    if not commands or not all(commands):
        print(__doc__, file=sys.stderr)
        return 2
    if live:
        return run(commands)
    dirs = [d for d in dict.fromkeys(dirs or ["/etc/nginx"]) if not any(d.startswith(o + "/") for o in dirs if o != d)]
    root = tempfile.mkdtemp(prefix="nginx-trial-")
    pid = None
    try:
        for conf_dir in dirs:
            shutil.copytree(conf_dir, root + conf_dir, symlinks=True)
        for conf_dir in dirs:
            for where, _, names in os.walk(root + conf_dir):
                for name in names:
                    path = os.path.join(where, name)
                    if os.path.isfile(path) and not os.path.islink(path):
                        rewrite(path, root, dirs, offset)
        started = subprocess.run(
            ["nginx", "-q", "-c", f"{root}/etc/nginx/nginx.conf", "-g", "daemon on;"],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            print(f"nginx-trial: the twin of nginx did not start: {started.stderr.strip()}")
            return 1
        for _ in range(50):
            if os.path.exists(f"{root}/nginx.pid"):
                with open(f"{root}/nginx.pid") as fh:
                    pid = int(fh.read().strip())
                break
            time.sleep(0.1)
        print(f"A twin of nginx on the config on disk (each listener's port + {offset}, not yet live):")
        return run(commands)
    except (OSError, ValueError) as exc:
        print(f"nginx-trial: {exc.__class__.__name__}: {exc}")
        return 1
    finally:
        if pid:
            try:
                os.kill(pid, signal.SIGQUIT)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
