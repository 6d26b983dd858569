"""Helpers shared by the molecule scenarios' testinfra tests."""

from __future__ import annotations

import difflib
import fcntl
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import testinfra


def scenario_host(name: str, sudo: bool = True):
    """A testinfra host of the running scenario, by inventory name; its commands run as root
    (through sudo when the scenario logs in as a deploy user)."""
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"], sudo=sudo)


def app_copy(tmp_path, marker: str):
    """A copy of the project's example app whose stylesheet ends with a comment naming `marker`:
    the same app, another release."""
    src = tmp_path / "app"
    shutil.copytree(os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "app"), src,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "hello" / "static" / "style.css", "a") as fh:
        fh.write(f"\n/* a release of {marker} */\n")
    return src


def run_playbook(path: str, *args: str, timeout: int = 900, inventory: str | None = None) -> tuple[int, str]:
    """Run a playbook (relative to the project) with molecule's inventory (or `inventory`); (exit
    code, output)."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    cmd = ["ansible-playbook", "-i", inventory or os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(project, path), *args]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    return res.returncode, res.stdout + res.stderr


def start_playbook(path: str, *args: str, inventory: str | None = None) -> subprocess.Popen:
    """Start a playbook in the background (as run_playbook would run it); finish() collects it."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    cmd = ["ansible-playbook", "-i", inventory or os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(project, path), *args]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(proc: subprocess.Popen, timeout: int = 900) -> tuple[int, str]:
    """(exit code, output) of a playbook start_playbook started."""
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


FLEET_DIR = "/var/lib/wsgideploy-fleet"


def lock_holder(host: str, app: str) -> dict:
    """The holder of an app's deploy lock on its lock host ({} when free)."""
    res = scenario_host(host).run(f"cat {FLEET_DIR}/{app}/lock/holder.json")
    return json.loads(res.stdout) if res.rc == 0 and res.stdout.strip() else {}


def wait_for_lock(host: str, app: str, timeout: int = 300, not_run: str = "") -> dict:
    """Wait until a run (other than `not_run`) holds the app's lock; its holder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = lock_holder(host, app)
        if holder and holder.get("run") != not_run:
            return holder
        time.sleep(0.5)
    raise AssertionError(f"no run took the lock of {app} on {host} within {timeout} s")


def ledger(host: str, app: str) -> list[dict]:
    """The app's ledger on a host (its lock host: every run; an app host: its own lines)."""
    res = scenario_host(host).run(f"cat {FLEET_DIR}/{app}/ledger.jsonl")
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()] if res.rc == 0 else []


def playbook(path: str, *args: str, timeout: int = 900, inventory: str | None = None) -> str:
    """Run a playbook that must succeed; its output."""
    rc, out = run_playbook(path, *args, timeout=timeout, inventory=inventory)
    assert rc == 0, out[-6000:]
    return out


def converge(*args: str, timeout: int = 900) -> str:
    """Run the scenario's converge playbook again."""
    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    rel = os.path.relpath(os.path.join(scenario, "converge.yml"), os.environ["MOLECULE_PROJECT_DIRECTORY"])
    return playbook(rel, *args, timeout=timeout)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host (summed over plays)."""
    counts: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        host = counts.setdefault(m.group(1), {})
        for k, v in re.findall(r"(\w+)=(\d+)", m.group(2)):
            host[k] = host.get(k, 0) + int(v)
    assert counts, output[-2000:]
    return counts


def assert_check_diff_clean(*args: str, hosts: set[str] | None = None) -> str:
    """The scenario's converge with --check --diff (and `args`, e.g. --limit) would change nothing
    and fail nowhere; `hosts`: exactly the hosts its recap must name. Its output."""
    out = converge("--check", "--diff", *args)
    counts = recap(out)
    if hosts is not None:
        assert set(counts) == hosts, out[-3000:]
    for name, host_counts in counts.items():
        assert host_counts["changed"] == 0, f"{name}: --check --diff would change something:\n{out[-3000:]}"
        assert host_counts["failed"] == 0, f"{name}: --check --diff failed:\n{out[-3000:]}"
    return out


class LoadSummary(dict):
    """The load generator's summary. Its repr puts what a failed assertion needs first (pytest
    cuts an assertion message's repr short): the failures, their kinds, the retries, the statuses."""

    FIRST = ("failed", "errors", "retried", "status", "requests", "duration_s", "url")

    def __repr__(self) -> str:
        keys = [k for k in self.FIRST if k in self] + [k for k in self if k not in self.FIRST]
        return "{" + ", ".join(f"{k!r}: {self[k]!r}" for k in keys) + "}"


def loadgen(client, url: str, *args: str) -> LoadSummary:
    """Run the load generator on the client host; its JSON summary."""
    out = client.run("loadgen " + " ".join([url, *args]))
    assert out.rc in (0, 1), out.stderr
    return LoadSummary(json.loads(out.stdout))


def figures_path() -> str:
    return os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"), "figures.json")


def figures_summary() -> str:
    """The figures recorded by this run, one per line (empty without any)."""
    if not os.path.exists(figures_path()):
        return ""
    with open(figures_path()) as fh:
        figures = json.load(fh)
    return "\n".join(f"{name}: {json.dumps(value, sort_keys=True)}" for name, value in sorted(figures.items()))


def record_figure(name: str, value) -> None:
    """Keep a measured figure in the scenario's ephemeral directory (figures.json) and print it.
    Test workers running side by side (xdist) take turns through a lock file."""
    path = figures_path()
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        figures = {}
        if os.path.exists(path):
            with open(path) as fh:
                figures = json.load(fh)
        figures[name] = value
        with open(path + ".tmp", "w") as fh:
            json.dump(figures, fh, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)
    print(f"FIGURE {name}: {json.dumps(value, sort_keys=True)}")


def gixy_report(container: str, workdir: str) -> tuple[int, str]:
    """Copy a container's /etc/nginx out and run gixy on it; (exit code, report)."""
    dest = os.path.join(workdir, container)
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["docker", "cp", f"{container}:/etc/nginx", dest], check=True, capture_output=True)
    root = os.path.join(dest, "nginx")
    # Point the absolute includes at the copy.
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not name.endswith((".conf", ".types", "_params")):
                continue
            with open(path) as fh:
                text = fh.read()
            with open(path, "w") as fh:
                fh.write(text.replace("/etc/nginx/", root + "/"))
    res = subprocess.run(["gixy", os.path.join(root, "nginx.conf")], capture_output=True, text=True, check=False)
    return res.returncode, res.stdout + res.stderr


def load_during(action, client: str, url: str, seconds: int, rate: int, until_done: bool = False):
    """Constant load from the client host (seconds x rate requests over 4 connections, bounded)
    while action() runs in this thread; (load summary, action's result). until_done: the load
    stops 2 s after the action returns (`seconds` is then only its upper bound)."""
    summary = LoadSummary()
    stop_file = f"/tmp/wsgideploy-load-stop-{uuid.uuid4().hex}"

    def load():
        summary.update(
            loadgen(scenario_host(client), url, "--insecure", "--duration", str(seconds), "--rate", str(rate),
                    "--requests", str(seconds * rate), "--concurrency", "4", "--timeout", "10",
                    *(["--stop-file", stop_file] if until_done else []))
        )

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(2)  # the load is under way before the action starts
    try:
        result = action()
    finally:
        if until_done:
            time.sleep(2)  # the load goes on a little after the action
            scenario_host(client).run(f"touch {stop_file}")
        worker.join(timeout=seconds + 120)
    assert not worker.is_alive(), "the load generator did not finish"
    return summary, result


# What a failed change must leave as it was on an app host: config, units, settings, current, the
# releases kept, the history, whether the instances run (not their PIDs: a failed host restarts
# them on the restored state).
APP_HOST_STATE = (
    "cd / && sha256sum /etc/uwsgi/*/*.ini /etc/gunicorn/*/*.py /etc/systemd/system/*.service /etc/systemd/system/*.target"
    " /etc/supervisor/supervisord.conf /etc/supervisor/conf.d/*.conf /etc/tmpfiles.d/wsgideploy-*.conf"
    " /srv/*/shared/settings.py /srv/*/releases.json /etc/nginx/nginx.conf /etc/nginx/conf.d/*.conf 2>/dev/null;"
    " readlink /srv/*/current; ls /srv/*/releases;"
    " systemctl is-active $(ls /etc/systemd/system | grep -E '[.](service|target)$');"
    " supervisorctl status 2>/dev/null | awk '{print $1, $2}'; true"
)
# On a load balancer: the upstream files (a host left marked down shows here) and the site.
LB_HOST_STATE = "sha256sum /etc/nginx/wsgideploy/*/*/*.conf /etc/nginx/conf.d/*.conf /etc/ansible/facts.d/*; true"


def host_state(name: str, command: str = APP_HOST_STATE) -> str:
    """A snapshot of a host's state (compare before and after a change that must not stick)."""
    return scenario_host(name).check_output(command)


def fleet_state(apps: list[str], lb: str) -> dict[str, str]:
    """Snapshots of the app hosts and their lb."""
    state = {name: host_state(name) for name in apps}
    state[lb] = host_state(lb, LB_HOST_STATE)
    return state


def assert_fleet_unchanged(before: dict[str, str], after: dict[str, str], output: str, prepared: str = "") -> None:
    """Every host as it was. `prepared`: a release the run built on hosts it never switched (its
    directory stays, never activated), left out of their listing."""
    for name in before:
        lines = [line for line in after[name].splitlines() if not prepared or line != prepared]
        diff = "\n".join(difflib.unified_diff(before[name].splitlines(), lines, lineterm=""))
        assert lines == before[name].splitlines(), f"{name} changed:\n{diff}\n{output[-3000:]}"


def app_processes(h) -> list[dict]:
    """Every process of a host: pid, ppid, user, args."""
    rows = []
    for line in h.check_output("ps -eo pid=,ppid=,user:32=,args=").splitlines():
        pid, ppid, user, args = (line.split(None, 3) + [""])[:4]
        rows.append({"pid": int(pid), "ppid": int(ppid), "user": user, "args": args})
    return rows


def assert_serves_under(h, app: str, instances: int, server: str, manager: str) -> list[dict]:
    """From the process table: exactly `instances` copies of the app run (one main process each,
    the app server named `server`, its parent the process manager `manager`), every process of
    them as the app user, none as root; the process manager itself names each main process; the
    other process managers run nothing of the app. The main processes."""
    rows = app_processes(h)
    by_pid = {r["pid"]: r for r in rows}
    mine = [r for r in rows if r["user"] == app]
    mains = [r for r in mine if by_pid.get(r["ppid"], {}).get("user") != app and server in r["args"].lower()]
    assert len(mains) == instances, (h.backend.hostname, server, manager, rows)
    for main in mains:
        parent = by_pid[main["ppid"]]
        if manager == "systemd":
            assert main["ppid"] == 1, (main, parent)
        else:
            assert "supervisord" in parent["args"] and parent["user"] == "root", (main, parent)
        workers = [r for r in rows if r["ppid"] == main["pid"]]
        assert workers and all(w["user"] == app for w in workers), (main, workers)
    # Nothing of the app runs as root (its code, its venv, its instances' names).
    as_root = [r for r in rows if r["user"] == "root"
               and (f"/srv/{app}/" in r["args"] or r["args"].startswith(f"{app}-"))]
    assert not as_root, as_root
    pids = {str(r["pid"]) for r in mains}
    names = [f"{app}-{n}" for n in range(instances)]
    systemd_pids = {h.check_output(f"systemctl show -p MainPID --value {name}.service") for name in names}
    supervisor = h.run("supervisorctl status")
    supervised = [line for line in supervisor.stdout.splitlines() if line.startswith(f"{app}:")]
    if manager == "systemd":
        assert systemd_pids == pids, (systemd_pids, pids)
        assert not supervised, supervisor.stdout
    else:
        assert systemd_pids == {"0"}, systemd_pids
        assert len(supervised) == instances and all(" RUNNING " in f" {line} " for line in supervised), supervised
        assert {line.split("pid ")[1].split(",")[0] for line in supervised} == pids, (supervised, pids)
        units = h.run(f"grep -l '^# wsgideploy-instance-of={app}$' /etc/systemd/system/*.service")
        assert units.stdout.strip() == "", units.stdout
    return mains
