"""Generated bad input: every option of every role's main entry point, fed values of the wrong
kind, is refused by the input check alone, with a message that names the option.

The cases come from the roles' meta/argument_specs.yml (types, choices, which options hold
strings), the bounds table of playbooks/tasks/validate-input.yml and the tables of
plugins/filter/contain.py (which options are paths, and of which kind; accounts; names), one class
at a time:

* type: a value Ansible's argument validator cannot convert to the spec's type ("abc" for an int,
  a mapping for a list, a string for a dict; it converts any value to a str or a path, so those
  get none);
* choice: a value that is not one of the choices, and a near miss (in capitals);
* range: a number just outside its bounds; -1 for a number the table gives no bounds;
* path: `../../etc`, `/etc` and `a/../../b` where a path inside the release or shared/ is meant;
  a relative path or one with `..` where a host path is meant, a system directory for the app
  root, a path outside the directory it must lie in;
* char: a newline, a carriage return, a NUL in every string an option holds;
* separator: `;`, a space and `{` in names (accounts, environment and header names, server names,
  site, group and target names, URL paths, host paths);
* account: root and accounts of the system for the app's users, groups and hooks;
* port: the instances' TCP ports on sshd's, nginx's and nginx's counters' ports.

They run through tests/validate-only.yml: the input part of site.yml's first play
(playbooks/check.yml), the app definition (role wsgi_app, public) and then
playbooks/tasks/validate-roles.yml for every role that has a main entry point (not the host's
read-only checks of playbooks/tasks/validate-host.yml, which need the host). Nothing else is in
that play, and the fence of conftest.py holds (no module can run: --check and
ansible_python_interpreter=/bin/false).

A few ansible-playbook runs hold every case: one throwaway host (local connection) per group of
cases, each bad value a host var, and a control host with no bad value that must pass every
check. Cases share a host only where the check expected to refuse them names each bad option on
its own (the argument validator's errors, the bounds, the names, the containment); a case is
confirmed only by a message (or a part of one) that names its option and no other option of its
host. A case that another case's failure hid runs again in the next round; a case on a host that
passed every check was not refused. Options that a run_once check reads (the controller's files:
its failure fails every host of the run) have runs of their own, one host per case, where that
check's message must name the option with the case's value.

Cases the checks do not refuse yet are strict xfails (NOT_REFUSED_YET), with the reason.
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
from scriptload import load_module

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = PROJECT_ROOT / "tests" / "validate-only.yml"
VALIDATE_ROLES = PROJECT_ROOT / "playbooks" / "tasks" / "validate-roles.yml"
VALIDATE_INPUT = PROJECT_ROOT / "playbooks" / "tasks" / "validate-input.yml"
APP_DEFINITION_TASKS = PROJECT_ROOT / "roles" / "wsgi_app" / "tasks" / "main.yml"
# The tables of what the input check holds each value to (paths and their kinds, accounts, names).
contain = load_module("wsgideploy_filter_contain", PROJECT_ROOT / "plugins" / "filter" / "contain.py")
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


def app_definition_asserts() -> list[set[str]]:
    """The options each of the app definition's own asserts reads, in their order: their messages
    name every option of the app definition, so a case they refuse is told apart only on a host
    without another case of theirs."""
    defaults = yaml.safe_load((PROJECT_ROOT / "roles" / APP_DEFINITION_ROLE / "defaults" / "main.yml").read_text())
    found = []
    for task in task_files_tasks(APP_DEFINITION_TASKS):
        if "ansible.builtin.assert" not in task:
            continue
        names = set()
        for condition in task["ansible.builtin.assert"].get("that") or []:
            # `wsgi_app_source != 'git' or ...`: the rest is checked only when the guard is off its default.
            guard = re.match(r"^\s*(\w+) != '([^']*)' or (.*)$", condition)
            if guard and defaults.get(guard[1]) != guard[2]:
                names |= {guard[1]}
            else:
                names |= names_in(condition)
        found.append(names)
    return found


def derived_sources() -> dict[str, set[str]]:
    """{option: the options its default is built from, through other defaults too}, for the
    options whose default (in the app definition's defaults, loaded with the play) is a template.
    A case that sets such an option overrides the template, which may hide what a bad value of
    one of its sources does (a template that fails instead of a message): the two never share a
    host."""
    defaults = yaml.safe_load((PROJECT_ROOT / "roles" / APP_DEFINITION_ROLE / "defaults" / "main.yml").read_text())
    direct = {name: names_in(json.dumps(value)) - {name} for name, value in defaults.items()
              if name in OPTIONS and "{{" in json.dumps(value)}
    sources = {}
    for name in direct:
        seen, todo = set(), list(direct[name])
        while todo:
            source = todo.pop()
            if source not in seen:
                seen.add(source)
                todo += direct.get(source, [])
        sources[name] = seen
    return sources


def assert_message_sets() -> list[set[str]]:
    """For each assert of the input check whose message names options itself (not a list of the
    bad ones): those options. Two cases of one such set never share a host (the message names
    both, whichever failed)."""
    sets = []
    for task in task_files_tasks(APP_DEFINITION_TASKS, VALIDATE_INPUT, VALIDATE_ROLES):
        check = task.get("ansible.builtin.assert")
        if check and len(names_in(str(check.get("fail_msg", "")))) > 1:
            sets.append(names_in(str(check["fail_msg"])))
    return sets


def validate_input_mentions() -> list[tuple[str, set[str]]]:
    """(task, the options its text names) for the checks of validate-input.yml, in their order."""
    return [(task["name"], names_in(yaml.safe_dump(task, width=1000)))
            for task in task_files_tasks(VALIDATE_INPUT) if not task.get("run_once")]


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
APP_DEFINITION_ASSERTS = app_definition_asserts()
APP_DEFINITION_CHECKED = set().union(*APP_DEFINITION_ASSERTS)
DERIVED_SOURCES = derived_sources()
ASSERT_MESSAGE_SETS = assert_message_sets()
VALIDATE_INPUT_MENTIONS = validate_input_mentions()
PLAYBOOK_SET = playbook_set_options()


# --------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    option: str
    kind: str  # type, choice, range, path, char, separator, account, port
    label: str
    value: Any = field(compare=False)
    # Other variables the case needs to mean anything ((name, value), ...): such a case has a host
    # of its own.
    extra: tuple = field(default=(), compare=False)

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


def only_options(names) -> list[str]:
    return [name for name in names if name in OPTIONS]


# Path escapes, by the kind of path contain.py says each option is.
RELATIVE_ESCAPES = [("parent", "../../etc"), ("absolute", "/etc"), ("inner-parent", "a/../../b")]
HOST_ESCAPES = [("relative", "srv/x"), ("parent", "/srv/x/../../etc")]


def path_cases() -> list[Case]:
    cases = []
    for option in only_options(contain.RELEASE_PATHS):
        cases += [Case(option, "path", label, value) for label, value in RELATIVE_ESCAPES]
    for option in only_options(contain.SHARED_PATH_LISTS):
        cases += [Case(option, "path", label, [value]) for label, value in RELATIVE_ESCAPES]
    for option in only_options(contain.LINK_LISTS):
        cases += [Case(option, "path", f"path-{label}", [{"path": value}]) for label, value in RELATIVE_ESCAPES]
        cases += [Case(option, "path", f"shared-{label}", [{"path": "data", "shared": value}])
                  for label, value in RELATIVE_ESCAPES]
    for option in only_options(contain.HOST_PATHS):
        cases += [Case(option, "path", label, value) for label, value in HOST_ESCAPES]
        if option in contain.APP_ROOTS:
            cases.append(Case(option, "path", "system", "/etc"))
        if option in contain.INSIDE or option in contain.SETTINGS_FILES:
            cases.append(Case(option, "path", "outside", "/opt/elsewhere/x"))
    for option in only_options(contain.HOST_PATH_LISTS):
        cases += [Case(option, "path", label, [value]) for label, value in HOST_ESCAPES]
    return cases


def shaped(option: str, text: str, as_key: bool = False) -> Any:
    """`text` where the option's type holds a string: itself, a list's element, a mapping's value
    (or key), a string field of a list of mappings. None: the option holds no string."""
    spec = OPTIONS[option][1]
    kind = spec.get("type", "str")
    if kind in ("str", "path"):
        return text
    if kind == "dict":
        return {text: "x"} if as_key else {"NAME": text}
    if kind == "list":
        elements = spec.get("elements", "str")
        if elements in ("str", "path"):
            return [text]
        if elements == "dict":
            fields = spec.get("options") or {"name": {"type": "str", "required": True}}
            strings = [name for name, sub in fields.items() if sub.get("type", "str") == "str"]
            item = {name: "x" for name, sub in fields.items() if sub.get("required")}
            item[next((n for n in strings if fields[n].get("required")), strings[0])] = text
            return [item]
    return None


# Control characters: each would end the line of the file the value is written to.
CONTROL_CHARACTERS = [("newline", "a\nb"), ("carriage-return", "a\rb"), ("nul", "a\x00b")]


def char_cases() -> list[Case]:
    cases = []
    for option in OPTIONS:
        if OPTIONS[option][1].get("choices"):
            continue  # one more value outside the choices
        # A free-text mapping's values are escaped for their file (python_literal): its keys are not.
        as_key = option in contain.FREE_TEXT
        for label, text in CONTROL_CHARACTERS:
            value = shaped(option, text, as_key=as_key)
            if value is not None:
                cases.append(Case(option, "char", label, value))
    return cases


# Separators in names: each ends a directive, splits a value in two or opens a block.
SEPARATORS = [("semicolon", "a;b"), ("space", "a b"), ("brace", "a{b")]
NAME_SUFFIXES = ("_name", "_names", "_user", "_group", "_envvar", "_target", "_server", "_header", "_headers",
                 "_host", "_hosts", "_lbs")


# Derived by the app definition, "not to be set": their strings are walked for control characters,
# their names are the rules' sources.
DERIVED = ("wsgi_app_server_environment", "wsgi_app_instance_list")


def separator_cases() -> list[Case]:
    cases = []
    paths = {*contain.RELEASE_PATHS, *contain.SHARED_PATH_LISTS, *contain.HOST_PATHS, *contain.HOST_PATH_LISTS}
    url_paths = {*contain.URL_PREFIXES, *contain.URL_PATHS}
    names = {*contain.USER_VARS, *contain.GROUP_VARS, *contain.ENVIRONMENT_VARS, *contain.HEADER_VARS,
             *contain.HEADER_LISTS, *contain.SERVER_NAME_LISTS, "lb_security_headers"}
    names |= {option for option in OPTIONS if option.endswith(NAME_SUFFIXES)}
    for option in OPTIONS:
        if option in contain.CONTROLLER_PATHS or option in DERIVED or OPTIONS[option][1].get("choices"):
            continue
        for label, text in SEPARATORS:
            if option in url_paths:
                value = shaped(option, "/" + text)
            elif option in paths and option not in contain.RELEASE_PATHS and option not in contain.SHARED_PATH_LISTS:
                value = shaped(option, "/srv/" + text)
            elif option in paths or option in names:
                value = shaped(option, text, as_key=OPTIONS[option][1].get("type") == "dict")
            else:
                continue
            if value is not None:
                cases.append(Case(option, "separator", label, value))
    for option in only_options(contain.LINK_LISTS):
        cases += [Case(option, "separator", f"path-{label}", [{"path": text}]) for label, text in SEPARATORS]
    return cases


def account_cases() -> list[Case]:
    """Accounts that are not the app's own: root, and accounts of the system."""
    cases = []
    for option in only_options(contain.USER_VARS):
        cases += [Case(option, "account", name, name) for name in ("root", "www-data", "nobody")]
    for option in only_options(contain.GROUP_VARS):
        cases += [Case(option, "account", name, name) for name in ("root", "www-data", "nogroup")]
    for option in only_options(contain.HOOK_LISTS):
        cases += [Case(option, "account", f"hook-{name}", [{"name": "x", "command": "true", "user": name}])
                  for name in ("root", "www-data")]
    return cases


def port_cases() -> list[Case]:
    """The instances' TCP ports on ports nginx or sshd take (on their own: they need listen tcp)."""
    listen = (("wsgi_app_listen", "tcp"),)
    return [Case("wsgi_app_base_port", "port", f"{port}-{what}", port, listen)
            for port, what in ((22, "sshd"), (80, "nginx"), (8099, "nginx-status"))]


def all_cases() -> list[Case]:
    cases = []
    for option, (_role, spec) in OPTIONS.items():
        cases += type_cases(option, spec) + choice_cases(option, spec)
    cases += range_cases() + path_cases() + char_cases() + separator_cases() + account_cases() + port_cases()
    return [case for case in cases if case.option not in PLAYBOOK_SET]


CASES = all_cases()
# Cases Ansible's checks do not refuse yet: {case id: reason}, the reason starting
# "not refused yet:". Each is an expected failure until the check exists (strict: the mark must
# go when it does).
NOT_REFUSED_YET: dict[str, str] = {}

# Options no case is generated for: {option: why}. `raw` options take any value; the options the
# playbooks set themselves are no input of a run.
NO_CASE = {option: "type raw: any value is valid" for option, (_r, spec) in OPTIONS.items() if spec.get("type") == "raw"}
NO_CASE |= {option: f"set by the playbooks ({path}), over any inventory value" for option, path in PLAYBOOK_SET.items()}
# Bounds of validate-input.yml that name no option of any role (nothing reads the variable).
STALE_BOUNDS: set[str] = set()


# --------------------------------------------------------------------------------------- the runs


def host_group(case: Case) -> str | None:
    """The cases of one group may share a host (None: a host of its own): the cases that the same
    check is expected to refuse, a check that names each bad option apart (the argument validator,
    the bounds, the names, the containment). A case whose check comes later would be hidden behind
    an earlier failure (it then runs again alone). The app definition is validated alone and
    first, when it is loaded."""
    app = case.role == APP_DEFINITION_ROLE
    if case.extra:
        return None
    if case.option in DERIVED_SOURCES["wsgi_app_instance_list"]:
        group = "app-instances"  # the instances' filter fails first, in the app definition's spec check
    elif case.kind in ("type", "choice"):
        group = "spec-app" if app else "spec"
    elif app and case.option in APP_DEFINITION_CHECKED and case.kind != "account":  # accounts: contain.py
        group = f"app-definition-{next(n for n, names in enumerate(APP_DEFINITION_ASSERTS) if case.option in names)}"
    else:
        mentions = [name for name, options in VALIDATE_INPUT_MENTIONS if case.option in options]
        paths = {*contain.RELEASE_PATHS, *contain.SHARED_PATH_LISTS, *contain.LINK_LISTS, *contain.HOST_PATHS,
                 *contain.HOST_PATH_LISTS}
        if case.kind == "range" or mentions:
            group = f"input-{VALIDATE_INPUT_MENTIONS.index(next(m for m in VALIDATE_INPUT_MENTIONS if m[0] == mentions[0]))}" \
                if mentions else "range"
        elif case.kind == "char":
            group = "contain-char"  # reported alone, before any other rule
        elif case.option in paths:
            group = "contain-path"  # reported before the accounts and names
        else:
            group = "contain-rest"
    if app and not group.endswith("-app") and not group.startswith("app-"):
        group += "-app"  # its templates fail first, in the app definition's own spec check
    if case.id in NOT_REFUSED_YET:
        group += "-known-miss"  # a host that passes every check: a verdict for all its cases
    return group


# Options that another's message names too: contain.py holds a path inside another ("app_current
# must lie inside app_root"), and the app definition's instances (a filter that checks what they
# are built from) fail for all of their sources at once.
RELATED_SETS = [
    *({name, root} for name, root in {**contain.INSIDE, **contain.SETTINGS_FILES}.items()),
    DERIVED_SOURCES["wsgi_app_instance_list"],
]


def fits(case: Case, batch: list[Case]) -> bool:
    for other in batch:
        if other.option == case.option:
            return False
        # A value of the wrong type may fail a template built from it; a string goes into one whole.
        if ({case.kind, other.kind} & {"type", "choice"}) and (
                case.option in DERIVED_SOURCES.get(other.option, ()) or other.option in DERIVED_SOURCES.get(case.option, ())):
            return False
        if any(case.option in names and other.option in names for names in [*ASSERT_MESSAGE_SETS, *RELATED_SETS]):
            return False
    return True


def pack(cases: list[Case]) -> dict[str, list[Case]]:
    """{host: cases}, by host_group and fits."""
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
            if fits(case, batch):
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
        inventory[host] = {"ansible_connection": "local"}
        for case in cases:
            inventory[host].update({**dict(case.extra), case.option: case.value})
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
        lines += [f"  (a run_once task failed every host: {task!r}: {messages})" for task, messages in self.run_once_failures]
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


@dataclass
class Started:
    name: str
    hosts: dict[str, list[Case]]
    proc: subprocess.Popen
    out: Path
    err: Path
    start: float


def start_play(ansible_runner, workdir: Path, name: str, hosts: dict[str, list[Case]], control: bool) -> Started:
    """ansible-playbook on tests/validate-only.yml, one inventory host per entry of `hosts`."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / f"{name}.json"
    write_inventory(inventory, hosts, control)
    argv = [
        str(ansible_runner.command("ansible-playbook")), "-i", str(inventory), str(PLAYBOOK), "--check",
        "-e", json.dumps({"wsgideploy_validate_roles": sorted(SPECS)}),
        "-e", json.dumps({"ansible_python_interpreter": "/bin/false"}),
    ]
    env = {**ansible_runner.env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_FORKS": str(FORKS)}
    out, err = workdir / f"{name}.out.json", workdir / f"{name}.err"
    with out.open("w") as stdout, err.open("w") as stderr:  # files: a pipe would fill while another run works
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=stdout, stderr=stderr, text=True)
    return Started(name, hosts, proc, out, err, time.time())


def finish_play(started: Started) -> Run:
    try:
        started.proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        started.proc.kill()
        raise
    # Until its last output (another run may have been waited for first).
    seconds = max(started.out.stat().st_mtime, started.err.stat().st_mtime) - started.start
    proc = subprocess.CompletedProcess(started.proc.args, started.proc.returncode, started.out.read_text(),
                                       started.err.read_text())
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"{started.name}: no JSON from ansible-playbook ({error})\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from error
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
    return Run(started.hosts, proc, dict(results), seconds, run_once)


def merge(runs: list[Run]) -> Run:
    """The runs of one round, side by side, as one."""
    if len(runs) == 1:
        return runs[0]
    return Run(
        hosts={host: cases for run in runs for host, cases in run.hosts.items()},
        proc=runs[0].proc,
        results={host: result for run in runs for host, result in run.results.items()},
        seconds=max(run.seconds for run in runs),
        run_once_failures=[failure for run in runs for failure in run.run_once_failures],
    )


def run_play(ansible_runner, workdir: Path, name: str, hosts: dict[str, list[Case]], control: bool) -> Run:
    return finish_play(start_play(ansible_runner, workdir, name, hosts, control))


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
    runs: dict[str, Run]  # the first one has the control host


# ansible-playbook runs of one round of shared hosts, side by side.
PARALLEL = 2
# Rounds of shared hosts before the cases still hidden behind another's failure run alone.
SHARED_ROUNDS = 3
# Rounds of the cases a run_once check reads (its failure ends the play for every host).
RUN_ONCE_ROUNDS = 3


@pytest.fixture(scope="session")
def suite(tmp_path_factory, terminal_summary, ansible_runner_class) -> Suite:
    return run_suite(tmp_path_factory.mktemp("generated-bad-input"), terminal_summary, ansible_runner_class)


def run_suite(tmp: Path, summary: list[str], runner_class) -> Suite:
    """Every case's verdict, in rounds of two runs side by side.

    Shared hosts: round 1 packs the cases (pack). A case confirmed there is refused; one on a host
    that passed every check is not; one on a host that failed without naming it (another case
    failed first) goes on to the next round, packed again with the others left, and after
    SHARED_ROUNDS rounds alone. Round 1 has the control host.

    The cases a run_once check reads, one host each, in a run of their own: that check reads every
    host's values, names each bad one with its value, and its failure ends the play for every host.
    A case it did not name, on a host that did not fail by itself, was cut short: it goes on to the
    next round, without the cases that check named."""
    runner = runner_class(tmp / "ansible")
    start = time.monotonic()
    shared = [case for case in CASES if case.option not in RUN_ONCE_OPTIONS]
    own = [case for case in CASES if case.option in RUN_ONCE_OPTIONS]
    runs: dict[str, Run] = {}
    verdicts: dict[str, tuple[bool, str]] = {}
    n = 0
    while shared or own:
        n += 1
        started = []
        if shared:
            hosts = pack(shared) if n <= SHARED_ROUNDS else {f"alone-{i:04d}": [case] for i, case in enumerate(shared)}
            # Side by side: one ansible-playbook's strategy works on one core.
            chunks = [dict(list(hosts.items())[i::PARALLEL]) for i in range(PARALLEL)]
            started.append(("shared", [start_play(runner, tmp, f"round-{n}-{i}", chunk, control=n == 1 and i == 0)
                                       for i, chunk in enumerate(chunks) if chunk]))
        if own:
            hosts = {f"run-once-{i:04d}": [case] for i, case in enumerate(own)}
            started.append(("run-once", [start_play(runner, tmp, f"run-once-{n}", hosts, control=False)]))
        shared, own = [], []
        for lane, plays in started:
            run = runs[f"{lane} round {n}"] = merge([finish_play(play) for play in plays])
            assert lane == "run-once" or not run.run_once_failures, (
                f"a run_once check failed in {lane} round {n}, which fails every host: {run.run_once_failures}")
            for host, cases in run.hosts.items():
                result = run.results.get(host, HostResult())
                for case in cases:
                    if verdict_on_host(run, host, case) or lane == "run-once" and verdict_run_once(run, case):
                        verdicts[case.id] = (True, run.describe(host))
                    elif lane == "shared" and len(cases) > 1 and result.failures:
                        shared.append(case)  # another case may have hidden it
                    elif lane == "run-once" and run.run_once_failures and not result.failures and n < RUN_ONCE_ROUNDS:
                        own.append(case)  # the run_once check failed every host before the rest ran
                    else:
                        verdicts[case.id] = (False, run.describe(host))

    seconds = time.monotonic() - start
    counts = Counter(case.kind for case in CASES)
    summary.append(
        f"generated bad input: {len(OPTIONS)} options of {len(SPECS)} roles' main entry points, "
        f"{len(CASES)} cases ({', '.join(f'{kind} {n}' for kind, n in sorted(counts.items()))}), "
        f"{sum(refused for refused, _ in verdicts.values())} refused naming the option, "
        f"{sum(case.id in NOT_REFUSED_YET for case in CASES)} known not to be; "
        + ", ".join(f"{name}: {len(run.hosts)} hosts {run.seconds:.0f} s" for name, run in runs.items())
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
    batched = next(iter(suite.runs.values()))
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
