"""Bad role input fails in the play's first task, before any change, naming the variable.

playbooks/app.yml validates the variables of every role it will run against that role's
meta/argument_specs.yml in one pre-task, then (playbooks/tasks/validate-input.yml) what specs
cannot say: bounds of numbers, app_settings keys, deploy_serial, files on the controller. These tests run the play against a throwaway inventory
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
# Before it, the app definition (wsgi_app, which changes nothing) is loaded, so that its derived
# variables (wsgi_app_shared, ...) may serve every other role's input; it checks its own spec.
APP_DEFINITION = "The app definition, for the whole play"


# Before it, the play takes site.yml's check if that ran (tests/ run app.yml alone: it did not).
SITE_CHECK = ("Take site.yml's check, once", "End here when the run applies none of the app hosts' concerns",
              "Note a host that check found as the last successful run left it (the run's summary)",
              "End here for a host that check found as the last successful run left it",
              "Note an lb that check found current (the run's summary)",
              "End here for an lb that check found current, when no app host has switched since")


def prelude(task: str) -> bool:
    return task in (APP_DEFINITION, *SITE_CHECK) or task.startswith("wsgi_app : ")
# What the play validates, in order (playbooks/app.yml with the default server and process manager).
VALIDATED_ROLES = ["wsgi_app", "base", "firewall", "app", "uwsgi", "systemd_service", "nginx", "app_proxy", "fleet_run"]

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
    def prelude(self) -> list[str]:
        """The app definition's tasks at the start of the play."""
        tasks = [task for task, _ in self.sections]
        n = 0
        while n < len(tasks) and prelude(tasks[n]):
            n += 1
        return tasks[:n]

    @property
    def main_sections(self) -> list[tuple[str, list[str]]]:
        return self.sections[len(self.prelude):]

    @property
    def tasks(self) -> list[str]:
        """The tasks after the app definition's."""
        return [task for task, _ in self.main_sections]

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
    assert run.prelude and [t for t in run.prelude if t not in SITE_CHECK][0] == APP_DEFINITION, run
    if role == "wsgi_app":
        # The app definition checks its own spec when it is loaded, first; nothing runs after it.
        assert run.tasks == [], run
        failures = run.failures()
        assert failures and failures[0][0].startswith("wsgi_app : Validating arguments against arg spec"), run
        assert variable in str(failures[0][2].get("msg", "")), run
        assert run.recap()["changed"] == 0 and run.recap()["failed"] == 1, run
        return

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


@pytest.mark.parametrize("extra", [
    pytest.param({"wsgi_app_protocol": "http", "wsgi_app_keepalive": 5}, id="uwsgi-keeps-connections"),
    pytest.param({"wsgi_app_server": "gunicorn", "wsgi_app_keepalive": -1}, id="negative"),
])
def test_a_keepalive_the_server_cannot_keep_is_refused_by_the_app_definition(play, extra):
    """uWSGI's http-socket closes every connection after its answer: an app definition that says
    it keeps them would have nginx reuse closed connections. Refused before any change, as is a
    negative number of seconds."""
    run = Run(play(**extra))

    assert run.proc.returncode != 0, run
    failures = run.failures()
    assert failures and failures[0][0] == "wsgi_app : Check the app definition", run
    assert f"wsgi_app_keepalive={extra['wsgi_app_keepalive']}" in str(failures[0][2].get("msg", "")), run
    assert not any(task.startswith(("base : ", "app : ", "uwsgi : ")) for task in run.tasks), run
    assert run.recap()["changed"] == 0, run


def test_good_input_gets_past_validation(play):
    """Positive control: without bad input the same run passes validation, then stops.

    The roles' controller-side tasks after it run too; the first module task (installing the base
    packages) is where NO_MODULES stops the host. The whole run fails by design; only the
    validation is under test.
    """
    run = Run(play())

    assert run.tasks[0] == VALIDATION_TASK, run
    validation_lines = run.main_sections[0][1]
    assert not [line for line in validation_lines if FAILURE_RE.match(line)], run
    ok_items = [m["item"] for line in validation_lines if (m := OK_ITEM_RE.match(line))]
    assert ok_items == VALIDATED_ROLES, run

    # The play went on past the controller-side checks to the host's (playbooks/tasks/validate-host.yml:
    # getent reads the accounts, a module) ...
    assert len(run.tasks) > 1, run
    assert "Check that every value stays where it belongs (paths, accounts, names, characters, ports)" in run.tasks, run
    assert run.tasks[-1] == "Check the app's accounts on the host (read only)", run

    # ... and stopped at the first module task, whose module did not run (the fence held).
    failures = run.failures()
    assert failures, run
    task, _, result = failures[0]
    assert task != VALIDATION_TASK and task == run.tasks[-1], run
    assert result.get("rc") == 1 and not result.get("module_stdout"), run
    assert run.recap()["changed"] == 0, run


# ------------------------------------------------------------------ bounds, names, files, deploy_serial
# What argument specs cannot express: playbooks/tasks/validate-input.yml, right after the specs.

INPUT_TASKS = [
    "Check every number against its bounds",
    "Check the names (settings keys, socket owner, lb headers, addresses, log sizes)",
    "Check uWSGI's reload mode against lazy-apps and the thunder lock",
    "Check deploy_serial (a positive number of hosts or a percentage)",
    "Check the files the roles read on the controller",
]
NUMBERS, NAMES, RELOAD_MODE, SERIAL, FILES = INPUT_TASKS

BAD_VALUES = [
    pytest.param({"app_keep_releases": 0}, NUMBERS, ["app_keep_releases", "got 0"], id="keep-releases-0"),
    pytest.param({"wsgi_app_base_port": 70000}, NUMBERS, ["wsgi_app_base_port", "70000"], id="port-70000"),
    pytest.param({"lb_https_port": 0}, NUMBERS, ["lb_https_port", "got 0"], id="lb-port-0"),
    pytest.param({"uwsgi_processes": -2, "uwsgi_harakiri": -1}, NUMBERS,
                 ["uwsgi_processes", "-2", "uwsgi_harakiri", "-1"], id="two-at-once"),
    pytest.param({"nginx_worker_processes": "lots"}, NUMBERS, ["nginx_worker_processes", "lots"], id="worker-processes"),
    pytest.param({"app_settings": {"bad key": 1, "OK": 2}}, NAMES, ["app_settings", "bad key"], id="settings-key"),
    pytest.param({"nginx_status_listen": "0.0.0.0:8099"}, NAMES, ["nginx_status_listen", "0.0.0.0:8099"],
                 id="status-not-loopback"),
    pytest.param({"base_journald_system_max_use": "lots", "nginx_logrotate_max_size": "1 GB"}, NAMES,
                 ["base_journald_system_max_use", "lots", "nginx_logrotate_max_size", "1 GB"], id="log-sizes"),
    pytest.param({"firewall_ssh_sources": ["10.0.0.0/8", "office"], "firewall_address": "lb.example"}, NAMES,
                 ["firewall_ssh_sources", "office", "firewall_address", "lb.example"], id="firewall-addresses"),
    pytest.param({"firewall_ssh_port": 0}, NUMBERS, ["firewall_ssh_port", "got 0"], id="firewall-ssh-port-0"),
    pytest.param({"uwsgi_reload_mode": "chain", "uwsgi_thunder_lock": True}, RELOAD_MODE,
                 ["uwsgi_thunder_lock", "chain"], id="chain-thunder-lock"),
    pytest.param({"deploy_serial": "abc"}, SERIAL, ["deploy_serial", "abc"], id="serial-abc"),
    pytest.param({"lb_tls_cert_src": "/nonexistent/wsgideploy.crt"}, FILES,
                 ["lb_tls_cert_src", "/nonexistent/wsgideploy.crt"], id="missing-cert"),
    pytest.param({"wsgi_app_source": "artifact", "wsgi_app_artifact": "/nonexistent/app-1.0-py3-none-any.whl"}, FILES,
                 ["wsgi_app_artifact"], id="missing-artifact"),
]


@pytest.mark.parametrize(("extra", "task", "words"), BAD_VALUES)
def test_out_of_bounds_input_fails_before_any_role(play, extra, task, words):
    run = Run(play(**extra))

    assert run.proc.returncode != 0, run
    assert run.tasks[0] == VALIDATION_TASK, run
    failures = run.failures()
    assert failures and failures[0][0] == task, run
    message = str(failures[0][2].get("msg", ""))
    for word in words:
        assert word in message, run
    # Nothing but validation ran: no role started.
    assert set(run.tasks) <= {VALIDATION_TASK, *INPUT_TASKS}, run
    assert run.recap()["changed"] == 0, run


def test_input_at_the_bounds_gets_past_validation(play, tmp_path):
    """Positive control of the bounds: the extreme good values pass every check."""
    cert = tmp_path / "lb.crt"
    cert.write_text("not checked for content\n")
    run = Run(play(app_keep_releases=1, wsgi_app_base_port=65535, lb_http_port=1, uwsgi_harakiri=0,
                   nginx_worker_processes="auto", deploy_serial="100%", app_settings={"_OK": 1, "Name2": 2},
                   lb_tls_cert_src=str(cert), wsgi_app_src=str(tmp_path), nginx_status_listen="[::1]:8099",
                   base_journald_system_max_use="2G", nginx_logrotate_max_size=1048576,
                   firewall_ssh_sources=["192.0.2.0/24", "2001:db8::/32", "::/0"], firewall_address="192.0.2.7"))

    assert run.tasks[: 1 + len(INPUT_TASKS)] == [VALIDATION_TASK, *INPUT_TASKS], run
    failures = run.failures()
    assert failures and failures[0][0] not in (VALIDATION_TASK, *INPUT_TASKS), run


@pytest.fixture
def lb_play(ansible, tmp_path, project_root):
    """`lb_play(**extra_vars)`: playbooks/lb.yml in check mode, `target` being the one lb."""
    inventory = tmp_path / "lb-inventory.yml"
    inventory.write_text(
        textwrap.dedent(
            f"""\
            all:
              children:
                lb:
                  hosts:
                    target:
                      ansible_connection: local
                      ansible_python_interpreter: {json.dumps(sys.executable)}
            """
        )
    )

    def run(**extra_vars):
        args = ["-i", inventory, project_root / "playbooks" / "lb.yml", "--check", "--limit", "target",
                "-e", json.dumps({"wsgideploy_lb_group": "lb"})]
        if extra_vars:
            args += ["-e", json.dumps(extra_vars)]
        return Run(ansible("ansible-playbook", *args))

    return run


def test_lb_play_validates_its_roles_and_bounds(lb_play):
    good = lb_play()
    ok_items = [m["item"] for line in good.main_sections[0][1] if (m := OK_ITEM_RE.match(line))]
    assert ok_items == ["wsgi_app", "nginx", "lb", "fleet_run"], good
    # The lb role's defaults (loaded with the play) pass the bounds; the first module task stops it.
    assert good.tasks[: 1 + len(INPUT_TASKS)] == [VALIDATION_TASK, *INPUT_TASKS], good
    assert good.failures()[0][0] not in (VALIDATION_TASK, *INPUT_TASKS), good

    bad = lb_play(lb_https_port=70000, lb_tls_key_src="/nonexistent/lb.key")
    failures = bad.failures()
    assert bad.proc.returncode != 0 and failures[0][0] == NUMBERS, bad
    assert "lb_https_port" in failures[0][2]["msg"] and "70000" in failures[0][2]["msg"], bad
    assert bad.recap()["changed"] == 0, bad


def test_derived_variables_of_the_app_definition_may_be_used_in_the_input(play):
    """An inventory may build on wsgi_app_shared, wsgi_app_root, ... anywhere, the checks
    included (the app definition is loaded before them)."""
    run = Run(play(app_settings_file="{{ wsgi_app_shared }}/instance/config.py",
                   wsgi_app_settings_file="{{ wsgi_app_shared }}/instance/config.py",
                   app_shared_dirs=["{{ 'log-' ~ wsgi_app_name }}"],
                   uwsgi_config_dir="{{ wsgi_app_root }}/uwsgi"))

    assert run.tasks[: 1 + len(INPUT_TASKS)] == [VALIDATION_TASK, *INPUT_TASKS], run
    failures = run.failures()
    assert failures and failures[0][0] not in (VALIDATION_TASK, *INPUT_TASKS), run
    assert "is undefined" not in run.output, run
