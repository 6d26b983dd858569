#!/usr/bin/env python3
"""Reload one uWSGI instance worker by worker (chain reload), or gracefully when a chain cannot
pick up what changed.

    uwsgi-reload --pid PID --fifo FIFO --stamp FILE --ini FILE --venv DIR [--stats SOCKET] [--timeout 50]

A chain reload (`c` written to the master FIFO) keeps the master and replaces its workers one at a
time; each new worker loads the app afresh (lazy-apps) from the release `current` names. The master
keeps what it loaded when it (re)started: its ini file and the uWSGI of its virtualenv (new workers
are forks of it). So a graceful reload (SIGHUP: the master re-execs, reads the ini and starts from
the virtualenv `current` names) is asked for instead when

  * the ini file is newer than FILE, the stamp the master writes when it (re)starts
    (hook-master-start), or there is no stamp;
  * no file the master has mapped (/proc/PID/maps) lies in DIR resolved: the virtualenv of the
    release changed (a release whose requirements changed), or it cannot be told.

A chain reload returns once every worker that ran before has left and as many workers run again
(with --stats, the master's stats socket: once every worker is new and accepting requests), or
fails after --timeout seconds. When the master exits meanwhile (need-app: a new worker could not
load the release) it returns at once, as a graceful reload would have: the process manager
restarts the instance and the deploy's health gate finds the failure. A graceful reload returns
once it is asked for, like SIGHUP.

Prints one line (the journal keeps it). Exit 0: done (chain), or asked for (graceful), or the master
exited; 1: the chain did not complete in time, or the master could not be reached; 2: usage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

POLL = 0.1


def children(pid: int) -> set[int]:
    """The processes whose parent is pid (the master's workers)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(entry))
    return found


def mapped_files(pid: int) -> list[str] | None:
    """Paths of the files the process has mapped; None when they cannot be read."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    paths = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            paths.append(parts[5].removesuffix(" (deleted)"))
    return paths


def stats_workers(path: str) -> list[tuple[int, bool]] | None:
    """(pid, accepting) of each worker slot, from the stats socket; None when it cannot be read."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        workers = json.loads(b"".join(chunks))["workers"]
        return [(int(w["pid"]), bool(w["accepting"])) for w in workers]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def graceful_reason(pid: int, stamp: str, ini: str, venv: str) -> str | None:
    """Why a chain reload would not pick up the change (None: it would)."""
    try:
        started = os.stat(stamp).st_mtime_ns
    except OSError:
        return f"no start stamp {stamp}"
    try:
        if os.stat(ini).st_mtime_ns > started:
            return f"{ini} changed since the master started"
    except OSError as exc:
        return f"cannot read {ini}: {exc.strerror}"
    target = os.path.realpath(venv)
    mapped = mapped_files(pid)
    if mapped is None:
        return f"cannot read what the master (pid {pid}) runs"
    if not any(path.startswith(target + "/") for path in mapped):
        return f"the virtualenv changed: the master does not run from {target}"
    return None


def chain(pid: int, fifo: str, stats: str | None, timeout: float) -> tuple[bool, str]:
    """Chain-reload and wait for it; (done, what happened)."""
    before = children(pid)
    start = time.monotonic()
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"c")
    finally:
        os.close(fd)
    while True:
        if not os.path.exists(f"/proc/{pid}"):
            # need-app: a new worker that cannot load the release ends the instance, as it ends a
            # graceful reload; the process manager restarts it and the health gate judges.
            return True, f"chain reload ended the master (pid {pid}): a new worker could not load the release?"
        now = children(pid)
        old = before & now
        done = not old and len(now) >= len(before)
        if done and stats:
            workers = stats_workers(stats)
            if workers is not None:
                done = all(accepting and wpid not in before for wpid, accepting in workers)
        if done:
            return True, f"chain reload: {len(before)} workers replaced in {time.monotonic() - start:.1f} s"
        if time.monotonic() - start > timeout:
            waiting = (f"old worker(s) {sorted(old)} still run" if old
                       else "the new workers are not all up and accepting (does the release load?)")
            return False, f"chain reload not complete after {timeout:g} s: {waiting}"
        time.sleep(POLL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid", type=int, required=True, help="the master's pid")
    parser.add_argument("--fifo", required=True, help="the master FIFO")
    parser.add_argument("--stamp", required=True, help="the file the master writes when it (re)starts")
    parser.add_argument("--ini", required=True, help="the instance's ini file")
    parser.add_argument("--venv", required=True, help="the virtualenv the release names (through current)")
    parser.add_argument("--stats", help="the master's stats socket (optional)")
    parser.add_argument("--timeout", type=float, default=50.0, help="seconds a chain reload may take")
    args = parser.parse_args(argv)
    if args.pid <= 1:
        parser.error(f"--pid {args.pid}: no master to reload")

    reason = graceful_reason(args.pid, args.stamp, args.ini, args.venv)
    try:
        if reason:
            os.kill(args.pid, signal.SIGHUP)
            print(f"graceful reload (SIGHUP) of pid {args.pid}: {reason}")
            return 0
        done, what = chain(args.pid, args.fifo, args.stats, args.timeout)
    except OSError as exc:
        print(f"cannot reload pid {args.pid}: {exc.__class__.__name__}: {exc}")
        return 1
    print(what)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
