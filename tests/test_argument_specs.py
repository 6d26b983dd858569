"""Bad role input fails in the play's first task, before any change, naming the variable.

playbooks/app.yml validates the variables of every role it will run against that role's
meta/argument_specs.yml in one pre-task. These tests run the play against a throwaway inventory
whose one app host is the controller itself, so they are fenced in three ways:

* always `--check`, and `--limit target` with `wsgideploy_app_group=app` (the throwaway host only);
* the `ansible` fixture (conftest.py) adds `ansible_python_interpreter=/bin/false` as an extra var:
  no module runs on any host, the implicit localhost of `delegate_to` included, while the
  controller-side actions (argument validation, assert) run normally. The first module task
  after validation fails with rc 1 having done nothing, which is where the positive control stops;
* HOME and Ansible's temp directories live under tmp_path, so even Ansible's own scratch files
  (and the app role's release cache, were it ever reached) stay out of the real home.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ansible

VALIDATION_TASK = "Validate the input of every role before any change"
# What the play validates, in order (playbooks/app.yml with the default server and process manager).
VALIDATED_ROLES = ["wsgi_app", "base", "app", "uwsgi", "systemd_service", "nginx", "app_proxy"]

HEADER_RE = re.compile(r"^TASK \[(?P<task>.*)\] \**\s*$")
# `fatal: [host]: FAILED! =>` for a task, `failed: [host] (item=x) =>` for an item of a loop.
FAILURE_RE = re.compile(
    r"^(?:fatal|failed): \[(?P<host>[^\]]+)\](?: \(item=(?P<item>[^)]*)\))?:? (?:FAILED! )?=>"
)
OK_ITEM_RE = re.compile(r"^ok: \[target\] => \(item=(?P<item>[^)]*)\)")
RECAP_RE = re.compile(
    r"^target\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """One host, `target`, in group app: the controller through the local connection.

    Its interpreter is the one a real run would use; the fence's extra var overrides it.
    """
    path = tmp_path / "inventory.yml"
    path.write_text(
        textwrap.dedent(
            f"""\
            all:
              children:
                app:
                  hosts:
                    target:
                      ansible_connection: local
                      ansible_python_interpreter: {json.dumps(sys.executable)}
            """
        )
    )
    return path


@pytest.fixture
def play(ansible, inventory, project_root):
    """`play(**extra_vars)`: the app play in check mode against the throwaway inventory."""

    def run(**extra_vars):
        args = [
            "-i", inventory,
            project_root / "playbooks" / "app.yml",
            "--check",
            "--limit", "target",
            "-e", json.dumps({"wsgideploy_app_group": "app"}),
        ]
        if extra_vars:
            args += ["-e", json.dumps(extra_vars)]
        return ansible("ansible-playbook", *args)

    return run


class Run:
    """The stdout of an ansible-playbook run (default callback, YAML results), taken apart."""

    def __init__(self, proc):
        self.proc = proc
        self.stdout: str = proc.stdout
        self.output: str = proc.stdout + proc.stderr
        self.sections: list[tuple[str, list[str]]] = []  # (task name, lines under its header)
        for line in self.stdout.splitlines():
            header = HEADER_RE.match(line)
            if header:
                self.sections.append((header["task"], []))
            elif self.sections:
                self.sections[-1][1].append(line)

    def __str__(self) -> str:
        return f"rc={self.proc.returncode}\n--- stdout\n{self.proc.stdout}\n--- stderr\n{self.proc.stderr}"

    __repr__ = __str__

    @property
    def tasks(self) -> list[str]:
        return [task for task, _ in self.sections]

    def failures(self) -> list[tuple[str, str | None, dict]]:
        """Every failed host/item, in order: (task, item, result) with the result parsed."""
        found = []
        for task, lines in self.sections:
            for n, line in enumerate(lines):
                match = FAILURE_RE.match(line)
                if not match:
                    continue
                block = []
                for body in lines[n + 1 :]:
                    if body.startswith("    ") or not body.strip():
                        block.append(body)
                    else:
                        break
                text = textwrap.dedent("\n".join(block)).strip()
                try:
                    result = yaml.safe_load(text) or {}
                except yaml.YAMLError:
                    result = {"msg": text}
                found.append((task, match["item"], result if isinstance(result, dict) else {"msg": text}))
        return found

    def recap(self) -> dict[str, int]:
        for line in self.stdout.splitlines():
            match = RECAP_RE.match(line)
            if match:
                return {k: int(v) for k, v in match.groupdict().items()}
        raise AssertionError(f"no PLAY RECAP line for target\n{self}")


BAD_INPUT = [
    pytest.param("uwsgi_processes", "many", "uwsgi", id="uwsgi-type"),
    pytest.param("wsgi_app_listen", "carrier-pigeon", "wsgi_app", id="wsgi_app-choice"),
    pytest.param("systemd_service_restart", "sometimes", "systemd_service", id="systemd_service-choice"),
    pytest.param("app_keep_releases", "lots", "app", id="app-type"),
    pytest.param("nginx_server_tokens", "maybe", "nginx", id="nginx-choice"),
    pytest.param("base_apt_cache_valid_time", "hourly", "base", id="base-type"),
    pytest.param("app_proxy_backend_protocol", "fastcgi", "app_proxy", id="app_proxy-choice"),
    pytest.param("wsgi_app_instances", "x", "wsgi_app", id="wsgi_app-type"),
]


@pytest.mark.parametrize(("variable", "value", "role"), BAD_INPUT)
def test_bad_input_fails_in_validation_before_any_change(play, variable, value, role):
    run = Run(play(**{variable: value}))

    assert run.proc.returncode != 0, run

    # The first task of the play is the validation, and it is the one that failed.
    assert run.tasks, run
    assert run.tasks[0] == VALIDATION_TASK, run
    failures = run.failures()
    assert failures, run
    first_task, first_item, first_result = failures[0]
    assert first_task == VALIDATION_TASK, run
    # Nothing ran after it: the host left the play in the validation task.
    assert run.tasks == [VALIDATION_TASK], run
    assert role in [item for _, item, _ in failures], run

    # The message of the failure names the variable (not merely the spec dump around it).
    messages = [str(result.get("msg", "")) for _, _, result in failures]
    assert any(variable in message for message in messages), run
    assert variable in run.output

    recap = run.recap()
    assert recap["changed"] == 0, run
    assert recap["failed"] == 1, run


def test_good_input_gets_past_validation(play):
    """Positive control: without bad input the same run passes validation, then stops.

    The roles' controller-side tasks after it run too; the first module task (installing the base
    packages) is where NO_MODULES stops the host. The whole run fails by design; only the
    validation is under test.
    """
    run = Run(play())

    assert run.tasks[0] == VALIDATION_TASK, run
    validation_lines = run.sections[0][1]
    assert not [line for line in validation_lines if FAILURE_RE.match(line)], run
    ok_items = [m["item"] for line in validation_lines if (m := OK_ITEM_RE.match(line))]
    assert ok_items == VALIDATED_ROLES, run

    # The play went on to the roles (today: wsgi_app's checks, then base installs packages) ...
    assert len(run.tasks) > 1, run
    assert any(task.startswith("wsgi_app : ") for task in run.tasks[1:]), run

    # ... and stopped at the first module task, whose module did not run (the fence held).
    failures = run.failures()
    assert failures, run
    task, _, result = failures[0]
    assert task != VALIDATION_TASK and task == run.tasks[-1], run
    assert result.get("rc") == 1 and not result.get("module_stdout"), run
    assert run.recap()["changed"] == 0, run
