#!/usr/bin/env python3
"""make bench: a fleet's run times, the stack's cost, transports, uWSGI vs Gunicorn, reload modes.

A benchmark, not a test: it asserts only that each step did what it is meant to measure (the
server switch happened, the release landed, the reload was of the intended kind, the no-op run
changed nothing) and prints the figures of ONE run. Absolute numbers depend on the machine (and on
whatever else runs on it: the load average is in the JSON); compare the ratios.

The bench fleet (molecule/bench/molecule.yml): wsgideploy-bench-lb (group lb) in front of
wsgideploy-bench-app1..3 (group app; app3 Debian 13), 2 instances each. `make bench` destroys any
earlier bench fleet, creates fresh hosts (prepare.yml installs wrk), times `molecule converge -s
bench` (site.yml, bare to serving: --cold-converge-s, key cold_converge_s, one round), runs this
script, destroys the hosts. Phases, in this order (`--only fleet,stack,latency`, `--skip reload`):

fleet: wall time of ansible-playbook runs, hosts reached as the scenario's inventory says (its
ansible_connection: key timings_connection; nothing here picks a connection), --fleet-rounds
rounds (3), the order alternating from round to round; medians, and the medians of the per-round
ratios. noop_1host_s / noop_4hosts_s: site.yml again on the converged fleet (changed=0 asserted),
--limit app1 vs lb + 3 app hosts. code_deploy_1host_s / code_deploy_3hosts_s: playbooks/deploy.yml
-e wsgi_app_src=<copy of app/ with a changed static file> (a code-only release) --limit app1 (the
lb still drains and undrains it, delegated) vs the 3 app hosts (one at a time); asserted: the
release changed on exactly those hosts, none left drained.

throughput (on app1): uWSGI and Gunicorn behind the same nginx, for the example app, with the same
workers per instance (uWSGI's processes x threads, read from the uwsgi role's defaults and the
scenario inventory, or --workers / --threads) passed explicitly to both servers (Gunicorn:
gthread when threads > 1). The host switches servers with the project's own playbook, as a user
would (every playbook of the throughput, stack and reload phases runs with --limit app1, and on
the release app1 already has):

    ansible-playbook -i <inventory> playbooks/app.yml -e wsgi_app_server=gunicorn \
        -e gunicorn_workers=W -e gunicorn_threads=T -e gunicorn_worker_class=...

and after each switch the bench checks from outside that the unit's process tree is the intended
server's (master + W workers per instance, none of the other server left) and that every instance
answers on its socket (Gunicorn: over HTTP, `Server: gunicorn`). Load: wrk INSIDE app1 against
http://127.0.0.1/healthz, closed loop (as fast as the server answers) over --connections
connections: a --warmup run, discarded, then --tp-duration seconds measured. Servers alternate
uwsgi, gunicorn, ... for --rounds rounds (the spread between rounds of one server shows the
noise). Figures per run: requests/s answered 2xx/3xx (what is compared: an nginx 502 is fast) and
of all answers, latency p50 / p99 / max, socket errors and non-2xx/3xx answers, workers recycled
(max requests) and nginx's error log lines, by message; per server the median of its runs; ratios
gunicorn / uwsgi of the medians (2xx/3xx req/s, p50, p99). app1 is back on uWSGI (role defaults)
at the end of the phase when a later phase follows.

stack (app1; wrk in the lb container for every run; the other app hosts drained on the lb with
playbooks/drain.yml around the direct and stack runs only, since each transport switch is a gated
change that drains app1, and the lb refuses to take its last host out of rotation): the
transports between app1's nginx and its app server, switched with playbooks/app.yml and the
project's variables (wsgi_app_server, wsgi_app_listen, wsgi_app_protocol, wsgi_app_bind_address),
each checked (process tree, config
files, nginx -T, every instance's answer), measured through app1's nginx (closed loop,
--stack-rounds rounds of --warmup + --stack-duration s): uwsgi_unix, uwsgi_tcp (uWSGI),
http_keepalive (Gunicorn over TCP), and with --uwsgi-http uwsgi_http (uWSGI's http-socket behind
proxy_pass, a new connection per request: a diagnostic, not a candidate for best; see STACK_PARAMS). On
http_keepalive also, the rounds rotated: direct (wrk -> the Gunicorn instances themselves) and
stack (wrk -> the lb's nginx, TLS -> app1's nginx -> the same instances), the same connections
and duration: direct_rps, stack_rps, stack_over_direct; then open loop at --ol-fraction (0.5) x
direct_rps, paced by molecule/bench/wrk-bench.lua (wrk2's method: latency from when a request was
due), direct and stack alternating: direct_p99_ms, stack_p99_ms, p99_ratio. app1 goes back to the
inventory's transport at the end.

latency (app1, uWSGI with the role's defaults and the scenario's workers; no worker recycled by
count, and the recycles during each run counted from the instances' journals): p50 / p99 / max on
three paths to the same workers. direct: wrk inside app1 -> uWSGI's own http-socket (switched with
playbooks/app.yml -e wsgi_app_protocol=http -e wsgi_app_listen=tcp; HTTP/1.0, a connection per
request, over loopback: from another container the client runs out of ports in TIME_WAIT);
app_nginx: wrk inside app1 -> its nginx -> uWSGI on the inventory's transport; lb: wrk in the lb
-> the lb's nginx (TLS) -> app1's nginx (the other app hosts drained on the lb for these runs).
At saturation (closed loop, --connections, --stack-rounds rounds of --warmup + --stack-duration s)
and at half load (open loop, wrk-bench.lua, at --ol-fraction x the direct path's saturation rps,
the same rate for direct and app_nginx; the lb at --ol-fraction x its own saturation rps); then
one open-loop run of --tail-duration s (60) through app1's nginx. Keys: latency (per path and
load), tail_ratio (p99 app_nginx / p99 direct at half load, median of the per-round ratios),
nginx_over_direct (saturation rps), tail_long, and the goals of the phase (tail_ratio <= 2, no
request over 250 ms in the long run, none over 2 s through the lb at saturation,
nginx_over_direct >= 0.9). With --uwsgi-variants (the default): the app_nginx path again,
saturation and half load, with and without lazy-apps and the thunder lock (playbooks/app.yml
-e uwsgi_lazy_apps=... -e uwsgi_thunder_lock=...; the ini checked); with --gunicorn-variants (the
default): Gunicorn with the same request slots, gthread and sync as the role's defaults (no
recycling), and sync recycling by count (max_requests 5000, jitter 500; the config file checked). Then
app1 back on the inventory's settings.

reload (on app1). With scripts/loadgen.py running INSIDE app1 against http://127.0.0.1/healthz
(nginx -> 2 uWSGI instances) at a constant rate over 4 connections, bounded by --duration seconds
(default 120: the deploy of one host fits in it on an idle machine) and duration x rate requests:

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
code-only deploy. A step whose action outlasted its load is marked: its reload may have happened
after the load ended (raise --duration).

The tables are printed as markdown and written as JSON (--output, rewritten after every phase).
Every load is bounded in seconds and requests (wrk: duration x connections, or duration x rate)
and targets only the bench containers or their loopback.

    MOLECULE_EPHEMERAL_DIRECTORY=<the scenario's> molecule/bench/bench.py [--only PHASES] [--skip PHASES]
        [--fleet-rounds 3] [--stack-rounds 3] [--stack-duration 10] [--ol-connections 32] [--ol-warmup 2]
        [--ol-fraction 0.5] [--tail-duration 60] [--no-uwsgi-variants] [--no-gunicorn-variants] [--uwsgi-http]
        [--duration 120] [--rate 20] [--tp-duration 20] [--warmup 3]
        [--connections 16] [--rounds 2] [--workers W] [--threads T] [--cold-converge-s S]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "molecule" / "shared"))

# The fleet (molecule/bench/molecule.yml): the throughput and reload phases run on app1.
LB_HOST = "wsgideploy-bench-lb"
APP_HOSTS = ("wsgideploy-bench-app1", "wsgideploy-bench-app2", "wsgideploy-bench-app3")
APP_HOST = APP_HOSTS[0]
URL = "http://127.0.0.1/healthz"
INSTANCES = ("hello-0", "hello-1")
HEALTH = "/usr/local/lib/wsgideploy/wsgi-health"
# A small pure-python package, pinned: a requirements change that installs quickly.
EXTRA_REQUIREMENT = "six==1.17.0"
MAX_DURATION = 300  # seconds of load per step, whatever the arguments
SERVERS = ("uwsgi", "gunicorn")
# URL, with the port spelled out: wrk cannot resolve the "http" service name in the container.
WRK_URL = "http://127.0.0.1:80/healthz"
BENCH_LIB = "/usr/local/lib/wsgideploy-bench"
WRK_SCRIPT = f"{BENCH_LIB}/wrk-summary.lua"
# The stack phase's wrk script (closed loop, or open loop paced at a fixed rate): molecule/bench/.
WRK_BENCH = f"{BENCH_LIB}/wrk-bench.lua"
BASE_PORT = 8000  # wsgi_app_base_port's default: instance n listens on BASE_PORT + n (listen tcp)
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


def sh(*cmd: str, timeout: int = 120, host: str = APP_HOST) -> str:
    """A command on a bench host (docker exec; app1 unless told); its stdout. Fails loudly. Only to
    look and to drive load: what the bench times runs through ansible-playbook and the inventory."""
    res = subprocess.run(["docker", "exec", host, *cmd], capture_output=True, text=True, timeout=timeout, check=False)
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


def revision(host: str) -> str:
    return sh("cat", "/srv/hello/current/REVISION", host=host).strip()


def instance_addresses(listen: str = "unix", bind: str = "127.0.0.1") -> list[str]:
    """Where the instances listen (the wsgi_app role's scheme): unix sockets or bind:port."""
    if listen == "unix":
        return [f"/run/{instance}/app.sock" for instance in INSTANCES]
    return [f"{bind}:{BASE_PORT + n}" for n in range(len(INSTANCES))]


def every_instance_reports(release: str, protocol: str = "uwsgi", addresses: list[str] | None = None) -> None:
    for address in addresses or instance_addresses():
        # A TCP instance bound to 0.0.0.0 answers on loopback too.
        address = address.replace("0.0.0.0:", "127.0.0.1:")
        sh(HEALTH, address, "--protocol", protocol, "--expect-release", release)


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


def uwsgi_defaults() -> dict:
    """The uwsgi role's defaults file, as YAML (templated values stay strings)."""
    with open(PROJECT / "roles" / "uwsgi" / "defaults" / "main.yml") as fh:
        return yaml.safe_load(fh)


def same_workers(inventory: Path, args=None) -> dict:
    """Workers x threads per instance for both servers: uWSGI's (the uwsgi role's defaults, then the
    scenario inventory's values), unless --workers / --threads say otherwise."""
    workers_arg = getattr(args, "workers", None)
    threads_arg = getattr(args, "threads", None)
    defaults = uwsgi_defaults()
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


def gunicorn_server_header(address: str) -> str:
    """The Server header an instance sends, asked over HTTP on its unix socket or host:port (nginx
    hides it)."""
    code = (
        "import socket,sys\n"
        "a=sys.argv[1]\n"
        "s=socket.socket(socket.AF_UNIX if a.startswith('/') else socket.AF_INET);s.settimeout(5)\n"
        "s.connect(a if a.startswith('/') else (a.rsplit(':',1)[0],int(a.rsplit(':',1)[1])))\n"
        "s.sendall(b'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n')\n"
        "data=b''\n"
        "while b'\\r\\n\\r\\n' not in data:\n"
        "    chunk=s.recv(4096)\n"
        "    if not chunk: break\n"
        "    data+=chunk\n"
        "print(next((l.split(':',1)[1].strip() for l in data.decode('latin-1').split('\\r\\n') "
        "if l.lower().startswith('server:')),''))\n"
    )
    return sh("python3", "-c", code, address.replace("0.0.0.0:", "127.0.0.1:")).strip()


def server_config(server: str, instance: str) -> tuple[dict, dict]:
    """Workers and threads as the instance's config file on the host says; and where it listens,
    in which protocol."""
    if server == "uwsgi":
        text = sh("cat", f"/etc/uwsgi/hello/{instance}.ini")
        keys = {"processes": "workers", "threads": "threads"}
    else:
        text = sh("cat", f"/etc/gunicorn/hello/{instance}.conf.py")
        keys = {"workers": "workers", "threads": "threads", "worker_class": "worker_class"}
    out, listen = {}, {}
    for line in text.splitlines():
        key, sep, value = (part.strip() for part in line.partition("="))
        if sep and key in keys:
            value = value.strip('"')
            out[keys[key]] = int(value) if value.isdigit() else value
        elif sep and server == "uwsgi" and key in ("socket", "http-socket"):
            listen = {"protocol": "http" if key == "http-socket" else "uwsgi", "address": value}
        elif sep and server == "gunicorn" and key == "bind":
            listen = {"protocol": "http", "address": json.loads(value)[0].removeprefix("unix:")}
    return out, listen


def app_nginx_upstream() -> dict:
    """app1's nginx as it runs (nginx -T): the app's upstream servers, how it passes requests,
    its upstream keepalive."""
    text = sh("nginx", "-T")
    servers = re.findall(r"^\s*server (\S+) max_fails", text, re.MULTILINE)
    return {
        "servers": [server.removeprefix("unix:") for server in servers],
        "pass": "uwsgi_pass" if re.search(r"^\s*uwsgi_pass ", text, re.MULTILINE) else "proxy_pass",
        "keepalive": int(m.group(1)) if (m := re.search(r"^\s*keepalive (\d+);", text, re.MULTILINE)) else 0,
    }


def verify_server(server: str, same: dict, transport: dict | None = None) -> dict:
    """From outside: the units run server (master + workers, as the app user), the other server's
    processes are gone, every instance listens where transport says (default: unix sockets, the
    server's own protocol) and answers there in that protocol, nginx passes to exactly those."""
    transport = {"listen": "unix", "bind": "127.0.0.1", "protocol": "http" if server == "gunicorn" else "uwsgi",
                 **(transport or {})}
    addresses = instance_addresses(transport["listen"], transport["bind"])
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
    configs = {i: server_config(server, i) for i in INSTANCES}
    config = {i: c[0] for i, c in configs.items()}
    want = {"workers": same["workers"], "threads": same["threads"]}
    if server == "gunicorn":
        want["worker_class"] = same["gunicorn_worker_class"]
    assert all(c == want for c in config.values()), f"{server} config {config}, wanted {want}"
    protocol = transport["protocol"]
    listens = [configs[i][1] for i in INSTANCES]
    assert listens == [{"protocol": protocol, "address": a} for a in addresses], \
        f"{server} listens {listens}, wanted {protocol} on {addresses}"
    upstream = app_nginx_upstream()
    want_pass = "uwsgi_pass" if protocol == "uwsgi" else "proxy_pass"
    want_servers = [a.replace("0.0.0.0:", "127.0.0.1:") for a in addresses]
    assert upstream["servers"] == want_servers and upstream["pass"] == want_pass, \
        f"app nginx: {upstream}, wanted {want_pass} to {want_servers}"
    release = sh("cat", "/srv/hello/current/REVISION").strip()
    every_instance_reports(release, protocol, addresses)
    header = {i: gunicorn_server_header(a) for i, a in zip(INSTANCES, addresses)} if server == "gunicorn" else {}
    if server == "gunicorn":
        assert all(h.startswith("gunicorn") for h in header.values()), f"Server headers: {header}"
    sh(HEALTH, "127.0.0.1:80", "--protocol", "http", "--path", "/healthz")  # and through nginx
    return {
        "release": release,
        "protocol": protocol,
        "listen": addresses,
        "app_nginx": upstream,
        "processes_per_instance": {i: 1 + len(t["children"]) for i, t in tree.items()},
        "main": {i: t["main"][1] for i, t in tree.items()},
        "server_header": header,
    }


def switch_server(server: str, same: dict, playbook) -> dict:
    """playbooks/app.yml with server and the same workers; then check what runs."""
    extra = server_vars(server, same)
    try:  # already so (the first round on a fresh fleet): no playbook run to wait for
        checked = verify_server(server, same)
        print(f"== throughput: {server} with the same workers already in place", flush=True)
        return {"server": server, "wall_s": 0, "switched": False, **checked}
    except (AssertionError, RuntimeError):
        pass
    print(f"== throughput: switch to {server}: playbooks/app.yml {' '.join(extra)}", flush=True)
    t0 = time.monotonic()
    playbook("playbooks/app.yml", *extra)
    wall = round(time.monotonic() - t0, 1)
    checked = verify_server(server, same)
    header = f", Server: {checked['server_header'][INSTANCES[0]]}" if checked["server_header"] else ""
    print(f"   {server} serves (release {checked['release']}, processes per instance "
          f"{checked['processes_per_instance']}{header}), switch {wall} s", flush=True)
    return {"server": server, "wall_s": wall, "switched": True, **checked}


def wrk(args, seconds: int) -> dict:
    """One closed-loop wrk run inside the container; its figures."""
    out = sh("wrk", "--threads", str(min(2, args.connections)), "--connections", str(args.connections),
             "--duration", f"{seconds}s", "--timeout", "5s", "--script", WRK_SCRIPT, WRK_URL, timeout=seconds + 60)
    return wrk_figures(out)


def wrk_figures(out: str) -> dict:
    """The figures of wrk's WRK_JSON line (both scripts print one)."""
    line = next((line for line in out.splitlines() if line.startswith("WRK_JSON ")), None)
    assert line, f"no summary from wrk: {out}"
    raw = json.loads(line[len("WRK_JSON "):])
    secs = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["status"]
    figures = {
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
    if "ol_rate" in raw:  # wrk-bench.lua, paced: the requests due in its window
        window = raw["ol_window_us"] / 1e6
        figures["open_loop"] = {
            "rate": raw["ol_rate"],
            "window_s": window,
            "sent": raw["ol_sent"],
            "answered": raw["ol_answered"],
            "unanswered": raw["ol_unanswered"],
            "late": raw["ol_late"],
            "bad_status": raw["ol_bad_status"],
            "rate_achieved": round(raw["ol_answered"] / window, 1) if window else None,
            # -2: the percentile falls on a request that was never answered
            "latency_ms": {q: (round(raw[f"ol_{q}_us"] / 1000, 2) if raw[f"ol_{q}_us"] >= 0 else None)
                           for q in ("p50", "p90", "p99", "p999", "max")},
        }
    return figures


def nginx_error_lines(host: str = APP_HOST) -> int:
    return int(sh("sh", "-c", "cat /var/log/nginx/error.log 2>/dev/null | wc -l", host=host).strip())


def nginx_errors_since(mark: int, host: str = APP_HOST) -> dict:
    """nginx's error log since line mark, counted by message (without the request details)."""
    counts: dict = {}
    for line in sh("sh", "-c", f"tail -n +{mark + 1} /var/log/nginx/error.log 2>/dev/null", host=host).splitlines():
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


# ------------------------------------------------------------------------------------------------
# The fleet phase: wall time of ansible-playbook runs over one host and over the fleet.

FLEET = (LB_HOST, *APP_HOSTS)
LB_UPSTREAMS = "/etc/nginx/wsgideploy/hello/app"  # the lb role's upstream files, one per app host


def inventory_view(inventory: Path) -> dict:
    """The scenario's inventory as Ansible reads it: groups and host variables."""
    res = subprocess.run(["ansible-inventory", "-i", str(inventory), "--list"], capture_output=True, text=True,
                         check=True)
    data = json.loads(res.stdout)
    groups = {name: sorted(group.get("hosts", [])) for name, group in data.items()
              if name != "_meta" and isinstance(group, dict)}
    return {"groups": groups, "hostvars": data.get("_meta", {}).get("hostvars", {})}


def timings_connection(view: dict) -> dict:
    """How ansible-playbook reaches each host (its ansible_connection; Ansible's default: ssh)."""
    by_host = {h: view["hostvars"].get(h, {}).get("ansible_connection", "ssh") for h in FLEET}
    users = {h: view["hostvars"][h]["ansible_user"] for h in FLEET if "ansible_user" in view["hostvars"].get(h, {})}
    kinds = sorted(set(by_host.values()))
    return {"connection": kinds[0] if len(kinds) == 1 else "mixed", "by_host": by_host, "ansible_user": users}


def timed_playbook(path: str, *extra: str) -> tuple[float, str]:
    """ansible-playbook -i <the scenario's inventory> path extra...: its wall time and output. The
    hosts are reached as the inventory says (its ansible_connection), nothing here picks one.
    Ansible's profile_tasks callback times every task (task_profile reads it)."""
    from wsgideploy_testlib import run_playbook

    saved = {k: os.environ.get(k) for k in PROFILE_ENV}
    os.environ.update(PROFILE_ENV)
    try:
        t0 = time.monotonic()
        rc, out = run_playbook(path, *extra, timeout=1800)
        wall = round(time.monotonic() - t0, 1)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert rc == 0, f"{path} {' '.join(extra)} failed (rc {rc}):\n{out[-6000:]}"
    return wall, out


PROFILE_ENV = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
               "PROFILE_TASKS_SORT_ORDER": "descending"}
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<s>\d+\.\d+)s$")


def task_profile(out: str, top: int = 12) -> dict:
    """What a run spent its time on: task headers (a task on several hosts at once is one), the
    seconds of every task from profile_tasks' recap (one task's wall time over all its hosts),
    summed by role, and the slowest tasks."""
    recap = out[out.rfind("TASKS RECAP"):] if "TASKS RECAP" in out else ""
    tasks = [(m["task"].strip(), float(m["s"])) for line in recap.splitlines() if (m := PROFILE_LINE.match(line.strip()))]
    by_role: dict[str, float] = {}
    for name, seconds in tasks:
        role = name.split(" : ", 1)[0] if " : " in name else "(playbook)"
        by_role[role] = round(by_role.get(role, 0.0) + seconds, 2)
    return {
        "task_headers": len(re.findall(r"^TASK \[", out, re.MULTILINE)),
        "tasks_timed": len(tasks),
        "tasks_s": round(sum(s for _, s in tasks), 1),
        "by_role_s": dict(sorted(by_role.items(), key=lambda kv: -kv[1])),
        "slowest": [{"task": name, "s": seconds} for name, seconds in sorted(tasks, key=lambda t: -t[1])[:top]],
    }


def lb_down_hosts() -> list[str]:
    """App hosts the lb has marked down (drained)."""
    out = sh("sh", "-c", f"grep -l ' down;' {LB_UPSTREAMS}/*.conf || true", host=LB_HOST)
    return sorted(Path(path).stem for path in out.split())


def noop_run(kind: str, rnd: int) -> dict:
    """site.yml again on a converged fleet (nothing to change): app1 alone, or lb + every app host."""
    from wsgideploy_testlib import recap

    limit = ["--limit", APP_HOST] if kind == "1host" else []
    want = {APP_HOST} if kind == "1host" else set(FLEET)
    load = round(os.getloadavg()[0], 2)
    wall, out = timed_playbook("site.yml", *limit)
    counts = recap(out)
    assert set(counts) == want, f"site.yml {' '.join(limit)} ran on {sorted(counts)}, not {sorted(want)}"
    changed = {h: c.get("changed", 0) for h, c in sorted(counts.items())}
    assert not any(changed.values()), f"site.yml {' '.join(limit)} was not a no-op: changed {changed}"
    run = {"kind": kind, "round": rnd, "wall_s": wall, "limit": limit[1] if limit else "(none: lb + app)",
           "hosts": sorted(counts), "tasks_ok": {h: c.get("ok", 0) for h, c in sorted(counts.items())},
           "changed": changed, "loadavg_1m_before": load, "loadavg_1m": round(os.getloadavg()[0], 2),
           "profile": task_profile(out)}
    print(f"   no-op site.yml, {kind}, round {rnd}: {wall} s (hosts {len(counts)}, changed 0)", flush=True)
    return run


def deploy_run(kind: str, rnd: int, src: Path) -> dict:
    """playbooks/deploy.yml of a code-only release (src): to app1 alone (the lb still takes part:
    the play delegates the drain and undrain to it), or to every app host (one at a time,
    deploy_serial's default)."""
    targets = [APP_HOST] if kind == "1host" else list(APP_HOSTS)
    limit = ["--limit", APP_HOST] if kind == "1host" else []
    before = {h: revision(h) for h in APP_HOSTS}
    load = round(os.getloadavg()[0], 2)
    wall, out = timed_playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={src}", *limit)
    after = {h: revision(h) for h in APP_HOSTS}
    moved = [h for h in APP_HOSTS if after[h] != before[h]]
    assert moved == targets, f"deploy {kind}: the release changed on {moved}, not on {targets}"
    assert len({after[h] for h in targets}) == 1, f"deploy {kind}: releases {after}"
    down = lb_down_hosts()
    assert not down, f"deploy {kind}: still marked down on the lb: {down}"
    # "changed: [app -> lb]", or "[app -> lb(127.0.0.1)]" when the lb's ansible_host differs (SSH).
    delegated = re.findall(rf"^changed: \[(\S+) -> {re.escape(LB_HOST)}(?:\([^)]*\))?\]", out, re.MULTILINE)
    run = {"kind": kind, "round": rnd, "wall_s": wall, "limit": limit[1] if limit else "(none: lb + app)",
           "release": after[APP_HOST], "hosts_changed": moved,
           "lb_changes_delegated": {h: delegated.count(h) for h in targets},
           "loadavg_1m_before": load, "loadavg_1m": round(os.getloadavg()[0], 2), "profile": task_profile(out)}
    print(f"   code-only deploy, {kind}, round {rnd}: {wall} s (release {run['release']} on {len(moved)} host(s), "
          f"lb changes delegated {run['lb_changes_delegated']})", flush=True)
    return run


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def paired(runs: list[dict], key: str, num: str, den: str, rounds: int) -> list:
    """Per round: the ratio of num's figure to den's (runs of one round pair up)."""
    out = []
    for rnd in range(1, rounds + 1):
        a = next((r[key] for r in runs if r["kind"] == num and r["round"] == rnd), None)
        b = next((r[key] for r in runs if r["kind"] == den and r["round"] == rnd), None)
        out.append(ratio(a, b))
    return out


def fleet_phase(args, workdir: Path, conn: dict) -> dict:
    """Rounds of: site.yml no-op (1 host / fleet), then rounds of: code-only deploys (1 / 3 app
    hosts), the order alternating from round to round."""
    rounds = args.fleet_rounds
    print(f"== fleet: site.yml no-op and code-only deploys, 1 host vs all, {rounds} rounds "
          f"(connection: {conn['connection']})", flush=True)
    noop = []
    for rnd in range(1, rounds + 1):
        for kind in ("1host", "4hosts") if rnd % 2 else ("4hosts", "1host"):
            noop.append(noop_run(kind, rnd))
    deploys, src = [], None
    for rnd in range(1, rounds + 1):
        for kind in ("1host", "3hosts") if rnd % 2 else ("3hosts", "1host"):
            src = app_copy(workdir, f"fleet-{kind}-{rnd}", f"fleet phase, {kind}, round {rnd}", extra_requirement=False)
            deploys.append(deploy_run(kind, rnd, src))

    def summary(runs, one, many):
        med = {kind: median(r["wall_s"] for r in runs if r["kind"] == kind) for kind in (one, many)}
        by_round = paired(runs, "wall_s", many, one, rounds)
        return {"runs": runs, "median_s": med, f"{many} / {one} by round": by_round,
                "ratio_median": median(by_round), "ratio_of_medians": ratio(med[many], med[one])}

    return {
        "params": {
            "rounds": rounds,
            "noop": "ansible-playbook -i <inventory> site.yml, again on the converged fleet (asserted: changed=0 "
                    f"everywhere): --limit {APP_HOST} (1host) vs no limit (4hosts: lb + 3 app hosts)",
            "code_deploy": "ansible-playbook -i <inventory> playbooks/deploy.yml -e wsgi_app_src=<a copy of app/ with "
                           f"one changed static file: a code-only release> --limit {APP_HOST} (1host; the play still "
                           "drains and undrains it on the lb, delegated) vs no limit (3hosts, one at a time: "
                           "deploy_serial's default); asserted: the release changed on exactly those hosts, none "
                           "left drained",
            "order": "alternating from round to round (1 host first in odd rounds)",
            "ratio": "median of the per-round ratios (ratio_of_medians: the ratio of the medians)",
            "ansible_config": os.environ.get("ANSIBLE_CONFIG"),
            "connection": conn,
        },
        "noop": summary(noop, "1host", "4hosts"),
        "deploy": summary(deploys, "1host", "3hosts"),
        "src": str(src) if src else None,
    }


# ------------------------------------------------------------------------------------------------
# The stack phase: app1's app server reached directly vs through lb -> app1's nginx, and the
# transports between app1's nginx and the app server. Load from the lb container (wrk).

# name: (app server, the project's variables that choose the transport)
TRANSPORTS = {
    "uwsgi_unix": ("uwsgi", {"wsgi_app_listen": "unix", "wsgi_app_protocol": "uwsgi"}),
    "uwsgi_tcp": ("uwsgi", {"wsgi_app_listen": "tcp", "wsgi_app_protocol": "uwsgi", "wsgi_app_bind_address": "127.0.0.1"}),
    # uWSGI speaking HTTP (http-socket, no upstream keepalive): with --uwsgi-http, a diagnostic, not a candidate
    "uwsgi_http": ("uwsgi", {"wsgi_app_listen": "tcp", "wsgi_app_protocol": "http", "wsgi_app_bind_address": "127.0.0.1"}),
    # Gunicorn: HTTP with keep-alive, bound to every address so the lb container reaches it directly
    "http_keepalive": ("gunicorn", {"wsgi_app_listen": "tcp", "wsgi_app_protocol": "http", "wsgi_app_bind_address": "0.0.0.0"}),
}
CANDIDATES = ("uwsgi_unix", "uwsgi_tcp", "http_keepalive")
LB_HTTPS = "https://127.0.0.1:443/healthz"  # the lb's own nginx (lb_https_port; plain HTTP redirects)
TARGETS = {
    "direct": {"url": f"http://{APP_HOST}:{BASE_PORT}/healthz",
               "env": {"BENCH_ADDRS": ",".join(f"{APP_HOST}:{BASE_PORT + n}" for n in range(len(INSTANCES)))}},
    "stack": {"url": LB_HTTPS, "env": {}},
    "app_nginx": {"url": f"http://{APP_HOST}:80/healthz", "env": {}},
}
STACK_PARAMS = {
    "client": "wrk (Debian's package) in the lb container for every run: the same client, connections and "
              "duration for direct and stack; all containers share the machine's CPUs",
    "direct": f"wrk -> {APP_HOST}:{BASE_PORT}..{BASE_PORT + len(INSTANCES) - 1} over the docker network: the app "
              "server's instances themselves, one wrk thread per instance (wrk-bench.lua, BENCH_ADDRS), HTTP/1.1 "
              "keep-alive",
    "stack": f"wrk -> {LB_HTTPS}: the lb's nginx (TLS, upstream keep-alive, least_conn) -> {APP_HOST}'s nginx :80 "
             "(upstream keep-alive) -> the same instances; the other app hosts drained on the lb "
             "(playbooks/drain.yml) for the phase, so every request reaches the same workers",
    "server": "Gunicorn for direct / stack (transport http_keepalive: wsgi_app_server=gunicorn, wsgi_app_listen=tcp, "
              "wsgi_app_bind_address=0.0.0.0; gthread with uWSGI's workers x threads, as the throughput phase). Not "
              "uWSGI's http-socket (wsgi_app_protocol=http with uWSGI): it closes every connection after its answer "
              "without a Connection: close header, so a direct client reconnects for every request; the app "
              "host's nginx keeps no idle connection to it (wsgi_app_keepalive 0: reusing connections uWSGI had "
              "closed failed requests and took the instances out). --uwsgi-http measures it "
              "(transport_detail.uwsgi_http)",
    "transport": f"wrk -> {APP_HOST}'s nginx :80, closed loop; uwsgi_unix / uwsgi_tcp: uWSGI (the project's default "
                 "server), uwsgi protocol over a unix socket / TCP 127.0.0.1; http_keepalive: Gunicorn over TCP, "
                 "nginx proxy_pass with upstream keepalive; uwsgi_http (--uwsgi-http; diagnostic, not a candidate "
                 "for best): uWSGI http-socket behind proxy_pass, a new connection per request. Switched with playbooks/app.yml "
                 f"--limit {APP_HOST} and the project's variables (wsgi_app_server, wsgi_app_listen, "
                 "wsgi_app_protocol, wsgi_app_bind_address); checked from the process tree, the config files, "
                 "nginx -T and each instance's answer. rps: 2xx/3xx answers a second, median of the rounds",
    "open_loop": "wrk + molecule/bench/wrk-bench.lua (wrk2's method, wrk2 is not in Debian): one connection per wrk "
                 "thread, each sending at fixed times (together: the rate, evenly spaced); a request's latency "
                 "counts from when it was due if its connection was still busy then (a late answer delays the "
                 "next request: the wait is counted), else from when it was sent; requests never answered count "
                 "as the slowest. Rate: 50 % of direct_rps (the median), the same for direct and stack",
    "ratios": "median of the per-round ratios (the runs of one round pair up)",
}


def lb_wrk(url: str, seconds: int, connections: int, threads: int, env: dict, host: str = LB_HOST) -> dict:
    """One wrk run with wrk-bench.lua, in the lb container unless told; its figures."""
    settings = [f"{k}={v}" for k, v in env.items()]
    out = sh("env", *settings, "wrk", "--threads", str(threads), "--connections", str(connections),
             "--duration", f"{seconds}s", "--timeout", "5s", "--script", WRK_BENCH, url,
             host=host, timeout=seconds + 60)
    return wrk_figures(out)


def tcp_passive_opens(host: str) -> int:
    """TCP connections the host has accepted (its network namespace's counter)."""
    lines = [line.split() for line in sh("cat", "/proc/net/snmp", host=host).splitlines() if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("PassiveOpens")])


def closed_run(args, target: str, rnd: int, transport: str, targets: dict | None = None) -> dict:
    """A warm-up (discarded), then a closed-loop run of --stack-duration seconds against target (a
    key of targets: TARGETS unless told)."""
    targets = targets or TARGETS
    url, env, client = targets[target]["url"], targets[target]["env"], targets[target].get("client", LB_HOST)
    threads = min(2, args.connections)
    if args.warmup:
        lb_wrk(url, args.warmup, args.connections, threads, env, client)
    marks = {h: nginx_error_lines(h) for h in (LB_HOST, APP_HOST)}
    opens = tcp_passive_opens(APP_HOST)
    fig = lb_wrk(url, args.stack_duration, args.connections, threads, env, client)
    opens = tcp_passive_opens(APP_HOST) - opens
    run = {"kind": target, "transport": transport, "round": rnd, **fig,
           f"{APP_HOST}_tcp_accepts_per_request": round(opens / fig["requests"], 3) if fig["requests"] else None,
           "nginx_errors": {h: nginx_errors_since(marks[h], h) for h in marks},
           "loadavg_1m": round(os.getloadavg()[0], 2)}
    print(f"   {transport} {target} round {rnd}: {fig['ok_rps']} 2xx/3xx req/s (all {fig['rps']}), "
          f"p50 {fig['latency_ms']['p50']} ms, p99 {fig['latency_ms']['p99']} ms, max {fig['latency_ms']['max']} ms, "
          f"errors {fig['socket_errors']}, non-2xx/3xx {fig['non_2xx_3xx']}, {APP_HOST} TCP accepts/request "
          f"{run[f'{APP_HOST}_tcp_accepts_per_request']}", flush=True)
    return run


def open_run(args, target: str, rnd: int, rate: int, targets: dict | None = None, window: int | None = None) -> dict:
    """An open-loop run at rate requests a second: --ol-warmup seconds not counted, then window
    (--stack-duration) seconds counted (and a second more for the last answers)."""
    targets = targets or TARGETS
    window = window or args.stack_duration
    url = targets[target]["url"]
    threads = args.ol_connections
    env = {**targets[target]["env"], "BENCH_RATE": rate, "BENCH_THREADS": threads, "BENCH_WARMUP": args.ol_warmup,
           "BENCH_WINDOW": window}
    seconds = math.ceil(0.3 + args.ol_warmup + window + 1)
    marks = {h: nginx_error_lines(h) for h in (LB_HOST, APP_HOST)}
    fig = lb_wrk(url, seconds, threads, threads, env, targets[target].get("client", LB_HOST))
    ol = fig["open_loop"]
    run = {"kind": target, "round": rnd, **fig, "nginx_errors": {h: nginx_errors_since(marks[h], h) for h in marks},
           "loadavg_1m": round(os.getloadavg()[0], 2)}
    print(f"   open loop {target} round {rnd}: {ol['rate']} req/s asked, {ol['rate_achieved']} answered/s, "
          f"p50 {ol['latency_ms']['p50']} ms, p99 {ol['latency_ms']['p99']} ms, max {ol['latency_ms']['max']} ms, "
          f"late {ol['late']}, unanswered {ol['unanswered']}, bad status {ol['bad_status']}", flush=True)
    return run


def lb_answers_from(n: int = 6) -> list[str]:
    """Which app host answers n requests through the lb (the example app names itself)."""
    return [json.loads(sh("curl", "-sk", "--max-time", "5", LB_HTTPS, host=LB_HOST))["host"] for _ in range(n)]


def install_wrk_bench(host: str) -> None:
    """molecule/bench/wrk-bench.lua into host, where wrk (the bench prepare installs it) runs it."""
    subprocess.run(["docker", "exec", "-i", host, "sh", "-c", f"mkdir -p {BENCH_LIB} && cat > {WRK_BENCH}"],
                   input=(Path(__file__).parent / "wrk-bench.lua").read_text(), text=True, check=True,
                   capture_output=True)
    sh("sh", "-c", "command -v wrk || { echo 'no wrk: the bench prepare installs it'; exit 1; }", host=host)


def drain_others(playbook, others: list[str], phase: str) -> None:
    """Take the other app hosts out of the lb's rotation (playbooks/drain.yml); check that only
    app1 answers through the lb."""
    print(f"== {phase}: drain {', '.join(others)} on the lb (playbooks/drain.yml)", flush=True)
    playbook("playbooks/drain.yml", "-e", f"drain={','.join(others)}")
    assert lb_down_hosts() == others, f"drained on the lb: {lb_down_hosts()}, wanted {others}"
    answered = lb_answers_from()
    assert set(answered) == {APP_HOST}, f"through the lb, answers from {answered}"


def undrain_others(playbook, others: list[str], phase: str) -> None:
    print(f"== {phase}: undrain {', '.join(others)}", flush=True)
    playbook("playbooks/drain.yml", "-e", f"undrain={','.join(others)}")


def switch_transport(name: str, same: dict, app1_playbook, spec: tuple | None = None, phase: str = "stack") -> dict:
    """app1 onto transport name (TRANSPORTS[name], or spec: (server, variables)); then check it."""
    server, variables = spec or TRANSPORTS[name]
    transport = {"listen": variables["wsgi_app_listen"], "protocol": variables["wsgi_app_protocol"],
                 "bind": variables.get("wsgi_app_bind_address", "127.0.0.1")}
    try:
        checked = verify_server(server, same, transport)
        print(f"== {phase}: {name}: already in place", flush=True)
        return {"transport": name, "wall_s": 0, "switched": False, **checked}
    except (AssertionError, RuntimeError):
        pass
    extra = server_vars(server, same)
    for key, value in variables.items():
        extra += ["-e", f"{key}={value}"]
    print(f"== {phase}: switch to {name}: playbooks/app.yml --limit {APP_HOST} {' '.join(extra)}", flush=True)
    t0 = time.monotonic()
    app1_playbook("playbooks/app.yml", *extra)
    wall = round(time.monotonic() - t0, 1)
    checked = verify_server(server, same, transport)
    print(f"   {name}: {server} on {checked['listen']} ({checked['protocol']}), nginx {checked['app_nginx']}, "
          f"switch {wall} s", flush=True)
    return {"transport": name, "wall_s": wall, "switched": True, **checked}


def stack_phase(args, inventory: Path, playbook, app1_playbook) -> dict:
    same = same_workers(inventory, args)
    rounds = args.stack_rounds
    print(f"== stack: {same['instances']} instances x {same['workers']} workers x {same['threads']} threads on "
          f"{APP_HOST}; wrk in {LB_HOST}, {args.connections} connections, {args.warmup} s warm-up + "
          f"{args.stack_duration} s per run, {rounds} rounds", flush=True)
    install_wrk_bench(LB_HOST)
    others = [h for h in APP_HOSTS if h != APP_HOST]
    switches, runs, open_runs = [], [], []
    transports = [t for t in TRANSPORTS if t != "uwsgi_http" or args.uwsgi_http]
    # Switching app1's transport is a gated change: it drains app1 on the lb, which refuses to take
    # the last host out of rotation. So every switch runs with the whole fleet in rotation, and the
    # other hosts are drained only around the runs that go through the lb (direct and stack).
    drained = False
    try:
        for name in transports:
            switches.append(switch_transport(name, same, app1_playbook))
            if name != "http_keepalive":
                runs += [closed_run(args, "app_nginx", rnd, name) for rnd in range(1, rounds + 1)]
                continue
            drained = True
            drain_others(playbook, others, "stack")
            order = ["app_nginx", "direct", "stack"]
            for rnd in range(1, rounds + 1):
                for target in order[rnd - 1:] + order[:rnd - 1]:  # rotated from round to round
                    runs.append(closed_run(args, target, rnd, name))
            direct = median(r["ok_rps"] for r in runs if r["kind"] == "direct")
            rate = max(1, round(direct * args.ol_fraction))
            print(f"== stack: open loop at {rate} req/s ({args.ol_fraction:g} x direct_rps {direct}), "
                  f"{args.ol_connections} connections", flush=True)
            for rnd in range(1, rounds + 1):
                for target in ("direct", "stack") if rnd % 2 else ("stack", "direct"):
                    open_runs.append(open_run(args, target, rnd, rate))
            undrain_others(playbook, others, "stack")
            drained = False
    finally:
        try:
            if drained:
                undrain_others(playbook, others, "stack")
        finally:
            print("== stack: back to the inventory's transport", flush=True)
            app1_playbook("playbooks/app.yml")
            verify_server("uwsgi", same_workers(inventory))
    assert not lb_down_hosts(), f"still drained: {lb_down_hosts()}"

    def ok_rps(kind, transport="http_keepalive"):
        return [r["ok_rps"] for r in runs if r["kind"] == kind and r["transport"] == transport]

    direct_rps, stack_rps = ok_rps("direct"), ok_rps("stack")
    over = [ratio(s, d) for s, d in zip(stack_rps, direct_rps)]

    def p99(kind):
        return [r["open_loop"]["latency_ms"]["p99"] for r in sorted(open_runs, key=lambda r: r["round"])
                if r["kind"] == kind]

    direct_p99, stack_p99 = p99("direct"), p99("stack")
    p99_over = [ratio(s, d) for s, d in zip(stack_p99, direct_p99)]
    transport = {}
    for name in transports:
        mine = [r for r in runs if r["kind"] == "app_nginx" and r["transport"] == name]
        transport[name] = {
            "server": TRANSPORTS[name][0],
            "variables": TRANSPORTS[name][1],
            "rps": median(r["ok_rps"] for r in mine),
            "rps_by_round": [r["ok_rps"] for r in mine],
            "rps_all_answers_by_round": [r["rps"] for r in mine],
            "p99_ms": median(r["latency_ms"]["p99"] for r in mine),
            "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in mine),
            "socket_errors": sum(r["socket_errors"] for r in mine),
            f"{APP_HOST}_tcp_accepts_per_request": median(r[f"{APP_HOST}_tcp_accepts_per_request"] for r in mine),
        }
    best = max((n for n in CANDIDATES if transport.get(n, {}).get("rps") is not None),
               key=lambda n: transport[n]["rps"], default=None)
    return {
        "params": {**STACK_PARAMS, "connections": args.connections, "wrk_threads": min(2, args.connections),
                   "warmup_s": args.warmup, "duration_s": args.stack_duration, "rounds": rounds,
                   "open_loop_connections": args.ol_connections, "open_loop_warmup_s": args.ol_warmup,
                   "open_loop_fraction_of_direct": args.ol_fraction,
                   "open_loop_rate": open_runs[0]["open_loop"]["rate"] if open_runs else None},
        "same_workers": same,
        "switches": switches,
        "runs": runs,
        "open_loop_runs": open_runs,
        "direct_rps": median(direct_rps), "direct_rps_by_round": direct_rps,
        "stack_rps": median(stack_rps), "stack_rps_by_round": stack_rps,
        "stack_over_direct": median(over), "stack_over_direct_by_round": over,
        "direct_p99_ms": median(direct_p99), "direct_p99_ms_by_round": direct_p99,
        "stack_p99_ms": median(stack_p99), "stack_p99_ms_by_round": stack_p99,
        "p99_ratio": median(p99_over), "p99_ratio_by_round": p99_over,
        "transport": {**{n: transport[n]["rps"] for n in CANDIDATES if n in transport}, "best": best},
        "transport_detail": transport,
    }


# ------------------------------------------------------------------------------------------------
# The latency phase: where requests wait, on the project's default server (uWSGI) and transport.

# uWSGI itself over HTTP (its http-socket): the "direct" path, the same workers with no proxy in
# front.
LATENCY_DIRECT = ("uwsgi", {"wsgi_app_listen": "tcp", "wsgi_app_protocol": "http", "wsgi_app_bind_address": "127.0.0.1"})
# client: where wrk runs. uWSGI's http-socket closes the connection after each answer (without
# saying so: HTTP/1.0 requests, so wrk expects the close), a new connection per request. From
# another container that is thousands of connections a second from one address, and the client
# runs out of ports in TIME_WAIT within a round (Linux reuses them on loopback only,
# tcp_tw_reuse=2): so the direct path, and the app host's nginx to compare it with, are loaded
# from inside app1 over loopback (as uwsgi_pass itself connects, per request, to a unix socket).
LATENCY_TARGETS = {
    "direct": {"url": f"http://127.0.0.1:{BASE_PORT}/healthz", "client": APP_HOST,
               "env": {"BENCH_ADDRS": ",".join(f"127.0.0.1:{BASE_PORT + n}" for n in range(len(INSTANCES))),
                       "BENCH_HTTP10": 1}},
    "app_nginx": {"url": WRK_URL, "client": APP_HOST, "env": {}},
    "lb": TARGETS["stack"],
}
LATENCY_PATHS = ("direct", "app_nginx", "lb")
# How uWSGI loads the app and accepts connections, measured through app1's nginx (--uwsgi-variants),
# with the project's variables: the role's defaults first.
UWSGI_VARIANTS = {
    "defaults": {},
    "thunder_lock": {"uwsgi_thunder_lock": True},
    "no_lazy_apps": {"uwsgi_lazy_apps": False},
    "no_lazy_apps_thunder_lock": {"uwsgi_lazy_apps": False, "uwsgi_thunder_lock": True},
}


def uwsgi_variant_ini(variables: dict) -> dict:
    """What a uWSGI variant's ini must say: its variables over the uwsgi role's defaults."""
    merged = {**uwsgi_defaults(), **variables}
    return {"lazy-apps": str(bool(merged["uwsgi_lazy_apps"])).lower(),
            "thunder-lock": str(bool(merged["uwsgi_thunder_lock"])).lower()}


def gunicorn_variants(same: dict) -> dict:
    """Gunicorn behind the same nginx with the same request slots per instance (workers x threads):
    gthread as the throughput phase runs it and sync workers, both with the role's default (no
    recycling), and sync workers recycled by count (max_requests 5000, jitter 500). name:
    (shape for server_vars / verify_server, more variables, what the config file must say)."""
    slots = same["workers"] * same["threads"]
    gthread = {**same, "gunicorn_worker_class": "gthread" if same["threads"] > 1 else "sync"}
    sync = {**same, "workers": slots, "threads": 1, "gunicorn_worker_class": "sync"}
    return {
        "gunicorn_gthread": (gthread, {}, {"worker_class": gthread["gunicorn_worker_class"], "max_requests": "0"}),
        "gunicorn_sync": (sync, {}, {"worker_class": "sync", "max_requests": "0"}),
        "gunicorn_sync_recycling": (sync, {"gunicorn_max_requests": 5000, "gunicorn_max_requests_jitter": 500},
                                    {"worker_class": "sync", "max_requests": "5000", "max_requests_jitter": "500"}),
    }


LATENCY_PARAMS = {
    "server": "uWSGI with the role's defaults and the scenario's workers (max-requests off: no worker is recycled "
              "by count; the recycles counted from the instances' journals during every run are in the runs)",
    "direct": f"wrk inside {APP_HOST} -> 127.0.0.1:{BASE_PORT}..{BASE_PORT + len(INSTANCES) - 1}: uWSGI's "
              "http-socket (wsgi_app_protocol=http, wsgi_app_listen=tcp, switched with playbooks/app.yml), "
              "HTTP/1.0 (uWSGI closes each connection), one wrk thread per instance",
    "app_nginx": f"wrk inside {APP_HOST} -> its nginx on 127.0.0.1:80 -> uWSGI on the inventory's transport "
                 "(uwsgi protocol, unix sockets): the project's default path",
    "lb": f"wrk in {LB_HOST} -> {LB_HTTPS}: the lb's nginx (TLS) -> {APP_HOST}'s nginx -> the same instances; "
          "the other app hosts drained on the lb for these runs",
    "client": f"wrk inside {APP_HOST} for direct and app_nginx (loopback: a new connection per request to uWSGI's "
              f"http-socket exhausts a remote client's ports), in {LB_HOST} for lb; every container shares the "
              "machine's CPUs",
    "saturation": "closed loop (--connections), --warmup s discarded then --stack-duration s; rps: 2xx/3xx answers",
    "half": "open loop (wrk-bench.lua, wrk2's method), --ol-connections connections, at --ol-fraction (0.5) x the "
            "saturation rps (median): direct's for direct and app_nginx (the same rate: tail_ratio compares them), "
            "the lb's own for lb",
    "long": "one open-loop run of --tail-duration s (60) through app1's nginx at the same rate: the 250 ms goal",
    "tail_ratio": "p99 through app1's nginx / p99 direct, open loop at the same rate (median of the per-round "
                  "ratios)",
}


def latency_summary(mine: list[dict], loop: str) -> dict:
    """Medians over the rounds of one path in one loop: 2xx/3xx rps and latency p50 / p99 / max."""
    lat = (lambda r: r["open_loop"]["latency_ms"]) if loop == "open" else (lambda r: r["latency_ms"])
    out = {q + "_ms": median(lat(r)[q] for r in mine) for q in ("p50", "p99", "max")}
    out["max_ms_worst"] = max((lat(r)["max"] for r in mine if lat(r)["max"] is not None), default=None)
    if loop == "open":
        out["rps"] = median(r["open_loop"]["rate_achieved"] for r in mine)
        out["rate"] = mine[0]["open_loop"]["rate"] if mine else None
        out["unanswered"] = sum(r["open_loop"]["unanswered"] for r in mine)
        out["bad_status"] = sum(r["open_loop"]["bad_status"] for r in mine)
    else:
        out["rps"] = median(r["ok_rps"] for r in mine)
        out["non_2xx_3xx"] = sum(r["non_2xx_3xx"] for r in mine)
        out["socket_errors"] = sum(r["socket_errors"] for r in mine)
    out["worker_recycles"] = sum(r["worker_recycles"] for r in mine)
    out["rounds"] = len(mine)
    return out


def latency_phase(args, inventory: Path, playbook, app1_playbook) -> dict:
    """p50 / p99 / max on three paths to the same uWSGI workers, at saturation (closed loop) and at
    half of the direct path's saturation rate (open loop); and one long open-loop run through app1's
    nginx."""
    same = same_workers(inventory, args)
    rounds = args.stack_rounds
    print(f"== latency: uWSGI, {same['instances']} instances x {same['workers']} workers x {same['threads']} "
          f"threads on {APP_HOST}; wrk in {APP_HOST} (direct, app_nginx) and {LB_HOST} (lb); {rounds} rounds per "
          "path and loop", flush=True)
    for client in (LB_HOST, APP_HOST):
        install_wrk_bench(client)
    ini = sh("cat", f"/etc/uwsgi/hello/{INSTANCES[0]}.ini")
    recycling = [line for line in ini.splitlines() if line.startswith(("max-requests", "reload-on-rss"))]
    others = [h for h in APP_HOSTS if h != APP_HOST]
    closed, opened, switches, long_run, variants = [], [], [], None, []

    def timed(fn, kind, *rest, **kw):
        since = time.time()
        run = fn(args, kind, *rest, targets=LATENCY_TARGETS, **kw)
        run["worker_recycles"] = worker_recycles_since(since)
        return run

    moved = drained = False
    try:
        # The direct path: uWSGI's own http-socket, loaded from inside app1. A gated change, made
        # with the whole fleet in rotation (the lb refuses to drain its last host).
        moved = True
        switches.append(switch_transport("uwsgi_http_direct", same, app1_playbook, LATENCY_DIRECT, "latency"))
        for rnd in range(1, rounds + 1):
            closed.append(timed(closed_run, "direct", rnd, "uwsgi_http_direct"))
        rate = max(1, round(median(r["ok_rps"] for r in closed) * args.ol_fraction))
        print(f"== latency: open loop at {rate} req/s ({args.ol_fraction:g} x the direct path's saturation rps)",
              flush=True)
        for rnd in range(1, rounds + 1):
            opened.append(timed(open_run, "direct", rnd, rate))
        print("== latency: back to the inventory's transport (playbooks/app.yml)", flush=True)
        t0 = time.monotonic()
        app1_playbook("playbooks/app.yml")
        switches.append({"transport": "inventory", "wall_s": round(time.monotonic() - t0, 1), "switched": True,
                         **verify_server("uwsgi", same_workers(inventory))})
        moved = False
        drained = True
        drain_others(playbook, others, "latency")
        for rnd in range(1, rounds + 1):
            for kind in ("app_nginx", "lb") if rnd % 2 else ("lb", "app_nginx"):
                closed.append(timed(closed_run, kind, rnd, "uwsgi_unix"))
        # The lb path at half of its own saturation: TLS and two proxies on the same 2 CPUs saturate
        # below direct, and at direct's half it would run near its own limit.
        lb_rate = max(1, round(median(r["ok_rps"] for r in closed if r["kind"] == "lb") * args.ol_fraction))
        print(f"== latency: open loop, app_nginx at {rate} req/s, lb at {lb_rate} req/s ({args.ol_fraction:g} x "
              "its own saturation rps)", flush=True)
        for rnd in range(1, rounds + 1):
            for kind in ("app_nginx", "lb") if rnd % 2 else ("lb", "app_nginx"):
                opened.append(timed(open_run, kind, rnd, rate if kind == "app_nginx" else lb_rate))
        print(f"== latency: one open-loop run of {args.tail_duration} s through {APP_HOST}'s nginx at {rate} req/s",
              flush=True)
        long_run = timed(open_run, "app_nginx", 0, rate, window=args.tail_duration)
        undrain_others(playbook, others, "latency")
        drained = False
        # How the app server loads the app, accepts and recycles: app1's nginx path only (no lb:
        # nothing to drain). Each variant is a gated change made with playbooks/app.yml.

        def variant(name: str, server: str, shape: dict, variables: dict, config: dict) -> None:
            extra = (server_vars(server, shape) if server == "gunicorn" else []) + [
                a for key, value in variables.items() for a in ("-e", json.dumps({key: value}))]
            print(f"== latency: variant {name}: playbooks/app.yml --limit {APP_HOST} {' '.join(extra)}", flush=True)
            t0 = time.monotonic()
            app1_playbook("playbooks/app.yml", *extra)
            checked = verify_server(server, shape)
            path = (f"/etc/uwsgi/hello/{INSTANCES[0]}.ini" if server == "uwsgi"
                    else f"/etc/gunicorn/hello/{INSTANCES[0]}.conf.py")
            found = {k: v.strip('"') for k, _, v in (line.partition(" = ") for line in sh("cat", path).splitlines())
                     if k in config}
            assert found == config, f"variant {name}: {path} says {found}, wanted {config}"
            record = {"name": name, "server": server, "variables": variables, "config": found,
                      "switch_s": round(time.monotonic() - t0, 1), "release": checked["release"], "closed": [],
                      "open": []}
            for rnd in range(1, rounds + 1):
                record["closed"].append(timed(closed_run, "app_nginx", rnd, f"{server} {name}"))
                record["open"].append(timed(open_run, "app_nginx", rnd, rate))
            variants.append(record)

        for name, variables in UWSGI_VARIANTS.items() if args.uwsgi_variants else ():
            moved = name != "defaults"
            variant(name, "uwsgi", same, variables, uwsgi_variant_ini(variables))
        for name, (shape, variables, config) in gunicorn_variants(same).items() if args.gunicorn_variants else ():
            moved = True
            variant(name, "gunicorn", shape, variables, config)
    finally:
        try:
            if drained:
                undrain_others(playbook, others, "latency")
        finally:
            if moved:
                print("== latency: back to the inventory's transport", flush=True)
                app1_playbook("playbooks/app.yml")
                verify_server("uwsgi", same_workers(inventory))
    assert not lb_down_hosts(), f"still drained: {lb_down_hosts()}"

    latency = {kind: {"saturation": latency_summary([r for r in closed if r["kind"] == kind], "closed"),
                      "half": latency_summary([r for r in opened if r["kind"] == kind], "open")}
               for kind in LATENCY_PATHS}

    def p99(kind):
        return [r["open_loop"]["latency_ms"]["p99"] for r in sorted(opened, key=lambda r: r["round"])
                if r["kind"] == kind]

    tail = [ratio(n, d) for n, d in zip(p99("app_nginx"), p99("direct"))]
    long_lat = long_run["open_loop"]["latency_ms"]
    over = ratio(latency["app_nginx"]["saturation"]["rps"], latency["direct"]["saturation"]["rps"])
    goals = {
        "half load, app nginx p99 <= 2 x direct p99 (tail_ratio <= 2)": median(tail) is not None and median(tail) <= 2,
        f"half load, app nginx, {args.tail_duration} s: no request over 250 ms": (
            long_lat["max"] is not None and long_lat["max"] <= 250 and not long_run["open_loop"]["unanswered"]),
        "saturation, lb: no request over 2 s (every round)": (
            latency["lb"]["saturation"]["max_ms_worst"] is not None
            and latency["lb"]["saturation"]["max_ms_worst"] <= 2000),
        "saturation: app nginx rps >= 0.9 x direct rps": over is not None and over >= 0.9,
    }
    return {
        "params": {**LATENCY_PARAMS, "connections": args.connections, "warmup_s": args.warmup,
                   "duration_s": args.stack_duration, "rounds": rounds, "open_loop_connections": args.ol_connections,
                   "open_loop_warmup_s": args.ol_warmup, "open_loop_fraction_of_direct": args.ol_fraction,
                   "open_loop_rate": rate, "open_loop_rate_lb": lb_rate, "tail_duration_s": args.tail_duration,
                   "uwsgi_recycling": recycling},
        "same_workers": same,
        "switches": switches,
        "closed_runs": closed,
        "open_loop_runs": opened,
        "long_run": long_run,
        "latency": latency,
        "tail_ratio": median(tail), "tail_ratio_by_round": tail,
        "nginx_over_direct": over,
        "tail_long": {"seconds": args.tail_duration, "rate": rate, **long_lat,
                      "unanswered": long_run["open_loop"]["unanswered"],
                      "worker_recycles": long_run["worker_recycles"]},
        "goals": goals,
        "variants": [{
            **{k: v[k] for k in ("name", "server", "variables", "config", "switch_s", "release")},
            "saturation": latency_summary(v["closed"], "closed"),
            "half": latency_summary(v["open"], "open"),
            "closed_runs": v["closed"], "open_loop_runs": v["open"]} for v in variants],
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
        (f"Throughput behind nginx (GET {params['url']}, wrk inside the container, closed loop, "
         f"{params['connections']} connections, {params['warmup_s']} s warm-up + {params['duration_s']} s per run); "
         f"both servers: {same['instances']} instances x {same['workers']} workers x {same['threads']} threads "
         f"(uwsgi_processes={same['workers']} uwsgi_threads={same['threads']} / gunicorn_workers={same['workers']} "
         f"gunicorn_threads={same['threads']} gunicorn_worker_class={same['gunicorn_worker_class']}; {same['source']})"),
        "",
        ("| run | server | 2xx/3xx req/s | req/s, all | p50 ms | p99 ms | max ms | requests | socket errors | "
         "non-2xx/3xx | worker recycles | load avg |"),
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
        rows += ["", ("(!) answers that were not 2xx/3xx or socket errors: req/s, all counts them (an nginx 502 is fast), "
                 "2xx/3xx req/s does not. nginx's error log during those runs:")]
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


def markdown_keys(results: dict) -> list[str]:
    """Every top-level key of the fleet and stack phases, with its rounds."""
    fleet, stack = results.get("fleet"), results.get("stack")

    def rounds(phase: dict | None, *path):
        if not phase:
            return ""
        node = phase
        for key in path:
            node = node[key]
        return ", ".join(fmt(v) for v in node)

    def fleet_rounds(part: str, kind: str) -> str:
        if not fleet:
            return ""
        return ", ".join(fmt(r["wall_s"]) for r in sorted(fleet[part]["runs"], key=lambda r: r["round"])
                         if r["kind"] == kind)

    detail = (stack or {}).get("transport_detail", {})
    rows = [
        "| key | value (median) | rounds | what |",
        "|---|---|---|---|",
        (f"| direct_rps | {fmt(results['direct_rps'])} | {rounds(stack, 'direct_rps_by_round')} | 2xx/3xx req/s, "
         f"wrk in the lb -> {APP_HOST}'s Gunicorn instances, closed loop |"),
        (f"| stack_rps | {fmt(results['stack_rps'])} | {rounds(stack, 'stack_rps_by_round')} | the same through "
         "lb nginx (TLS) -> app nginx -> the same instances |"),
        (f"| stack_over_direct | {fmt(results['stack_over_direct'])} | {rounds(stack, 'stack_over_direct_by_round')} "
         "| stack / direct, per round |"),
        (f"| direct_p99_ms | {fmt(results['direct_p99_ms'])} | {rounds(stack, 'direct_p99_ms_by_round')} | open loop "
         f"at {fmt((stack or {}).get('params', {}).get('open_loop_rate'))} req/s (50 % of direct_rps) |"),
        (f"| stack_p99_ms | {fmt(results['stack_p99_ms'])} | {rounds(stack, 'stack_p99_ms_by_round')} | the same "
         "rate through the stack |"),
        (f"| p99_ratio | {fmt(results['p99_ratio'])} | {rounds(stack, 'p99_ratio_by_round')} | stack / direct, per "
         "round |"),
    ]
    for name in (*CANDIDATES, "uwsgi_http"):
        d = detail.get(name)
        if name == "uwsgi_http" and not d:
            continue
        value = (results["transport"] or {}).get(name) if name != "uwsgi_http" else d["rps"]
        what = {"uwsgi_unix": "uWSGI, uwsgi protocol, unix socket", "uwsgi_tcp": "uWSGI, uwsgi protocol, TCP",
                "http_keepalive": "Gunicorn, HTTP, nginx upstream keepalive",
                "uwsgi_http": "diagnostic, not a candidate: uWSGI http-socket behind proxy_pass, no keepalive"}[name]
        errors = f"; non-2xx/3xx {d['non_2xx_3xx']}, socket errors {d['socket_errors']}" if d and (
            d["non_2xx_3xx"] or d["socket_errors"]) else ""
        rows.append(f"| transport.{name} | {fmt(value)} | {', '.join(fmt(v) for v in d['rps_by_round']) if d else ''} "
                    f"| 2xx/3xx req/s via app nginx: {what}{errors} |")
    rows += [
        f"| transport.best | {fmt((results['transport'] or {}).get('best'))} | | fastest of {', '.join(CANDIDATES)} |",
        (f"| noop_1host_s | {fmt(results['noop_1host_s'])} | {fleet_rounds('noop', '1host')} | site.yml again, "
         f"--limit {APP_HOST} |"),
        (f"| noop_4hosts_s | {fmt(results['noop_4hosts_s'])} | {fleet_rounds('noop', '4hosts')} | site.yml again, "
         "lb + 3 app hosts |"),
        (f"| noop_scale_ratio | {fmt(results['noop_scale_ratio'])} | "
         f"{rounds(fleet, 'noop', '4hosts / 1host by round')} | 4 hosts / 1 host, per round |"),
        (f"| code_deploy_1host_s | {fmt(results['code_deploy_1host_s'])} | {fleet_rounds('deploy', '1host')} | "
         f"playbooks/deploy.yml, code-only release, --limit {APP_HOST} |"),
        (f"| code_deploy_3hosts_s | {fmt(results['code_deploy_3hosts_s'])} | {fleet_rounds('deploy', '3hosts')} | "
         "the same to the 3 app hosts (one at a time) |"),
        (f"| deploy_scale_ratio | {fmt(results['deploy_scale_ratio'])} | "
         f"{rounds(fleet, 'deploy', '3hosts / 1host by round')} | 3 hosts / 1 host, per round |"),
        (f"| cold_converge_s | {fmt(results['cold_converge_s'])} | "
         f"{'1 round' if results['cold_converge_s'] is not None else ''} | molecule converge of fresh containers, "
         "lb + 3 app hosts |"),
        (f"| timings_connection | {fmt(results['timings_connection'])} | | ansible_connection of the hosts, from the "
         "scenario's inventory |"),
    ]
    return rows


def markdown_latency(la: dict) -> list[str]:
    """The latency phase: one row per path and load, the keys, the goals."""
    p = la["params"]
    rows = [
        (f"Latency, uWSGI {la['same_workers']['instances']} instances x {la['same_workers']['workers']} workers x "
         f"{la['same_workers']['threads']} threads on {APP_HOST} (recycling: {', '.join(p['uwsgi_recycling']) or 'none'}); "
         f"medians of {p['rounds']} rounds; saturation: closed loop, {p['connections']} connections; half: open "
         f"loop, {p['open_loop_connections']} connections, at {p['open_loop_rate']} req/s (half of direct's "
         f"saturation; lb: {p['open_loop_rate_lb']}, half of its own)"),
        "",
        "| path | load | rps | p50 ms | p99 ms | max ms | max ms, worst round | worker recycles |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in LATENCY_PATHS:
        for load in ("saturation", "half"):
            f = la["latency"][kind][load]
            rows.append(f"| {kind} | {load} | {fmt(f['rps'])} | {fmt(f['p50_ms'])} | {fmt(f['p99_ms'])} | "
                        f"{fmt(f['max_ms'])} | {fmt(f['max_ms_worst'])} | {f['worker_recycles']} |")
    t = la["tail_long"]
    rows.append(f"| app_nginx | half, {t['seconds']} s | {fmt(t['rate'])} | {fmt(t['p50'])} | {fmt(t['p99'])} | "
                f"{fmt(t['max'])} | | {t['worker_recycles']} |")
    rows += ["", "| key | value | rounds |", "|---|---|---|",
             f"| tail_ratio | {fmt(la['tail_ratio'])} | {', '.join(fmt(v) for v in la['tail_ratio_by_round'])} |",
             f"| nginx_over_direct | {fmt(la['nginx_over_direct'])} | saturation rps, medians |",
             "", "| goal | holds |", "|---|---|"]
    rows += [f"| {goal} | {'yes' if held else 'no'} |" for goal, held in la["goals"].items()]
    if la.get("variants"):
        rows += ["", (f"Variants, through {APP_HOST}'s nginx (medians of {p['rounds']} rounds; half: open loop at "
                      f"{p['open_loop_rate']} req/s)"), "",
                 ("| variant | server | config | saturation rps | saturation p99 ms | saturation max ms | "
                  "half p50 ms | half p99 ms | half max ms | worker recycles |"),
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for v in la["variants"]:
            sat, half = v["saturation"], v["half"]
            config = " ".join(f"{k}={val}" for k, val in v["config"].items())
            rows.append(f"| {v['name']} | {v['server']} | {config} | {fmt(sat['rps'])} | {fmt(sat['p99_ms'])} | "
                        f"{fmt(sat['max_ms'])} | {fmt(half['p50_ms'])} | {fmt(half['p99_ms'])} | {fmt(half['max_ms'])} | "
                        f"{sat['worker_recycles'] + half['worker_recycles']} |")
    return rows


def markdown_profile(fleet: dict, top: int = 8) -> list[str]:
    """Where the fleet runs spend their time: per run kind, the task headers and the slowest tasks
    of its median run."""
    rows = ["| run | wall s | task headers | slowest tasks (s, one task over all its hosts) |", "|---|---|---|---|"]
    for part, kinds in (("noop", ("1host", "4hosts")), ("deploy", ("1host", "3hosts"))):
        for kind in kinds:
            runs = sorted((r for r in fleet[part]["runs"] if r["kind"] == kind and r.get("profile")),
                          key=lambda r: r["wall_s"])
            if not runs:
                continue
            run = runs[len(runs) // 2]
            prof = run["profile"]
            slowest = "; ".join(f"{t['task']} {fmt(t['s'])}" for t in prof["slowest"][:top])
            rows.append(f"| {part} {kind} | {fmt(run['wall_s'])} | {prof['task_headers']} | {slowest} |")
    return rows


def markdown(results: dict) -> str:
    parts = ["\n".join(markdown_keys(results))]
    if results.get("fleet"):
        parts.append("\n".join(markdown_profile(results["fleet"])))
    if results.get("latency_phase"):
        parts.append("\n".join(markdown_latency(results["latency_phase"])))
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


PHASES = ("fleet", "throughput", "stack", "latency", "reload")
# The top-level keys of the fleet and stack phases (null when the phase did not run).
TOP_KEYS = ("direct_rps", "stack_rps", "stack_over_direct", "direct_p99_ms", "stack_p99_ms", "p99_ratio", "transport",
            "noop_1host_s", "noop_4hosts_s", "noop_scale_ratio", "code_deploy_1host_s", "code_deploy_3hosts_s",
            "deploy_scale_ratio", "cold_converge_s", "timings_connection")
# The latency phase's (null when it did not run).
LATENCY_KEYS = ("latency", "tail_ratio", "nginx_over_direct", "tail_long")


def phase_list(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in PHASES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASES)} (comma-separated), not {value!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=phase_list, help=f"run these phases only ({','.join(PHASES)}; comma-separated)")
    parser.add_argument("--skip", type=phase_list, default=[], help="leave these phases out (comma-separated)")
    parser.add_argument("--skip-throughput", action="store_true", help="leave the throughput phase out")
    parser.add_argument("--duration", type=int, default=120, help="reload steps: seconds of load per step (30..300)")
    parser.add_argument("--rate", type=int, default=20, help="reload steps: requests a second (1..50)")
    parser.add_argument("--tp-duration", type=int, default=20, help="throughput: measured seconds per run (5..120)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="throughput and stack: warm-up seconds before each closed-loop run (0..30)")
    parser.add_argument("--connections", type=int, default=16,
                        help="throughput and stack: wrk connections, closed loop (1..256)")
    parser.add_argument("--rounds", type=int, default=2, help="throughput: runs per server, alternating (1..5)")
    parser.add_argument("--workers", type=int, help="throughput and stack: workers per instance (default: uWSGI's)")
    parser.add_argument("--threads", type=int, help="throughput and stack: threads per worker (default: uWSGI's)")
    parser.add_argument("--fleet-rounds", type=int, default=3, help="fleet: rounds of each timing (3..5)")
    parser.add_argument("--stack-rounds", type=int, default=3, help="stack: rounds of each run (3..5)")
    parser.add_argument("--stack-duration", type=int, default=10,
                        help="stack: measured seconds per run, closed and open loop (5..60)")
    parser.add_argument("--ol-connections", type=int, default=32,
                        help="stack, open loop: connections (one wrk thread each, 4..64)")
    parser.add_argument("--ol-warmup", type=int, default=2, help="stack, open loop: seconds not counted (0..10)")
    parser.add_argument("--ol-fraction", type=float, default=0.5,
                        help="stack, open loop: the rate as a fraction of direct_rps (0.05..0.9)")
    parser.add_argument("--tail-duration", type=int, default=60,
                        help="latency: seconds of the long open-loop run through app1's nginx (10..120)")
    parser.add_argument("--uwsgi-variants", action=argparse.BooleanOptionalAction, default=True,
                        help="latency: measure uWSGI without lazy-apps and / or the thunder lock too (4 switches)")
    parser.add_argument("--gunicorn-variants", action=argparse.BooleanOptionalAction, default=True,
                        help="latency: measure Gunicorn gthread, sync, sync without recycling too (3 switches)")
    parser.add_argument("--uwsgi-http", action="store_true",
                        help="stack: measure the uwsgi_http diagnostic transport too (one switch and 3 runs more)")
    parser.add_argument("--cold-converge-s", type=float,
                        help="seconds the converge of fresh hosts took (make bench times it and passes it)")
    parser.add_argument("--output", default=str(PROJECT / "bench-results.json"), help="where the JSON goes")
    args = parser.parse_args(argv)
    if not 30 <= args.duration <= MAX_DURATION or not 1 <= args.rate <= 50:
        parser.error("--duration must be 30..300 seconds and --rate 1..50 requests a second")
    if not (5 <= args.tp_duration <= 120 and 0 <= args.warmup <= 30 and 1 <= args.connections <= 256
            and 1 <= args.rounds <= 5):
        parser.error("--tp-duration must be 5..120 s, --warmup 0..30 s, --connections 1..256, --rounds 1..5")
    if (args.workers is not None and args.workers < 1) or (args.threads is not None and args.threads < 1):
        parser.error("--workers and --threads must be >= 1")
    # Medians of at least 3 rounds for every fleet and stack figure.
    if not (3 <= args.fleet_rounds <= 5 and 3 <= args.stack_rounds <= 5 and 5 <= args.stack_duration <= 60
            and 4 <= args.ol_connections <= 64 and 0 <= args.ol_warmup <= 10 and 0.05 <= args.ol_fraction <= 0.9
            and 10 <= args.tail_duration <= 120):
        parser.error("--fleet-rounds and --stack-rounds must be 3..5, --stack-duration 5..60 s, --ol-connections "
                     "4..64, --ol-warmup 0..10 s, --ol-fraction 0.05..0.9, --tail-duration 10..120 s")
    skip = set(args.skip) | ({"throughput"} if args.skip_throughput else set())
    run = [p for p in PHASES if p in (args.only or PHASES) and p not in skip]
    if not run:
        parser.error("--only and --skip leave nothing to run")

    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
    inventory = Path(ephemeral) / "inventory" / "ansible_inventory.yml"
    if not ephemeral or not inventory.is_file():
        parser.error("no bench inventory: run `molecule converge -s bench` with MOLECULE_EPHEMERAL_DIRECTORY set "
                     "(make bench does both)")
    os.environ.setdefault("MOLECULE_PROJECT_DIRECTORY", str(PROJECT))
    os.environ["MOLECULE_INVENTORY_FILE"] = str(inventory)
    from wsgideploy_testlib import playbook, record_figure

    view = inventory_view(inventory)
    if view["groups"].get("lb") != [LB_HOST] or view["groups"].get("app") != sorted(APP_HOSTS):
        raise SystemExit(f"the bench inventory is not the fleet bench.py knows (lb {LB_HOST}, app {APP_HOSTS}): "
                         f"{view['groups']}")
    conn = timings_connection(view)
    # Every playbook of the throughput, stack and reload phases runs on app1 only, and on the release
    # app1 has (the fleet phase's last one once it ran): they change nothing else.
    state: dict = {"src": None}

    def app1_playbook(path: str, *extra: str) -> str:
        src = ["-e", f"wsgi_app_src={state['src']}"] if state["src"] else []
        return playbook(path, "--limit", APP_HOST, *src, *extra)

    results: dict = {"host": APP_HOST, "hosts": {"lb": LB_HOST, "app": list(APP_HOSTS)}, "cpus": os.cpu_count(),
                     "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "phases": run,
                     **{key: None for key in (*TOP_KEYS, *LATENCY_KEYS)}}
    results["timings_connection"] = conn["connection"]
    if args.cold_converge_s is not None:
        results["cold_converge_s"] = round(args.cold_converge_s, 1)
        results["cold_converge"] = {
            "s": round(args.cold_converge_s, 1), "rounds": 1, "connection": conn,
            "what": "make bench: wall time of `molecule converge -s bench` (site.yml: lb + 3 app hosts, bare to "
                    "serving) right after `molecule destroy` + `molecule create` (fresh containers; the scenario's "
                    "prepare.yml installed wrk, then emptied apt's lists as in the image); includes molecule's own "
                    "start-up. One round: a cold converge takes minutes"}
    t_start = time.monotonic()

    def save() -> None:
        results["bench_wall_s"] = round(time.monotonic() - t_start, 1)
        with open(args.output, "w") as fh:
            json.dump(results, fh, indent=2, sort_keys=True)
            fh.write("\n")

    with tempfile.TemporaryDirectory(prefix="wsgideploy-bench-") as tmp:
        if "fleet" in run:
            fl = fleet_phase(args, Path(tmp), conn)
            state["src"] = fl["src"]
            results["fleet"] = fl
            results.update({
                "noop_1host_s": fl["noop"]["median_s"]["1host"], "noop_4hosts_s": fl["noop"]["median_s"]["4hosts"],
                "noop_scale_ratio": fl["noop"]["ratio_median"],
                "code_deploy_1host_s": fl["deploy"]["median_s"]["1host"],
                "code_deploy_3hosts_s": fl["deploy"]["median_s"]["3hosts"],
                "deploy_scale_ratio": fl["deploy"]["ratio_median"],
            })
            record_figure("bench_fleet", {k: results[k] for k in TOP_KEYS[7:13]})
            save()
        if "throughput" in run:
            tp = throughput_phase(args, inventory, app1_playbook, back_to_uwsgi="reload" in run or "stack" in run)
            results["throughput"] = tp
            for server, m in tp["median"].items():
                record_figure(f"bench_throughput_{server}", m)
            save()
            if "reload" in run or "stack" in run:  # its table now, in case a later phase fails; all again at the end
                print()
                print("\n".join(markdown_throughput(tp)), flush=True)
                print()
        if "stack" in run:
            st = stack_phase(args, inventory, playbook, app1_playbook)
            results["stack"] = st
            results.update({key: st[key] for key in TOP_KEYS[:7]})
            record_figure("bench_stack", {k: results[k] for k in TOP_KEYS[:7]})
            save()
        if "latency" in run:
            la = latency_phase(args, inventory, playbook, app1_playbook)
            results["latency_phase"] = la
            results.update({"latency": la["latency"], "tail_ratio": la["tail_ratio"],
                            "nginx_over_direct": la["nginx_over_direct"], "tail_long": la["tail_long"]})
            record_figure("bench_latency", {k: results[k] for k in LATENCY_KEYS})
            save()
        if "reload" in run:
            subprocess.run(["docker", "cp", str(PROJECT / "scripts" / "loadgen.py"),
                            f"{APP_HOST}:/usr/local/bin/loadgen"], check=True, capture_output=True)
            sh("chmod", "0755", "/usr/local/bin/loadgen")
            rl = reload_phase(args, app1_playbook)
            results["reloads"] = rl
            for key, figures in rl["steps"].items():
                record_figure(f"bench_{key}",
                              {k: figures[k] for k in ("requests", "failed", "latency_ms", "wall_s", "reload")})
    save()
    print()
    print(markdown(results))
    print(f"\n(JSON: {args.output}; bench.py took {results['bench_wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
