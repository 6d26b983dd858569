"""Unit tests of the fleet's lock and ledger (plugins/modules/wsgideploy_lock.py,
plugins/modules/wsgideploy_ledger.py) and of the run's summary and history tables
(plugins/filter/fleet_run.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from scriptload import load_module

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
LOCK = PLUGINS / "modules" / "wsgideploy_lock.py"
LEDGER = PLUGINS / "modules" / "wsgideploy_ledger.py"
fleet_run = load_module("wsgideploy_filter_fleet_run", PLUGINS / "filter" / "fleet_run.py")


def module(script: Path, workdir: Path, check_mode: bool = False, **args) -> dict:
    argsfile = workdir / f"args-{time.monotonic_ns()}.json"
    argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}))
    proc = subprocess.run([sys.executable, str(script), str(argsfile)], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout)


def lock(tmp_path, **args) -> dict:
    return module(LOCK, tmp_path, **{"path": str(tmp_path / "state" / "lock"), **args})


def ledger(tmp_path, **args) -> dict:
    return module(LEDGER, tmp_path, **{"path": str(tmp_path / "state" / "ledger.jsonl"), **args})


# --- the lock -------------------------------------------------------------------------------------


def test_a_free_lock_is_taken_with_its_holder(tmp_path):
    got = lock(tmp_path, run="r1", holder={"owner": "alice@ci", "playbook": "deploy.yml", "release": "R1"})
    assert got["changed"] and got["held"] and not got["stolen"], got
    holder = json.loads((tmp_path / "state" / "lock" / "holder.json").read_text())
    assert holder["run"] == "r1" and holder["owner"] == "alice@ci" and holder["release"] == "R1"
    assert holder["started"] > 0 and holder["started_at"].endswith("Z")


def test_a_held_lock_refuses_another_run_naming_the_holder_and_changes_nothing(tmp_path):
    lock(tmp_path, run="r1", holder={"owner": "alice@ci", "playbook": "deploy.yml", "release": "R1", "message": "hotfix"})
    before = (tmp_path / "state" / "lock" / "holder.json").read_text()
    got = lock(tmp_path, run="r2", holder={"owner": "bob@laptop"}, hint="Nothing has changed.")
    assert got["failed"], got
    assert "alice@ci" in got["msg"] and "deploy.yml" in got["msg"] and "release R1" in got["msg"], got["msg"]
    assert '"hotfix"' in got["msg"] and " ago" in got["msg"] and got["msg"].endswith("Nothing has changed."), got["msg"]
    assert got["holder"]["run"] == "r1"
    assert (tmp_path / "state" / "lock" / "holder.json").read_text() == before


def test_the_run_that_holds_the_lock_takes_it_again_without_change(tmp_path):
    lock(tmp_path, run="r1")
    got = lock(tmp_path, run="r1")
    assert not got["changed"] and got["held"], got


def test_of_many_runs_at_once_exactly_one_takes_the_lock(tmp_path):
    results = []

    def take(n):
        results.append(lock(tmp_path, run=f"r{n}"))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if not r.get("failed")]
    assert len(winners) == 1, results
    holder = json.loads((tmp_path / "state" / "lock" / "holder.json").read_text())
    assert holder["run"] == winners[0]["holder"]["run"]


def test_a_waiting_run_takes_the_lock_once_it_is_released(tmp_path):
    lock(tmp_path, run="r1")
    release = threading.Timer(1.5, lambda: lock(tmp_path, run="r1", state="released"))
    release.start()
    got = lock(tmp_path, run="r2", wait=30)
    release.join()
    assert got["changed"] and got["waited"] >= 1.0 and got["holder"]["run"] == "r2", got


def test_a_wait_that_runs_out_refuses(tmp_path):
    lock(tmp_path, run="r1")
    start = time.monotonic()
    got = lock(tmp_path, run="r2", wait=1)
    assert got["failed"] and "Waited 1 s" in got["msg"], got
    assert time.monotonic() - start >= 1


def test_a_steal_takes_the_lock_over_and_returns_the_holder_it_replaced(tmp_path):
    lock(tmp_path, run="r1", holder={"owner": "alice@ci"})
    got = lock(tmp_path, run="r2", steal=True, holder={"owner": "bob@laptop"})
    assert got["changed"] and got["stolen"] and got["previous"]["owner"] == "alice@ci", got
    holder = json.loads((tmp_path / "state" / "lock" / "holder.json").read_text())
    assert holder["run"] == "r2" and holder["stolen_from"]["run"] == "r1"


def test_a_release_leaves_a_lock_another_run_holds(tmp_path):
    lock(tmp_path, run="r1")
    lock(tmp_path, run="r2", steal=True)
    got = lock(tmp_path, run="r1", state="released")
    assert not got["changed"] and not got["released"] and got["held"], got
    assert (tmp_path / "state" / "lock").is_dir()
    got = lock(tmp_path, run="r2", state="released")
    assert got["changed"] and got["released"] and not (tmp_path / "state" / "lock").exists(), got


def test_a_forced_release_removes_any_holder(tmp_path):
    lock(tmp_path, run="r1")
    got = lock(tmp_path, state="released", force=True)
    assert got["released"] and not (tmp_path / "state" / "lock").exists(), got


def test_a_lock_left_without_its_holder_file_is_named_by_its_age(tmp_path):
    (tmp_path / "state" / "lock").mkdir(parents=True)
    got = lock(tmp_path, run="r2")
    assert got["failed"] and "no holder file" in got["msg"] and " ago" in got["msg"], got


def test_check_mode_takes_nothing_and_says_who_holds_it(tmp_path):
    got = lock(tmp_path, run="r1", check_mode=True)
    assert not got["changed"] and not (tmp_path / "state" / "lock").exists(), got
    lock(tmp_path, run="r1", holder={"owner": "alice@ci"})
    got = lock(tmp_path, run="r2", check_mode=True)
    assert not got.get("failed") and got["held"] and "alice@ci" in got["msg"], got


def test_read_says_free_or_who(tmp_path):
    assert lock(tmp_path, state="read")["held"] is False
    lock(tmp_path, run="r1", holder={"owner": "alice@ci"})
    got = lock(tmp_path, state="read")
    assert got["held"] and not got["changed"] and "alice@ci" in got["description"], got


# --- the ledger ------------------------------------------------------------------------------------


def test_entries_are_appended_as_json_lines_and_read_back_oldest_first(tmp_path):
    ledger(tmp_path, entries=[{"kind": "run", "run": "r1"}, {"kind": "host", "run": "r1", "host": "a"}])
    ledger(tmp_path, entries=[{"kind": "run", "run": "r2"}])
    lines = (tmp_path / "state" / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["run"] for line in lines] == ["r1", "r1", "r2"]
    got = ledger(tmp_path, state="read", kind=["run"], count=5)
    assert [e["run"] for e in got["entries"]] == ["r1", "r2"] and not got["changed"]
    assert [e["run"] for e in ledger(tmp_path, state="read", kind=["run"], count=1)["entries"]] == ["r2"]


def test_the_ledger_is_rotated_and_never_grows_without_bound(tmp_path):
    for n in range(60):
        ledger(tmp_path, entries=[{"kind": "run", "run": f"r{n}", "pad": "x" * 200}], max_bytes=4096, keep=2)
    files = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert files == ["ledger.jsonl", "ledger.jsonl.1", "ledger.jsonl.2"], files
    assert all((tmp_path / "state" / name).stat().st_size <= 4096 for name in files)
    got = ledger(tmp_path, state="read", kind=["run"], count=10, keep=2)
    assert [e["run"] for e in got["entries"]] == [f"r{n}" for n in range(50, 60)]


def test_a_torn_line_is_skipped(tmp_path):
    ledger(tmp_path, entries=[{"kind": "run", "run": "r1"}])
    with open(tmp_path / "state" / "ledger.jsonl", "a") as fh:
        fh.write('{"kind": "run", "ru')
    ledger(tmp_path, entries=[{"kind": "run", "run": "r2"}])
    # The next append starts after the torn line: only that line is lost.
    got = ledger(tmp_path, state="read", kind=["run"])
    assert [e["run"] for e in got["entries"]] == ["r1"], got


def test_check_mode_writes_nothing(tmp_path):
    got = ledger(tmp_path, check_mode=True, entries=[{"kind": "run"}])
    assert got["changed"] and not (tmp_path / "state" / "ledger.jsonl").exists()


# --- the summary and the history ----------------------------------------------------------------------

REPORT = {
    "kind": "run", "run": "20261207T000000Z-abc123", "playbook": "deploy.yml", "owner": "alice@ci", "release": "R2",
    "result": "failed", "seconds": 61.23, "message": "hotfix", "failed_requests": 0,
    "failure": "app2 at 'Health gate': unhealthy",
    "hosts": [
        {"host": "app1", "from": "R1", "to": "R2", "drain_s": 0.8, "switch_s": 3.25, "gate_s": 1.0, "result": "switched"},
        {"host": "app2", "from": "R1", "to": "R2", "drain_s": 0.7, "switch_s": 3.0, "gate_s": 30.1,
         "result": "rolled back", "message": "Health gate: unhealthy"},
        {"host": "app3", "from": "R1", "to": "R2", "result": "pending"},
    ],
    "lbs": [{"host": "lb", "result": "current"}],
}


def test_the_summary_has_a_line_per_host_with_each_steps_seconds():
    lines = fleet_run.run_summary(REPORT)
    assert lines[0].startswith("run 20261207T000000Z-abc123: deploy.yml by alice@ci, release R2 - FAILED in 61.2 s")
    app1 = next(line for line in lines if line.startswith("app1 "))
    assert "R1 -> R2" in app1 and " 0.8/3.2/1.0 " in app1 and app1.endswith("switched"), app1
    app2 = next(line for line in lines if line.startswith("app2 "))
    assert app2.endswith("rolled back: Health gate: unhealthy"), app2
    assert any(line.startswith("app3 ") and "-/-/-" in line and line.endswith("pending") for line in lines)
    header = next(line for line in lines if line.startswith("host "))
    assert app1.index("R1 -> R2") == header.index("from -> to") and len(app1) <= 80, lines
    assert "requests the lbs answered as failed (5xx) for the app during the run: 0" in lines
    assert lines[-1] == "failed: app2 at 'Health gate': unhealthy"


def test_the_history_has_a_line_per_run_and_steal():
    lines = fleet_run.run_history([
        REPORT,
        {"kind": "host", "run": "x"},
        {"kind": "lock", "event": "stolen", "by": "bob@laptop", "at": "2026-12-07T01:00:00Z",
         "from": {"owner": "alice@ci", "playbook": "deploy.yml", "started_at": "2026-12-07T00:00:00Z"}},
    ])
    assert len(lines) == 3, lines
    assert "failed" in lines[1] and "deploy.yml" in lines[1] and "2/3" in lines[1] and "hotfix" in lines[1], lines[1]
    assert "lock stolen" in lines[2] and "alice@ci" in lines[2], lines[2]
    assert fleet_run.run_history([]) == ["no run recorded yet"]


# --- a drain a killed run left ---------------------------------------------------------------------

lb_backend = load_module("wsgideploy_filter_lb_backend", PLUGINS / "filter" / "lb_backend.py")


def test_a_down_mark_no_operator_made_is_taken_back_by_the_next_run():
    items = [[{"lb_backend_lb": "lb1"}, {"path": "/etc/nginx/wsgideploy/app/app/app1.conf"}],
             [{"lb_backend_lb": "lb2"}, {"path": "/etc/nginx/wsgideploy/app/app/app1.conf"}]]
    # lb1's operator drained app1 (kept out); on lb2 nobody did (a killed run's mark: taken back).
    assert lb_backend.lb_left_down(items, {"lb1": ["app1"], "lb2": ["app3"]}, "app1") == [items[1]]
    assert lb_backend.lb_left_down(items, {}, "app1") == items
    assert lb_backend.lb_left_down([], {"lb1": []}, "app1") == []
