#!/usr/bin/env python3
"""make bench: uWSGI vs Gunicorn throughput, and what a deploy costs per uWSGI reload mode, as ratios.

A benchmark, not a test: it asserts only that each step did what it is meant to measure (the
server switch happened, the release landed, the reload was of the intended kind) and prints the
figures of ONE run. Absolute numbers depend on the machine; compare the ratios.

Phase 1, throughput (first; `--only throughput` runs it alone, `--skip-throughput` leaves it out):
uWSGI and Gunicorn behind the same nginx, for the example app, with the same workers per instance
(uWSGI's processes x threads, read from the uwsgi role's defaults and the scenario inventory, or
--workers / --threads) passed explicitly to both servers (Gunicorn: gthread when threads > 1).
The host switches servers with the project's own playbook, as a user would:

    ansible-playbook -i <inventory> playbooks/app.yml -e wsgi_app_server=gunicorn \
        -e gunicorn_workers=W -e gunicorn_threads=T -e gunicorn_worker_class=...

and after each switch the bench checks from outside that the unit's process tree is the intended
server's (master + W workers per instance, none of the other server left) and that every instance
answers on its socket (Gunicorn: over HTTP, `Server: gunicorn`). Load: wrk (Debian's package, the
bench converge installs it) INSIDE the container against http://127.0.0.1/healthz, closed loop
(as fast as the server answers) over --connections connections: a --warmup run, discarded, then
--tp-duration seconds measured. Servers alternate uwsgi, gunicorn, ... for --rounds rounds (the
spread between rounds of one server shows the noise). Figures per run: requests/s answered 2xx/3xx
(what is compared: an nginx 502 is fast) and of all answers, latency p50 / p99 / max, socket errors
and non-2xx/3xx answers, workers recycled (max requests) and nginx's error log lines, by message;
per server the median of its runs; ratios gunicorn / uwsgi of the medians (2xx/3xx req/s, p50, p99). The host is back on uWSGI (role defaults) at the end
of the phase when the reload steps follow.

Phase 2, reloads (`--only reload` runs it alone). On the bench scenario's one app host (molecule
converge -s bench first), with scripts/loadgen.py running INSIDE the container against
http://127.0.0.1/healthz (nginx -> 2 uWSGI instances) at a constant rate over 4 connections,
bounded by --duration seconds and duration x rate requests:

  A  graceful    deploy a code-only release (SIGHUP: the master re-execs, workers restart)
  C  graceful    deploy a release whose requirements changed (new virtualenv, pip install)
  R  restart     `systemctl restart hello.target`, no deploy
     switch      playbooks/app.yml -e uwsgi_reload_mode=chain (no load; the units must pick it up)
  B  chain       deploy a code-only release (workers replaced one at a time)
  D  chain       deploy a release with the earlier requirements: another virtualenv, so the chain
                 reload falls back to a graceful one (the virtualenv exists: nothing to install)

Figures per step: requests failed / total, latency p50 / p99 / max, wall time of the action, and
the machine's load average when the step ended (other work on the machine skews the figures).
Ratios: chain / graceful (p99, max, deploy time), restart / graceful, requirements deploy /
code-only deploy. The table is printed as markdown and written as JSON (--output). A step whose
action outlasted its load is marked: its reload may have happened after the load ended.

    MOLECULE_EPHEMERAL_DIRECTORY=<the scenario's> molecule/bench/bench.py [--duration 180] [--rate 20]
        [--only throughput|reload | --skip-throughput] [--tp-duration 20] [--warmup 3]
        [--connections 16] [--rounds 2] [--workers W] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import statistics
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "molecule" / "shared"))

APP_HOST = "wsgideploy-bench-app"
URL = "http://127.0.0.1/healthz"
INSTANCES = ("hello-0", "hello-1")
HEALTH = "/usr/local/lib/wsgideploy/wsgi-health"
# A small pure-python package, pinned: a requirements change that installs quickly.
EXTRA_REQUIREMENT = "six==1.17.0"
MAX_DURATION = 300  # seconds of load per step, whatever the arguments
SERVERS = ("uwsgi", "gunicorn")
# URL, with the port spelled out: wrk cannot resolve the "http" service name in the container.
WRK_URL = "http://127.0.0.1:80/healthz"
WRK_SCRIPT = "/usr/local/lib/wsgideploy-bench/wrk-summary.lua"
# wrk's done() hook: the run's figures as one JSON line (latencies in microseconds).
WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def sh(*cmd: str, timeout: int = 120) -> str:
    """A command on the bench host (docker exec); its stdout. Fails loudly."""
    res = subprocess.run(["docker", "exec", APP_HOST, *cmd], capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc {res.returncode}: {res.stdout}{res.stderr}")
    return res.stdout


def app_copy(workdir: Path, name: str, marker: str, extra_requirement: bool) -> Path:
    """A copy of app/ with a changed static file (a new release) and maybe one more requirement."""
    src = workdir / name
    shutil.copytree(PROJECT / "app", src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    with open(src / "hello" / "static" / "style.css", "a") as fh:
        fh.write(f"\n/* bench: {marker} */\n")
    if extra_requirement:
        with open(src / "requirements.txt", "a") as fh:
            fh.write(f"{EXTRA_REQUIREMENT}\n")
    return src


def release_state() -> dict:
    return {
        "release": sh("cat", "/srv/hello/current/REVISION").strip(),
        "venv": sh("readlink", "-f", "/srv/hello/current/venv").strip(),
    }


def every_instance_reports(release: str, protocol: str = "uwsgi") -> None:
    for instance in INSTANCES:
        sh(HEALTH, f"/run/{instance}/app.sock", "--protocol", protocol, "--expect-release", release)


def reloads_since(epoch: float) -> dict:
    """What the instances' journals say happened since epoch: reloads of each kind."""
    args = ["journalctl", "--no-pager", "-o", "cat", "--since", f"@{int(epoch)}"]
    for instance in INSTANCES:
        args += ["-u", f"{instance}.service"]
    lines = sh(*args).splitlines()
    return {
        # uWSGI's own lines
        "graceful_reloads": sum("gracefully (RE)spawned uWSGI master process" in line for line in lines),
        "chain_reloads": sum("chain reloading complete" in line for line in lines),
        "starts": sum(line.startswith("*** Starting uWSGI") for line in lines),
        # the reload helper's (chain mode)
        "helper": [line for line in lines if line.startswith(("chain reload", "graceful reload (SIGHUP)", "cannot reload"))],
    }


def exec_reload() -> dict:
    out = {}
    for instance in INSTANCES:
        props = sh("systemctl", "show", "-p", "ExecReload", "-p", "NeedDaemonReload", f"{instance}.service")
        out[instance] = {
            "helper": "uwsgi-reload" in props,
            "need_daemon_reload": "NeedDaemonReload=yes" in props,
        }
    return out


def same_workers(inventory: Path, args=None) -> dict:
    """Workers x threads per instance for both servers: uWSGI's (the uwsgi role's defaults, then the
    scenario inventory's values), unless --workers / --threads say otherwise."""
    workers_arg = getattr(args, "workers", None)
    threads_arg = getattr(args, "threads", None)
    with open(PROJECT / "roles" / "uwsgi" / "defaults" / "main.yml") as fh:
        defaults = yaml.safe_load(fh)
    res = subprocess.run(["ansible-inventory", "-i", str(inventory), "--host", APP_HOST],
                         capture_output=True, text=True, check=True)
    host_vars = json.loads(res.stdout)
    found = {key: host_vars.get(key, defaults[key]) for key in ("uwsgi_processes", "uwsgi_threads")}
    try:
        workers = workers_arg or int(found["uwsgi_processes"])
        threads = threads_arg or int(found["uwsgi_threads"])
    except (TypeError, ValueError):
        raise SystemExit(f"uWSGI's workers are not plain numbers ({found}): pass --workers and --threads") from None
    return {
        "workers": workers,
        "threads": threads,
        "instances": len(INSTANCES),
        "gunicorn_worker_class": "gthread" if threads > 1 else "sync",
        "source": "arguments" if workers_arg or threads_arg else "uwsgi role defaults / inventory",
    }


def server_vars(server: str, same: dict) -> list[str]:
    """The playbook's extra vars that put the host on server with the same workers."""
    if server == "uwsgi":
        values = {"uwsgi_processes": same["workers"], "uwsgi_threads": same["threads"]}
    else:
        values = {"gunicorn_workers": same["workers"], "gunicorn_threads": same["threads"],
                  "gunicorn_worker_class": same["gunicorn_worker_class"]}
    out = ["-e", f"wsgi_app_server={server}"]
    for key, value in values.items():
        out += ["-e", f"{key}={value}"]
    return out


def process_tree() -> dict:
    """Each instance's unit: its main process and the processes under it (user, args)."""
    table = {}
    for line in sh("ps", "-e", "-o", "pid=,ppid=,user=,args=").splitlines():
        pid, ppid, user, cmd = (line.split(None, 3) + [""])[:4]
        table[int(pid)] = (int(ppid), user, cmd)
    out = {}
    for instance in INSTANCES:
        main_pid = int(sh("systemctl", "show", "-p", "MainPID", "--value", f"{instance}.service").strip())
        assert main_pid in table, f"{instance}.service is not running (MainPID {main_pid})"
        children = [(user, cmd) for pid, (ppid, user, cmd) in sorted(table.items()) if ppid == main_pid]
        out[instance] = {"main": (table[main_pid][1], table[main_pid][2]), "children": children}
    return out


def server_of(cmd: str) -> str | None:
    if "uWSGI" in cmd or "pyuwsgi" in cmd or "/uwsgi" in cmd:
        return "uwsgi"
    if "gunicorn" in cmd:
        return "gunicorn"
    return None


def gunicorn_server_header(instance: str) -> str:
    """The Server header an instance sends, asked over HTTP on its unix socket (nginx hides it)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX);s.settimeout(5);s.connect(sys.argv[1])\n"
        "s.sendall(b'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n')\n"
        "data=b''\n"
        "while b'\\r\\n\\r\\n' not in data:\n"
        "    chunk=s.recv(4096)\n"
        "    if not chunk: break\n"
        "    data+=chunk\n"
        "print(next((l.split(':',1)[1].strip() for l in data.decode('latin-1').split('\\r\\n') "
        "if l.lower().startswith('server:')),''))\n"
    )
    return sh("python3", "-c", code, f"/run/{instance}/app.sock").strip()


def server_config(server: str, instance: str) -> dict:
    """Workers and threads as the instance's config file on the host says."""
    if server == "uwsgi":
        text = sh("cat", f"/etc/uwsgi/hello/{instance}.ini")
        keys = {"processes": "workers", "threads": "threads"}
    else:
        text = sh("cat", f"/etc/gunicorn/hello/{instance}.conf.py")
        keys = {"workers": "workers", "threads": "threads", "worker_class": "worker_class"}
    out = {}
    for line in text.splitlines():
        key, sep, value = (part.strip() for part in line.partition("="))
        if sep and key in keys:
            value = value.strip('"')
            out[keys[key]] = int(value) if value.isdigit() else value
    return out


def verify_server(server: str, same: dict) -> dict:
    """From outside: the units run server (master + workers, as the app user), the other server's
    processes are gone, every instance answers on its socket in server's protocol."""
    tree = process_tree()
    for instance, units in tree.items():
        user, cmd = units["main"]
        assert server_of(cmd) == server, f"{instance}: main process is not {server}: {user} {cmd}"
        workers = [c for c in units["children"] if server_of(c[1]) == server or c[1] == cmd]
        assert len(workers) == same["workers"], \
            f"{instance}: {len(workers)} {server} workers, not {same['workers']}: {units}"
        assert all(u == "hello" for u, _ in [units["main"], *units["children"]]), f"{instance}: not the app user: {units}"
    other = [line for line in sh("ps", "-e", "-o", "user=,args=").splitlines()
             if (server_of(line) or server) != server]
    assert not other, f"{server} should run alone, still running: {other}"
    config = {i: server_config(server, i) for i in INSTANCES}
    want = {"workers": same["workers"], "threads": same["threads"]}
    if server == "gunicorn":
        want["worker_class"] = same["gunicorn_worker_class"]
    assert all(c == want for c in config.values()), f"{server} config {config}, wanted {want}"
    protocol = "http" if server == "gunicorn" else "uwsgi"
    release = sh("cat", "/srv/hello/current/REVISION").strip()
    every_instance_reports(release, protocol)
    header = {i: gunicorn_server_header(i) for i in INSTANCES} if server == "gunicorn" else {}
    if server == "gunicorn":
        assert all(h.startswith("gunicorn") for h in header.values()), f"Server headers: {header}"
    sh(HEALTH, "127.0.0.1:80", "--protocol", "http", "--path", "/healthz")  # and through nginx
    return {
        "release": release,
        "protocol": protocol,
        "processes_per_instance": {i: 1 + len(t["children"]) for i, t in tree.items()},
        "main": {i: t["main"][1] for i, t in tree.items()},
        "server_header": header,
    }


def switch_server(server: str, same: dict, playbook) -> dict:
    """playbooks/app.yml with server and the same workers; then check what runs."""
    extra = server_vars(server, same)
    print(f"== throughput: switch to {server}: playbooks/app.yml {' '.join(extra)}", flush=True)
    t0 = time.monotonic()
    playbook("playbooks/app.yml", *extra)
    wall = round(time.monotonic() - t0, 1)
    checked = verify_server(server, same)
    header = f", Server: {checked['server_header'][INSTANCES[0]]}" if checked["server_header"] else ""
    print(f"   {server} serves (release {checked['release']}, processes per instance "
          f"{checked['processes_per_instance']}{header}), switch {wall} s", flush=True)
    return {"server": server, "wall_s": wall, **checked}


def wrk(args, seconds: int) -> dict:
    """One closed-loop wrk run inside the container; its figures."""
    out = sh("wrk", "--threads", str(min(2, args.connections)), "--connections", str(args.connections),
             "--duration", f"{seconds}s", "--timeout", "5s", "--script", WRK_SCRIPT, WRK_URL, timeout=seconds + 60)
    line = next((line for line in out.splitlines() if line.startswith("WRK_JSON ")), None)
    assert line, f"no summary from wrk: {out}"
    raw = json.loads(line[len("WRK_JSON "):])
    secs = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["status"]
    return {
        "requests": raw["requests"],
        "seconds": round(secs, 2),
        "rps": round(raw["requests"] / secs, 1) if secs else None,
        # What the bench compares: answers of the app. A 502 from nginx (its upstreams marked down)
        # comes back much faster than an answer and would inflate req/s.
        "ok_requests": ok,
        "ok_rps": round(ok / secs, 1) if secs else None,
        "latency_ms": {q: round(raw[f"{q}_us"] / 1000, 2) for q in ("p50", "p90", "p99", "max", "mean")},
        "socket_errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        "errors": {k: raw[k] for k in ("connect", "read", "write", "timeout")},
        "non_2xx_3xx": raw["status"],
    }


def nginx_error_lines() -> int:
    return int(sh("sh", "-c", "cat /var/log/nginx/error.log 2>/dev/null | wc -l").strip())


def nginx_errors_since(mark: int) -> dict:
    """nginx's error log since line mark, counted by message (without the request details)."""
    counts: dict = {}
    for line in sh("sh", "-c", f"tail -n +{mark + 1} /var/log/nginx/error.log 2>/dev/null").splitlines():
        msg = line.split(": ", 1)[-1].split(", client:")[0]
        msg = msg.split(" ", 1)[-1] if msg.startswith("*") else msg
        counts[msg] = counts.get(msg, 0) + 1
    return counts


def worker_recycles_since(epoch: float) -> int:
    """Workers replaced after max requests (either server), per the instances' journals."""
    args = ["journalctl", "--no-pager", "-o", "cat", "--since", f"@{int(epoch)}"]
    for instance in INSTANCES:
        args += ["-u", f"{instance}.service"]
    lines = sh(*args).splitlines()
    return sum(("Autorestarting worker" in line) or ("...The work of process" in line) for line in lines)


def throughput_phase(args, inventory: Path, playbook, back_to_uwsgi: bool) -> dict:
    same = same_workers(inventory, args)
    print(f"== throughput: {same['instances']} instances x {same['workers']} workers x {same['threads']} threads "
          f"(from {same['source']}; gunicorn {same['gunicorn_worker_class']}), wrk {args.connections} connections, "
          f"{args.warmup} s warm-up + {args.tp_duration} s per run, {args.rounds} round(s)", flush=True)
    sh("mkdir", "-p", os.path.dirname(WRK_SCRIPT))
    subprocess.run(["docker", "exec", "-i", APP_HOST, "sh", "-c", f"cat > {WRK_SCRIPT}"], input=WRK_LUA, text=True,
                   check=True, capture_output=True)
    sh("sh", "-c", "command -v wrk || { echo 'no wrk: the bench converge installs it'; exit 1; }")
    switches, runs = [], []
    for rnd in range(1, args.rounds + 1):
        for server in SERVERS:
            switches.append(switch_server(server, same, playbook))
            if args.warmup:
                wrk(args, args.warmup)
            mark, since = nginx_error_lines(), time.time()
            run = {"server": server, "round": rnd, **wrk(args, args.tp_duration), "loadavg_1m": round(os.getloadavg()[0], 2),
                   "nginx_errors": nginx_errors_since(mark), "worker_recycles": worker_recycles_since(since)}
            print(f"   {server} round {rnd}: {run['rps']} req/s, p50 {run['latency_ms']['p50']} ms, "
                  f"p99 {run['latency_ms']['p99']} ms, errors {run['socket_errors']}, non-2xx/3xx {run['non_2xx_3xx']} "
                  f"({run['ok_rps']} answers/s), worker recycles {run['worker_recycles']}, "
                  f"nginx errors {run['nginx_errors']}", flush=True)
            runs.append(run)
    if back_to_uwsgi:
        # The reload steps start from the bench's own uWSGI: the role defaults, graceful mode.
        print("== throughput: back to uwsgi (role defaults) for the reload steps", flush=True)
        playbook("playbooks/app.yml", "-e", "wsgi_app_server=uwsgi")
        verify_server("uwsgi", same_workers(inventory))

    median = {}
    for server in SERVERS:
        mine = [r for r in runs if r["server"] == server]
        median[server] = {
            "rps": round(statistics.median(r["rps"] for r in mine), 1),
            "ok_rps": round(statistics.median(r["ok_rps"] for r in mine), 1),
            "p50": round(statistics.median(r["latency_ms"]["p50"] for r in mine), 2),
            "p99": round(statistics.median(r["latency_ms"]["p99"] for r in mine), 2),
            "max": round(statistics.median(r["latency_ms"]["max"] for r in mine), 2),
            "socket_errors": sum(r["socket_errors"] for r in mine),
            "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in mine),
            "requests": sum(r["requests"] for r in mine),
            "runs": len(mine),
        }
    return {
        "same_workers": same,
        "params": {"url": URL, "client": "wrk (closed loop, inside the app container)", "connections": args.connections,
                   "wrk_threads": min(2, args.connections), "warmup_s": args.warmup, "duration_s": args.tp_duration,
                   "rounds": args.rounds},
        "switches": switches,
        "runs": runs,
        "median": median,
        "ratios": {
            "gunicorn / uwsgi 2xx/3xx req/s (medians)": ratio(median["gunicorn"]["ok_rps"], median["uwsgi"]["ok_rps"]),
            "gunicorn / uwsgi req/s, all answers (medians)": ratio(median["gunicorn"]["rps"], median["uwsgi"]["rps"]),
            "gunicorn / uwsgi p50 (medians)": ratio(median["gunicorn"]["p50"], median["uwsgi"]["p50"]),
            "gunicorn / uwsgi p99 (medians)": ratio(median["gunicorn"]["p99"], median["uwsgi"]["p99"]),
            **{f"gunicorn / uwsgi 2xx/3xx req/s, round {rnd}": ratio(
                next(r["ok_rps"] for r in runs if r["server"] == "gunicorn" and r["round"] == rnd),
                next(r["ok_rps"] for r in runs if r["server"] == "uwsgi" and r["round"] == rnd))
               for rnd in range(1, args.rounds + 1)},
        },
    }


def step(name: str, what: str, action, args) -> dict:
    """Run action under constant load; the load's summary and the action's wall time."""
    from wsgideploy_testlib import load_during

    since = time.time()
    timing: dict = {}

    def timed():
        t0 = time.monotonic()
        result = action()
        timing["wall_s"] = round(time.monotonic() - t0, 1)
        timing["end"] = time.monotonic()
        return result

    print(f"== {name}: {what} (load: {args.duration} s at {args.rate}/s)", flush=True)
    load_start = time.monotonic()
    summary, _ = load_during(timed, APP_HOST, URL, args.duration, args.rate)
    inside = timing["end"] - load_start <= args.duration
    figures = {
        "what": what,
        "requests": summary.get("requests"),
        "failed": summary.get("failed"),
        "errors": summary.get("errors"),
        "latency_ms": summary.get("latency_ms"),
        "rate_achieved": summary.get("rate_achieved"),
        "wall_s": timing["wall_s"],
        "action_inside_load": inside,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "journal": reloads_since(since),
    }
    if not inside:
        print(f"   WARNING: the action outlasted the load ({timing['wall_s']} s); raise --duration", flush=True)
    print(f"   {figures['failed']}/{figures['requests']} failed, latency {figures['latency_ms']}, "
          f"action {figures['wall_s']} s", flush=True)
    return figures


def ratio(a, b) -> float | None:
    if a is None or b in (None, 0):
        return None
    return round(a / b, 2)


def fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown_throughput(tp: dict) -> list[str]:
    same, params = tp["same_workers"], tp["params"]
    rows = [
        f"Throughput behind nginx (GET {params['url']}, wrk inside the container, closed loop, "
        f"{params['connections']} connections, {params['warmup_s']} s warm-up + {params['duration_s']} s per run); "
        f"both servers: {same['instances']} instances x {same['workers']} workers x {same['threads']} threads "
        f"(uwsgi_processes={same['workers']} uwsgi_threads={same['threads']} / gunicorn_workers={same['workers']} "
        f"gunicorn_threads={same['threads']} gunicorn_worker_class={same['gunicorn_worker_class']}; {same['source']})",
        "",
        "| run | server | 2xx/3xx req/s | req/s, all | p50 ms | p99 ms | max ms | requests | socket errors | "
        "non-2xx/3xx | worker recycles | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(tp["runs"], 1):
        lat = r["latency_ms"]
        bad = " (!)" if r["non_2xx_3xx"] or r["socket_errors"] else ""
        rows.append(f"| {n} (round {r['round']}) | {r['server']} | {fmt(r['ok_rps'])}{bad} | {fmt(r['rps'])} | "
                    f"{fmt(lat['p50'])} | {fmt(lat['p99'])} | {fmt(lat['max'])} | {r['requests']} | {r['socket_errors']} | "
                    f"{r['non_2xx_3xx']} | {r.get('worker_recycles', 'n/a')} | {fmt(r['loadavg_1m'])} |")
    for server, m in tp["median"].items():
        rows.append(f"| median of {m['runs']} | {server} | {fmt(m['ok_rps'])} | {fmt(m['rps'])} | {fmt(m['p50'])} | "
                    f"{fmt(m['p99'])} | {fmt(m['max'])} | {m['requests']} (sum) | {m['socket_errors']} (sum) | "
                    f"{m['non_2xx_3xx']} (sum) | | |")
    rows += ["", "| ratio | value |", "|---|---|"]
    rows += [f"| {name} | {fmt(value)} |" for name, value in tp["ratios"].items()]
    bad = [r for r in tp["runs"] if r["non_2xx_3xx"] or r["socket_errors"]]
    if bad:
        rows += ["", "(!) answers that were not 2xx/3xx or socket errors: req/s, all counts them (an nginx 502 is fast), "
                 "2xx/3xx req/s does not. nginx's error log during those runs:"]
        rows += [f"- run {tp['runs'].index(r) + 1} ({r['server']}): {json.dumps(r.get('nginx_errors', {}))}" for r in bad]
    return rows


def markdown_reloads(rl: dict) -> list[str]:
    rows = [
        "| step | reload | failed / total | p50 ms | p99 ms | max ms | action s | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("A", "C", "R", "B", "D"):
        s = rl["steps"][key]
        lat = s["latency_ms"] or {}
        rows.append(
            f"| {key}: {s['what']} | {s['reload']} | {s['failed']} / {s['requests']} | {fmt(lat.get('p50'))} | "
            f"{fmt(lat.get('p99'))} | {fmt(lat.get('max'))} | {fmt(s['wall_s'])}{'' if s['action_inside_load'] else ' (!)'} | "
            f"{fmt(s['loadavg_1m'])} |"
        )
    rows += ["", "| ratio | value |", "|---|---|"]
    rows += [f"| {name} | {fmt(value)} |" for name, value in rl["ratios"].items()]
    if not all(s["action_inside_load"] for s in rl["steps"].values()):
        rows += ["", "(!) the action outlasted the load: its reload may be missing from the figures (raise --duration)"]
    return rows


def markdown(results: dict) -> str:
    parts = []
    if "throughput" in results:
        parts.append("\n".join(markdown_throughput(results["throughput"])))
    if "reloads" in results:
        parts.append("\n".join(markdown_reloads(results["reloads"])))
    return "\n\n".join(parts)


def reload_phase(args, playbook) -> dict:
    """Steps A, C, R, switch, B, D: under constant load, from the bench's uWSGI in graceful mode."""
    steps: dict = {}
    with tempfile.TemporaryDirectory(prefix="wsgideploy-bench-") as tmp:
        work = Path(tmp)
        srcs = {
            "A": app_copy(work, "a", "graceful, code only", extra_requirement=False),
            "C": app_copy(work, "c", "graceful, requirements", extra_requirement=True),
            "B": app_copy(work, "b", "chain, code only", extra_requirement=True),  # same venv as C
            "D": app_copy(work, "d", "chain, earlier requirements", extra_requirement=False),  # venv of A
        }
        start = release_state()
        assert not any(exec_reload()[i]["helper"] for i in INSTANCES), "the bench starts in graceful mode"

        def deploy(key: str, *extra: str):
            return lambda: playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={srcs[key]}", *extra)

        def landed(key: str, before: dict, same_venv: bool) -> dict:
            after = release_state()
            assert after["release"] != before["release"], f"{key}: no new release"
            assert (after["venv"] == before["venv"]) == same_venv, f"{key}: venv {before['venv']} -> {after['venv']}"
            every_instance_reports(after["release"])
            return after

        steps["A"] = step("A", "graceful, code-only deploy", deploy("A"), args)
        state_a = landed("A", start, same_venv=True)
        assert steps["A"]["journal"]["graceful_reloads"] == len(INSTANCES), steps["A"]["journal"]
        steps["A"]["reload"] = "SIGHUP"

        steps["C"] = step("C", "graceful, requirements changed", deploy("C"), args)
        state_c = landed("C", state_a, same_venv=False)
        assert steps["C"]["journal"]["graceful_reloads"] == len(INSTANCES), steps["C"]["journal"]
        steps["C"]["reload"] = "SIGHUP"

        steps["R"] = step("R", "restart hello.target", lambda: sh("systemctl", "restart", "hello.target"), args)
        assert release_state() == state_c
        every_instance_reports(state_c["release"])
        steps["R"]["reload"] = "restart"

        print("== switch: playbooks/app.yml -e uwsgi_reload_mode=chain (same release)", flush=True)
        t0 = time.monotonic()
        playbook("playbooks/app.yml", "-e", f"wsgi_app_src={srcs['C']}", "-e", "uwsgi_reload_mode=chain")
        switch = {"wall_s": round(time.monotonic() - t0, 1), "units": exec_reload()}
        assert release_state() == state_c, "the switch deployed a release"
        assert all(u["helper"] and not u["need_daemon_reload"] for u in switch["units"].values()), switch

        steps["B"] = step("B", "chain, code-only deploy", deploy("B", "-e", "uwsgi_reload_mode=chain"), args)
        state_b = landed("B", state_c, same_venv=True)
        journal = steps["B"]["journal"]
        assert journal["chain_reloads"] == len(INSTANCES) and journal["graceful_reloads"] == 0, journal
        assert all(line.startswith("chain reload:") for line in journal["helper"]), journal
        steps["B"]["reload"] = "chain"

        steps["D"] = step("D", "chain mode, earlier requirements", deploy("D", "-e", "uwsgi_reload_mode=chain"), args)
        landed("D", state_b, same_venv=False)
        journal = steps["D"]["journal"]
        assert journal["graceful_reloads"] == len(INSTANCES) and journal["chain_reloads"] == 0, journal
        assert all("virtualenv changed" in line for line in journal["helper"]), journal
        steps["D"]["reload"] = "chain -> SIGHUP (venv changed)"

    def lat(key, q):
        return (steps[key]["latency_ms"] or {}).get(q)

    return {
        "params": {"url": URL, "rate": args.rate, "duration_s": args.duration, "requests_cap": args.duration * args.rate,
                   "concurrency": 4, "instances": len(INSTANCES)},
        "steps": steps,
        "switch_to_chain": switch,
        "ratios": {
            "chain p99 / graceful p99 (B / A)": ratio(lat("B", "p99"), lat("A", "p99")),
            "chain max / graceful max (B / A)": ratio(lat("B", "max"), lat("A", "max")),
            "chain deploy / graceful deploy (B / A)": ratio(steps["B"]["wall_s"], steps["A"]["wall_s"]),
            "restart p99 / graceful p99 (R / A)": ratio(lat("R", "p99"), lat("A", "p99")),
            "restart max / graceful max (R / A)": ratio(lat("R", "max"), lat("A", "max")),
            "requirements deploy / code-only deploy, graceful (C / A)": ratio(steps["C"]["wall_s"], steps["A"]["wall_s"]),
            "venv-switch deploy / code-only deploy, chain mode (D / B)": ratio(steps["D"]["wall_s"], steps["B"]["wall_s"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["throughput", "reload"], help="run one phase only")
    parser.add_argument("--skip-throughput", action="store_true", help="leave the throughput phase out")
    parser.add_argument("--duration", type=int, default=180, help="reload steps: seconds of load per step (30..300)")
    parser.add_argument("--rate", type=int, default=20, help="reload steps: requests a second (1..50)")
    parser.add_argument("--tp-duration", type=int, default=20, help="throughput: measured seconds per run (5..120)")
    parser.add_argument("--warmup", type=int, default=3, help="throughput: warm-up seconds before each run (0..30)")
    parser.add_argument("--connections", type=int, default=16, help="throughput: wrk connections (1..256)")
    parser.add_argument("--rounds", type=int, default=2, help="throughput: runs per server, alternating (1..5)")
    parser.add_argument("--workers", type=int, help="throughput: workers per instance (default: uWSGI's processes)")
    parser.add_argument("--threads", type=int, help="throughput: threads per worker (default: uWSGI's threads)")
    parser.add_argument("--output", default=str(PROJECT / "bench-results.json"), help="where the JSON goes")
    args = parser.parse_args(argv)
    if not 30 <= args.duration <= MAX_DURATION or not 1 <= args.rate <= 50:
        parser.error("--duration must be 30..300 seconds and --rate 1..50 requests a second")
    if not (5 <= args.tp_duration <= 120 and 0 <= args.warmup <= 30 and 1 <= args.connections <= 256
            and 1 <= args.rounds <= 5):
        parser.error("--tp-duration must be 5..120 s, --warmup 0..30 s, --connections 1..256, --rounds 1..5")
    if (args.workers is not None and args.workers < 1) or (args.threads is not None and args.threads < 1):
        parser.error("--workers and --threads must be >= 1")
    if args.only == "reload" and args.skip_throughput:
        args.skip_throughput = False  # the same thing
    if args.only == "throughput" and args.skip_throughput:
        parser.error("--only throughput and --skip-throughput leave nothing to run")
    run_throughput = args.only in (None, "throughput") and not args.skip_throughput
    run_reloads = args.only in (None, "reload")

    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
    inventory = Path(ephemeral) / "inventory" / "ansible_inventory.yml"
    if not ephemeral or not inventory.is_file():
        parser.error("no bench inventory: run `molecule converge -s bench` with MOLECULE_EPHEMERAL_DIRECTORY set "
                     "(make bench does both)")
    os.environ.setdefault("MOLECULE_PROJECT_DIRECTORY", str(PROJECT))
    os.environ["MOLECULE_INVENTORY_FILE"] = str(inventory)
    from wsgideploy_testlib import playbook, record_figure

    results: dict = {"host": APP_HOST, "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if run_throughput:
        tp = throughput_phase(args, inventory, playbook, back_to_uwsgi=run_reloads)
        results["throughput"] = tp
        for server, m in tp["median"].items():
            record_figure(f"bench_throughput_{server}", m)
        if run_reloads:  # its table now, in case a reload step fails; all tables again at the end
            print()
            print("\n".join(markdown_throughput(tp)), flush=True)
            print()
    if run_reloads:
        subprocess.run(["docker", "cp", str(PROJECT / "scripts" / "loadgen.py"), f"{APP_HOST}:/usr/local/bin/loadgen"],
                       check=True, capture_output=True)
        sh("chmod", "0755", "/usr/local/bin/loadgen")
        rl = reload_phase(args, playbook)
        results["reloads"] = rl
        for key, figures in rl["steps"].items():
            record_figure(f"bench_{key}", {k: figures[k] for k in ("requests", "failed", "latency_ms", "wall_s", "reload")})
    with open(args.output, "w") as fh:
        json.dump(results, fh, indent=2, sort_keys=True)
        fh.write("\n")
    print()
    print(markdown(results))
    print(f"\n(JSON: {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
