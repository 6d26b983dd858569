"""The playbooks' tags (README: One concern at a time): every task of the gated playbooks says which
concern it belongs to, or `always`, so that a run with --tags never drops a piece of the gated
path by leaving it untagged; an included role carries its tags into its own tasks (apply)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONCERNS = {"always", "install", "config", "release", "lb"}
# The gated playbooks and the task files they include (the files they import, validate-*.yml,
# take the import's tags).
GATED = ["playbooks/check.yml", "playbooks/app.yml", "playbooks/lb.yml", "playbooks/rollback.yml",
         "playbooks/tasks/plan.yml", "playbooks/tasks/switch-host.yml", "playbooks/tasks/stamp-write.yml"]


def tasks_of(path: Path):
    """(task, tags inherited from enclosing blocks) for every task of a playbook or task file."""
    data = yaml.safe_load(path.read_text())
    if path.parent.name == "playbooks":
        lists = [play.get(key, []) for play in data if "import_playbook" not in play
                 for key in ("pre_tasks", "tasks", "post_tasks", "handlers")]
    else:
        lists = [data]

    def walk(tasks, inherited):
        for task in tasks:
            tags = set(task.get("tags", [])) | inherited
            if "block" in task:
                for key in ("block", "rescue", "always"):
                    yield from walk(task.get(key, []), tags)
            else:
                yield task, tags

    for tasks in lists:
        yield from walk(tasks, set())


@pytest.mark.parametrize("rel", GATED)
def test_every_task_of_the_gated_path_is_tagged(rel):
    problems = []
    for task, tags in tasks_of(ROOT / rel):
        name = task.get("name", "?")
        if not tags:
            problems.append(f"{name}: no tags")
        elif not tags <= CONCERNS:
            problems.append(f"{name}: tags {sorted(tags - CONCERNS)} are not concerns")
        if "ansible.builtin.include_role" in task:
            applied = set(task["ansible.builtin.include_role"].get("apply", {}).get("tags", []))
            if applied != set(task.get("tags", [])):
                problems.append(f"{name}: apply tags {sorted(applied)} differ from the include's {task.get('tags')}")
    assert not problems, problems


def test_the_lb_play_changes_nothing_but_under_lb():
    """The lb play's tasks that change the lb carry `lb` alone: --tags config or release does not reach
    the load balancers' nginx."""
    changing = {"Install and configure nginx", "The load balancer's site", "Record what this run left on the lb"}
    seen = {task.get("name"): tags for task, tags in tasks_of(ROOT / "playbooks/lb.yml")}
    assert all(seen[name] == {"lb"} for name in changing), {name: seen.get(name) for name in changing}


def test_the_concerns_are_read_from_the_run_tags():
    """vars/app-hosts.yml turns --tags/--skip-tags into the concerns the app hosts apply."""
    data = yaml.safe_load((ROOT / "playbooks/vars/app-hosts.yml").read_text())
    assert set(data["wsgideploy_applies"]) == {"install", "config", "release"}
    for concern, expr in data["wsgideploy_applies"].items():
        assert f"'{concern}' in ansible_run_tags" in expr and f"'{concern}' not in ansible_skip_tags" in expr, expr
    assert data["app_switch_release"] == "{{ wsgideploy_applies.release }}"
    assert data["app_switch_settings"] == "{{ wsgideploy_applies.config }}"
