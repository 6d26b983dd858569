"""Generated bad input: every option of every role's main entry point, fed values of the wrong
kind, is refused by the input check alone, with a message that names the option.

The cases come from the roles' meta/argument_specs.yml (types, choices) and from the bounds table
of playbooks/tasks/validate-input.yml, one class at a time:

* type: a value Ansible's argument validator cannot convert to the spec's type ("abc" for an int,
  a mapping for a list, a string for a dict; any value converts to a str or a path, so those get
  none);
* choice: a value that is not one of the choices;
* range: a number just outside its bounds.

They run through tests/validate-only.yml: the input part of site.yml's first play
(playbooks/check.yml), the app definition (role wsgi_app, public) and then
playbooks/tasks/validate-roles.yml for every role that has a main entry point. Nothing else is in
that play, and the fence of conftest.py holds (no module can run: --check and
ansible_python_interpreter=/bin/false).

One ansible-playbook run holds every case: one throwaway host (local connection) per group of
cases, each bad value a host var, and a control host with no bad value that must pass every
check. Cases share a host only where the check that refuses them lists each bad option on its
own (the argument validator's errors, the bounds and names checks); a case is confirmed only by a
message (or a part of one) that names its option and no other option of its host. A case left
unconfirmed on a shared host runs again alone, in a second run, before its verdict. Options that
a run_once check reads (the controller's files: a failure there fails every host of the run)
have a run of their own, one host per case, where the run_once check's message must name the
option with the case's value.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = PROJECT_ROOT / "tests" / "validate-only.yml"
VALIDATE_ROLES = PROJECT_ROOT / "playbooks" / "tasks" / "validate-roles.yml"
VALIDATE_INPUT = PROJECT_ROOT / "playbooks" / "tasks" / "validate-input.yml"
APP_DEFINITION_TASKS = PROJECT_ROOT / "roles" / "wsgi_app" / "tasks" / "main.yml"
# The role whose spec and checks run when it is loaded (public), before the others are validated.
APP_DEFINITION_ROLE = "wsgi_app"

# Hosts of one run work side by side; the play's tasks are all controller-side and short.
FORKS = 10
CONTROL_HOST = "control"


# --------------------------------------------------------------------------------------- the specs


def main_options() -> dict[str, dict[str, dict]]:
    """{role: {option: spec}} for every role with a main entry point."""
    specs = {}
    for path in sorted(PROJECT_ROOT.glob("roles/*/meta/argument_specs.yml")):
        entry = (yaml.safe_load(path.read_text()).get("argument_specs") or {}).get("main")
        if entry is not None:
            specs[path.parent.parent.name] = entry.get("options") or {}
    return specs


SPECS = main_options()
OPTIONS: dict[str, tuple[str, dict]] = {
    option: (role, spec) for role, options in SPECS.items() for option, spec in options.items()
}


def number_bounds() -> list[dict]:
    """The bounds table of validate-input.yml (wsgideploy_number_bounds), as that file has it."""
    for task in yaml.safe_load(VALIDATE_INPUT.read_text()):
        bounds = (task.get("vars") or {}).get("wsgideploy_number_bounds")
        if bounds is not None:
            return bounds
    raise AssertionError(f"no wsgideploy_number_bounds in {VALIDATE_INPUT}")


BOUNDS = number_bounds()


def task_files_tasks(*paths: Path) -> list[dict]:
    tasks = []
    for path in paths:
        tasks += yaml.safe_load(path.read_text()) or []
    return tasks


def names_in(text: str) -> set[str]:
    """The options of any main entry point that `text` names (as whole words)."""
    return {option for option in OPTIONS if re.search(rf"(?<![A-Za-z0-9_]){option}(?![A-Za-z0-9_])", text)}


def run_once_options() -> set[str]:
    """Options read by a run_once task of the input check (the controller's files): such a task
    runs on one host for all, reads every host's values, and its failure fails every host."""
    found = set()
    for task in task_files_tasks(VALIDATE_ROLES, VALIDATE_INPUT):
        if task.get("run_once"):
            found |= names_in(yaml.safe_dump(task, width=1000))
    return found


def app_definition_check_options() -> set[str]:
    """Options the app definition's own asserts read: their messages name every option of the app
    definition, so a case they refuse is told apart only on a host of its own."""
    found = set()
    for task in task_files_tasks(APP_DEFINITION_TASKS):
        if "ansible.builtin.assert" in task:
            found |= names_in(yaml.safe_dump(task["ansible.builtin.assert"].get("that"), width=1000))
    return found


def derived_options() -> set[str]:
    """Options whose default (in the app definition's defaults, loaded with the play) is built from
    other options: a case that sets one overrides that template, which may hide what a bad value
    of the options it is built from does (a template that fails instead of a message)."""
    defaults = yaml.safe_load((PROJECT_ROOT / "roles" / APP_DEFINITION_ROLE / "defaults" / "main.yml").read_text())
    return {name for name, value in defaults.items() if name in OPTIONS and "{{" in json.dumps(value)}


def playbook_set_options() -> dict[str, str]:
    """Options the playbooks' vars files set ({option: file}): play vars beat inventory, so an
    inventory value of them never reaches a role."""
    found = {}
    for path in sorted((PROJECT_ROOT / "playbooks" / "vars").glob("*.yml")):
        for name in yaml.safe_load(path.read_text()) or {}:
            if name in OPTIONS:
                found[name] = str(path.relative_to(PROJECT_ROOT))
    return found


RUN_ONCE_OPTIONS = run_once_options()
APP_DEFINITION_CHECKED = app_definition_check_options()
DERIVED_OPTIONS = derived_options()
PLAYBOOK_SET = playbook_set_options()


# --------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    option: str
    kind: str  # type, choice, range
    label: str
    value: Any = field(compare=False)

    @property
    def role(self) -> str:
        return OPTIONS[self.option][0]

    @property
    def id(self) -> str:
        return f"{self.option}-{self.kind}-{self.label}"


# Values the argument validator cannot convert to the type (measured: it converts any value to a
# str or a path, any scalar to a list, "1"/"yes" to a bool, a JSON or k=v string to a dict).
WRONG_TYPES: dict[str, list[tuple[str, Any]]] = {
    "int": [("str", "abc"), ("float", 1.5), ("list", [1])],
    "bool": [("str", "maybe"), ("int", 2), ("dict", {"a": 1})],
    "list": [("dict", {"a": 1})],
    "dict": [("str", "abc"), ("list", ["a"]), ("int", 1)],
    "str": [],
    "path": [],
    "raw": [],
}
# A list's elements of the wrong type.
WRONG_ELEMENTS: dict[str, list[tuple[str, Any]]] = {
    "int": [("str-element", ["abc"])],
    "dict": [("str-element", ["abc"])],
}


def type_cases(option: str, spec: dict) -> list[Case]:
    kind = spec.get("type", "str")
    cases = [Case(option, "type", label, value) for label, value in WRONG_TYPES[kind]]
    if kind == "list":
        cases += [Case(option, "type", label, value) for label, value in WRONG_ELEMENTS.get(spec.get("elements"), [])]
        required = [name for name, sub in (spec.get("options") or {}).items() if sub.get("required")]
        if required:
            cases.append(Case(option, "type", "element-missing-" + "-".join(required), [{}]))
    return cases


def choice_cases(option: str, spec: dict) -> list[Case]:
    choices = spec.get("choices")
    if not choices:
        return []
    cases = [Case(option, "choice", "unknown", "no-such-choice")]
    # A near miss: a choice in capitals, or with a space around it.
    first = str(choices[0])
    near = first.upper() if first.upper() not in map(str, choices) else f" {first}"
    cases.append(Case(option, "choice", "near-miss", near))
    return cases


def range_cases() -> list[Case]:
    cases = []
    for bound in BOUNDS:
        option = bound["name"]
        if option not in OPTIONS:  # a bound of a playbook variable, not a role option
            continue
        as_type = str if OPTIONS[option][1].get("type", "str") == "str" else int
        cases.append(Case(option, "range", "below-min", as_type(bound["min"] - 1)))
        if "max" in bound:
            cases.append(Case(option, "range", "above-max", as_type(bound["max"] + 1)))
        if bound.get("auto"):
            cases.append(Case(option, "range", "not-a-number", "lots"))
    # A number without bounds takes any value: every one here is a count, a size or seconds.
    bounded = {bound["name"] for bound in BOUNDS}
    for option, (_role, spec) in OPTIONS.items():
        if spec.get("type") == "int" and option not in bounded:
            cases.append(Case(option, "range", "negative-unbounded", -1))
    return cases


def all_cases() -> list[Case]:
    cases = []
    for option, (_role, spec) in OPTIONS.items():
        cases += type_cases(option, spec) + choice_cases(option, spec)
    cases += range_cases()
    return [case for case in cases if case.option not in PLAYBOOK_SET]


CASES = all_cases()
# Cases Ansible's checks do not refuse yet: {case id: reason}, the reason starting
# "not refused yet:". Each is an expected failure until the check exists (strict: the mark must
# go when it does).
NOT_REFUSED_YET: dict[str, str] = {
    **{
        f"{option}-range-negative-unbounded": "not refused yet: no bound for it in wsgideploy_number_bounds "
        "(playbooks/tasks/validate-input.yml)"
        for option in [
            "gunicorn_workers", "gunicorn_threads", "gunicorn_timeout", "gunicorn_graceful_timeout", "gunicorn_keepalive",
            "gunicorn_max_requests", "gunicorn_max_requests_jitter", "gunicorn_backlog", "nginx_logrotate_keep",
            "nginx_logs_lines", "rollout_gate_timeout", "supervisord_service_log_backups", "supervisord_service_start_secs",
            "supervisord_service_start_retries", "supervisord_service_stop_wait_secs", "supervisord_service_logs_lines",
            "systemd_service_logs_lines", "upstart_service_respawn_limit", "upstart_service_respawn_interval",
            "upstart_service_kill_timeout", "upstart_service_logs_lines",
        ]
    },
    **{
        f"wsgi_app_environment-type-{label}": "not refused yet: the app definition's own spec check fails templating "
        "the derived wsgi_app_server_environment (combine: expected dicts) with a message that does not name "
        "wsgi_app_environment"
        for label, _value in WRONG_TYPES["dict"]
    },
}

# Options no case is generated for: {option: why}. `raw` options take any value; the options the
# playbooks set themselves are no input of a run.
NO_CASE = {option: "type raw: any value is valid" for option, (_r, spec) in OPTIONS.items() if spec.get("type") == "raw"}
NO_CASE |= {option: f"set by the playbooks ({path}), over any inventory value" for option, path in PLAYBOOK_SET.items()}
# Bounds of validate-input.yml that name no option of any role (nothing reads the variable).
STALE_BOUNDS = {"uwsgi_health_timeout"}


# --------------------------------------------------------------------------------------- the runs


def host_group(case: Case) -> str | None:
    """The cases of one group may share a host (None: a host of its own). They share one when the
    check that refuses them names each bad option apart (the argument validator, the bounds, the
    names), never with another case of the same option. The app definition is validated alone and
    first, so its cases share hosts only with each other."""
    app = case.role == APP_DEFINITION_ROLE
    if case.option in DERIVED_OPTIONS:
        return None  # it would override a template that the others' values reach
    if case.kind in ("type", "choice"):
        group = "spec-app" if app else "spec"
    elif app and case.option in APP_DEFINITION_CHECKED:
        return None  # the app definition's asserts name all of its options
    else:
        group = f"{case.kind}-app" if app else case.kind
    if case.id in NOT_REFUSED_YET:
        group += "-known-miss"  # a host that passes every check: a verdict for all its cases
    return group


def pack(cases: list[Case]) -> dict[str, list[Case]]:
    """{host: cases}, by host_group."""
    hosts: dict[str, list[Case]] = {}
    groups: dict[str, list[list[Case]]] = defaultdict(list)
    for case in cases:
        if case.option in RUN_ONCE_OPTIONS:
            raise AssertionError(f"{case.id}: a run_once check reads {case.option}; it has a run of its own")
        group = host_group(case)
        if group is None:
            hosts[f"alone-{len(hosts):04d}"] = [case]
            continue
        for batch in groups[group]:
            if all(other.option != case.option for other in batch):
                batch.append(case)
                break
        else:
            groups[group].append([case])
    for group, batches in groups.items():
        for n, batch in enumerate(batches):
            hosts[f"{group}-{n}"] = batch
    return hosts


def write_inventory(path: Path, hosts: dict[str, list[Case]], control: bool) -> None:
    inventory: dict[str, dict] = {}
    for host, cases in hosts.items():
        inventory[host] = {"ansible_connection": "local", **{case.option: case.value for case in cases}}
    if control:
        inventory[CONTROL_HOST] = {"ansible_connection": "local"}
    path.write_text(json.dumps({"all": {"hosts": inventory}}, indent=1))


@dataclass
class HostResult:
    tasks: list[str] = field(default_factory=list)  # every task that ran for the host
    failures: list[tuple[str, list[str]]] = field(default_factory=list)  # (task, messages)
    changed: int = 0


@dataclass
class Run:
    hosts: dict[str, list[Case]]
    proc: subprocess.CompletedProcess
    results: dict[str, HostResult]
    seconds: float
    run_once_failures: list[tuple[str, list[str]]]  # (task, messages) of run_once tasks, any host

    def describe(self, host: str) -> str:
        result = self.results.get(host, HostResult())
        lines = [f"host {host}: tasks {result.tasks}"]
        lines += [f"  failed in {task!r}: {messages}" for task, messages in result.failures]
        return "\n".join(lines)


def failure_messages(result: dict) -> list[str]:
    """The messages of one failed result: the validator's errors one by one, else the msg."""
    messages = []
    for item in result.get("results") or [result]:
        if not item.get("failed"):
            continue
        if item.get("argument_errors"):
            messages += [str(error) for error in item["argument_errors"]]
        else:
            messages.append(str(item.get("msg", "")))
    return messages


def run_play(ansible_runner, workdir: Path, name: str, hosts: dict[str, list[Case]], control: bool) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / f"{name}.json"
    write_inventory(inventory, hosts, control)
    argv = [
        str(ansible_runner.command("ansible-playbook")), "-i", str(inventory), str(PLAYBOOK), "--check",
        "-e", json.dumps({"wsgideploy_validate_roles": sorted(SPECS)}),
        "-e", json.dumps({"ansible_python_interpreter": "/bin/false"}),
    ]
    env = {**ansible_runner.env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_FORKS": str(FORKS)}
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - start
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"{name}: no JSON from ansible-playbook ({error})\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results: dict[str, HostResult] = defaultdict(HostResult)
    run_once: list[tuple[str, list[str]]] = []
    run_once_names = {task["name"] for task in task_files_tasks(VALIDATE_ROLES, VALIDATE_INPUT) if task.get("run_once")}
    for play in output["plays"]:
        for task in play["tasks"]:
            task_name = task["task"]["name"]
            for host, result in task["hosts"].items():
                results[host].tasks.append(task_name)
                results[host].changed += bool(result.get("changed"))
                if result.get("failed"):
                    messages = failure_messages(result)
                    results[host].failures.append((task_name, messages))
                    if task_name in run_once_names:
                        run_once.append((task_name, messages))
    for host, stats in output.get("stats", {}).items():
        results[host].changed = max(results[host].changed, stats.get("changed", 0))
    return Run(hosts, proc, dict(results), seconds, run_once)


def names(message: str, option: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(option)}(?![A-Za-z0-9_])", message) is not None


def pieces(message: str) -> list[str]:
    """A message and the parts of a list of errors in it (the checks join them with '; ')."""
    return [message, *re.split(r";\s+", message)]


def confirms(message: str, case: Case, others: set[str]) -> bool:
    """The message, or one of its parts, names the case's option and no other option of the host."""
    return any(names(part, case.option) and not any(names(part, o) for o in others) for part in pieces(message))


def verdict_on_host(run: Run, host: str, case: Case) -> bool:
    others = {c.option for c in run.hosts[host]} - {case.option}
    result = run.results.get(host, HostResult())
    return any(confirms(m, case, others) for _task, messages in result.failures for m in messages)


def verdict_run_once(run: Run, case: Case) -> bool:
    """A run_once check names the option with the case's value (it reads every host's)."""
    shown = json.dumps(case.value if isinstance(case.value, str) else str(case.value))
    return any(
        names(part, case.option) and shown in part
        for _task, messages in run.run_once_failures for m in messages for part in pieces(m)
    )


@dataclass
class Suite:
    verdicts: dict[str, tuple[bool, str]]  # case id: (refused naming the option, what happened)
    runs: dict[str, Run]


@pytest.fixture(scope="session")
def suite(tmp_path_factory, terminal_summary) -> Suite:
    from conftest import AnsibleRunner

    tmp = tmp_path_factory.mktemp("generated-bad-input")
    runner = AnsibleRunner(tmp / "ansible")
    start = time.monotonic()
    shared = [case for case in CASES if case.option not in RUN_ONCE_OPTIONS]
    own = [case for case in CASES if case.option in RUN_ONCE_OPTIONS]

    runs = {"batched": run_play(runner, tmp, "batched", pack(shared), control=True)}
    verdicts: dict[str, tuple[bool, str]] = {}
    again = []
    batched = runs["batched"]
    for host, cases in batched.hosts.items():
        for case in cases:
            if verdict_on_host(batched, host, case):
                verdicts[case.id] = (True, batched.describe(host))
            elif len(cases) > 1 and batched.results[host].failures:  # another case may have hidden it
                again.append(case)
            else:
                verdicts[case.id] = (False, batched.describe(host))

    alone_hosts = {f"alone-{n:04d}": [case] for n, case in enumerate(again)}
    alone_hosts |= {f"run-once-{n:04d}": [case] for n, case in enumerate(own)}
    if alone_hosts:
        # run_once checks fail every host: the cases they read, and the ones to run again, in a
        # run without the control host (the batched run has it).
        runs["alone"] = run_play(runner, tmp, "alone", alone_hosts, control=False)
        alone = runs["alone"]
        for host, (case,) in alone_hosts.items():
            refused = verdict_on_host(alone, host, case) or (host.startswith("run-once-") and verdict_run_once(alone, case))
            verdicts[case.id] = (refused, alone.describe(host))

    seconds = time.monotonic() - start
    counts = Counter(case.kind for case in CASES)
    terminal_summary.append(
        f"generated bad input: {len(OPTIONS)} options of {len(SPECS)} roles' main entry points, "
        f"{len(CASES)} cases ({', '.join(f'{kind} {n}' for kind, n in sorted(counts.items()))}), "
        f"{sum(refused for refused, _ in verdicts.values())} refused naming the option; "
        + ", ".join(f"{name} run {len(run.hosts)} hosts {run.seconds:.0f} s" for name, run in runs.items())
        + f"; {seconds:.0f} s in all"
    )
    return Suite(verdicts, runs)


# --------------------------------------------------------------------------------------- the tests


def test_every_option_of_every_main_entry_point_has_a_case():
    covered = {case.option for case in CASES}
    missing = sorted(set(OPTIONS) - covered - set(NO_CASE))
    assert not missing, f"options without a generated bad value (add a class or a case): {missing}"
    assert not covered & set(NO_CASE)


def test_the_bounds_table_names_role_options():
    """A bound for a name no role has is a typo, or a leftover: its option would go unchecked."""
    unknown = {bound["name"] for bound in BOUNDS if bound["name"] not in OPTIONS}
    assert unknown == STALE_BOUNDS, f"bounds that name no role option: {sorted(unknown)} (known: {sorted(STALE_BOUNDS)})"
    ranged = {case.option for case in CASES if case.kind == "range" and case.label != "negative-unbounded"}
    assert ranged == {bound["name"] for bound in BOUNDS} - STALE_BOUNDS - set(PLAYBOOK_SET)


def test_every_known_miss_is_a_case():
    ids = {case.id for case in CASES}
    assert set(NOT_REFUSED_YET) <= ids, sorted(set(NOT_REFUSED_YET) - ids)
    assert all(reason.startswith("not refused yet:") for reason in NOT_REFUSED_YET.values())


@pytest.mark.ansible
def test_the_control_host_passes_every_check(suite):
    """Without bad values the same play passes: the suite tells refusal from acceptance."""
    batched = suite.runs["batched"]
    control = batched.results[CONTROL_HOST]
    assert not control.failures, batched.describe(CONTROL_HOST)
    tasks = [task for task in task_files_tasks(VALIDATE_ROLES, VALIDATE_INPUT) if "ansible.builtin.import_tasks" not in task]
    # A run_once task runs (and reports) on one host for all: it ran, and failed nowhere.
    expected = {task["name"] for task in tasks if not task.get("run_once")}
    assert expected <= set(control.tasks), (sorted(expected - set(control.tasks)), batched.describe(CONTROL_HOST))
    ran = {name for result in batched.results.values() for name in result.tasks}
    assert {task["name"] for task in tasks if task.get("run_once")} <= ran, sorted(ran)
    assert not batched.run_once_failures, batched.run_once_failures


@pytest.mark.ansible
def test_only_the_input_check_ran_and_nothing_changed(suite):
    allowed = {task["name"] for task in task_files_tasks(VALIDATE_ROLES, VALIDATE_INPUT) if "name" in task}
    allowed |= {f"{APP_DEFINITION_ROLE} : {task['name']}" for task in task_files_tasks(APP_DEFINITION_TASKS)}
    allowed.add("The app definition, for the whole play")
    for name, run in suite.runs.items():
        for host, result in run.results.items():
            ran = {t for t in result.tasks if not t.startswith(f"{APP_DEFINITION_ROLE} : Validating arguments against arg spec")}
            assert ran <= allowed, (name, host, sorted(ran - allowed))
            assert result.changed == 0, (name, run.describe(host))


def case_params() -> list:
    params = []
    for case in CASES:
        marks = [pytest.mark.ansible]
        if case.id in NOT_REFUSED_YET:
            marks.append(pytest.mark.xfail(reason=NOT_REFUSED_YET[case.id], strict=True))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", case_params())
def test_bad_value_is_refused_naming_the_option(suite, case):
    refused, what = suite.verdicts[case.id]
    assert refused, f"{case.option}={case.value!r} ({case.kind}) was not refused naming {case.option}:\n{what}"
