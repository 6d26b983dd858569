#!/usr/bin/env python3
"""make bench: what a deploy costs the requests in flight, per uWSGI reload mode, as ratios.

A benchmark, not a test: it asserts only that each step did what it is meant to measure (the
release landed, the reload was of the intended kind) and prints the figures of ONE run. Absolute
numbers depend on the machine; compare the ratios.

On the bench scenario's one app host (molecule converge -s bench first), with scripts/loadgen.py
running INSIDE the container against http://127.0.0.1/healthz (nginx -> 2 uWSGI instances) at a
constant rate over 4 connections, bounded by --duration seconds and duration x rate requests:

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
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "molecule" / "shared"))

APP_HOST = "wsgideploy-bench-app"
URL = "http://127.0.0.1/healthz"
INSTANCES = ("hello-0", "hello-1")
HEALTH = "/usr/local/lib/wsgideploy/wsgi-health"
# A small pure-python package, pinned: a requirements change that installs quickly.
EXTRA_REQUIREMENT = "six==1.17.0"
MAX_DURATION = 300  # seconds of load per step, whatever the arguments


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


def every_instance_reports(release: str) -> None:
    for instance in INSTANCES:
        sh(HEALTH, f"/run/{instance}/app.sock", "--protocol", "uwsgi", "--expect-release", release)


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


def markdown(results: dict) -> str:
    rows = [
        "| step | reload | failed / total | p50 ms | p99 ms | max ms | action s | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("A", "C", "R", "B", "D"):
        s = results["steps"][key]
        lat = s["latency_ms"] or {}
        rows.append(
            f"| {key}: {s['what']} | {s['reload']} | {s['failed']} / {s['requests']} | {fmt(lat.get('p50'))} | "
            f"{fmt(lat.get('p99'))} | {fmt(lat.get('max'))} | {fmt(s['wall_s'])}{'' if s['action_inside_load'] else ' (!)'} | "
            f"{fmt(s['loadavg_1m'])} |"
        )
    rows += ["", "| ratio | value |", "|---|---|"]
    rows += [f"| {name} | {fmt(value)} |" for name, value in results["ratios"].items()]
    if not all(s["action_inside_load"] for s in results["steps"].values()):
        rows += ["", "(!) the action outlasted the load: its reload may be missing from the figures (raise --duration)"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=180, help="seconds of load per step (30..300)")
    parser.add_argument("--rate", type=int, default=20, help="requests a second (1..50)")
    parser.add_argument("--output", default=str(PROJECT / "bench-results.json"), help="where the JSON goes")
    args = parser.parse_args(argv)
    if not 30 <= args.duration <= MAX_DURATION or not 1 <= args.rate <= 50:
        parser.error("--duration must be 30..300 seconds and --rate 1..50 requests a second")

    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
    inventory = Path(ephemeral) / "inventory" / "ansible_inventory.yml"
    if not ephemeral or not inventory.is_file():
        parser.error("no bench inventory: run `molecule converge -s bench` with MOLECULE_EPHEMERAL_DIRECTORY set "
                     "(make bench does both)")
    os.environ.setdefault("MOLECULE_PROJECT_DIRECTORY", str(PROJECT))
    os.environ["MOLECULE_INVENTORY_FILE"] = str(inventory)
    from wsgideploy_testlib import playbook, record_figure

    subprocess.run(["docker", "cp", str(PROJECT / "scripts" / "loadgen.py"), f"{APP_HOST}:/usr/local/bin/loadgen"],
                   check=True, capture_output=True)
    sh("chmod", "0755", "/usr/local/bin/loadgen")

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

    results = {
        "params": {"url": URL, "rate": args.rate, "duration_s": args.duration, "requests_cap": args.duration * args.rate,
                   "concurrency": 4, "instances": len(INSTANCES), "host": APP_HOST, "cpus": os.cpu_count(),
                   "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
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
    for key, figures in steps.items():
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
