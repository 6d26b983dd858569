"""upstart_service: the job file runs what the systemd unit runs, the way systemd runs it.

The job and the unit are rendered from the roles' templates with jinja2, for instances built by the
same builder the app server roles use; the job is read back stanza by stanza with the quoting rules
of upstart's parser (libnih: quotes join, a backslash escapes a backslash or whitespace).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import jinja2
import pytest
import yaml
from scriptload import collection_filters, load_module

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles" / "upstart_service"
up = load_module("wsgideploy_upstart_filters", ROLE.parent.parent / "plugins" / "filter" / "upstart.py")
from test_gunicorn import INSTANCES, gunicorn_units, uwsgi_units  # noqa: E402 (the builders the app server roles use)

SETTINGS = {"BLOG_SETTINGS": "/srv/blog/shared/settings.py"}
TWO_WORD_STANZAS = {("start", "on"), ("stop", "on"), ("respawn", "limit"), ("kill", "signal"), ("kill", "timeout"),
                    ("reload", "signal"), ("normal", "exit")}
PROCESSES = ("pre-start", "post-start", "pre-stop", "post-stop")


# --------------------------------------------------------------------------- reading a job file

def upstart_args(text: str) -> list[str]:
    """The arguments of one stanza line, dequoted as upstart's parser does."""
    args: list[str] = []
    current: list[str] = []
    in_token = False
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt == "":
                raise ValueError(f"trailing backslash: {text!r}")
            # An escaped backslash or blank is the character itself; before anything else the
            # backslash stays (and the next character, a quote too, is taken literally).
            current.append(nxt if nxt in "\\ \t" else "\\" + nxt)
            in_token = True
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch in "\"'":
            quote = ch
            in_token = True
        elif ch == "#":
            break
        elif ch in " \t":
            if in_token:
                args.append("".join(current))
                current, in_token = [], False
        else:
            current.append(ch)
            in_token = True
        i += 1
    if quote:
        raise ValueError(f"unterminated quote: {text!r}")
    if in_token:
        args.append("".join(current))
    return args


def parse_job(text: str) -> dict[str, list]:
    """stanza -> list of occurrences: the arguments (a list), the command line of exec (a
    string), or the body of a script block (a string)."""
    stanzas: dict[str, list] = {}
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        line = lines[n].strip()
        n += 1
        if not line or line.startswith("#"):
            continue
        words = line.split(None, 2)
        keyword = words[0]
        if keyword in PROCESSES and len(words) > 1:
            keyword = f"{words[0]} {words[1]}"
            words = [keyword] + words[2:]
        if keyword.endswith("script"):
            body = []
            while lines[n].strip() != "end script":
                body.append(lines[n])
                n += 1
            n += 1
            stanzas.setdefault(keyword, []).append("\n".join(body))
            continue
        if keyword.endswith("exec"):
            # The command line is kept as written (upstart hands it to sh if it needs one).
            stanzas.setdefault(keyword, []).append(line.split(None, len(keyword.split()))[-1])
            continue
        args = upstart_args(line)
        if len(args) > 1 and (args[0], args[1]) in TWO_WORD_STANZAS:
            keyword, args = f"{args[0]} {args[1]}", args[2:]
        else:
            keyword, args = args[0], args[1:]
        stanzas.setdefault(keyword, []).append(args)
    return stanzas


def one(stanzas: dict[str, list], keyword: str):
    assert len(stanzas.get(keyword, [])) == 1, f"{keyword}: {stanzas.get(keyword)}"
    return stanzas[keyword][0]


def parse_unit(text: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            directives.setdefault(key, []).append(value)
    return directives


def systemd_environment(values: list[str]) -> dict[str, str]:
    """Environment= values as systemd reads them: one double-quoted word each, in which a backslash
    escapes the next character and %% is a literal %."""
    env = {}
    for value in values:
        assert value.startswith('"') and value.endswith('"'), value
        word = re.sub(r"\\(.)|%(.)", lambda m: m.group(1) if m.group(1) is not None else m.group(2), value[1:-1])
        name, _, setting = word.partition("=")
        env[name] = setting
    return env


# --------------------------------------------------------------------------- rendering

def environment() -> jinja2.Environment:
    # As the template module renders (trim_blocks).
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    env.filters.update(collection_filters())
    env.filters["regex_replace"] = lambda s, a, b: re.sub(a, b, s)
    env.filters["quote"] = lambda s: shlex.quote(str(s))
    env.filters["ternary"] = lambda value, yes, no: yes if value else no
    return env


UPSTART_VARS = {"ansible_managed": "managed", "upstart_service_group": "blog", "upstart_service_respawn_limit": 5,
                "upstart_service_respawn_interval": 60, "upstart_service_kill_timeout": 35}


def render_job(item: dict) -> str:
    text = (ROLE / "templates" / "instance.conf.j2").read_text()
    return environment().from_string(text).render(item=item, **UPSTART_VARS)


def render_runtime(instances: list[dict]) -> str:
    text = (ROLE / "templates" / "runtime.conf.j2").read_text()
    return environment().from_string(text).render(upstart_service_instances=instances, **UPSTART_VARS)


def render_unit(item: dict) -> str:
    text = (ROOT / "roles" / "systemd_service" / "templates" / "instance.service.j2").read_text()
    return environment().from_string(text).render(
        item=item, ansible_managed="managed", systemd_service_target="blog", systemd_service_start_limit_interval_sec=60,
        systemd_service_start_limit_burst=5, systemd_service_timeout_start_sec=60, systemd_service_timeout_stop_sec=35,
        systemd_service_restart="on-failure", systemd_service_restart_sec=2, systemd_service_umask="0027",
        systemd_service_hardening=True, systemd_service_read_write_paths=[], systemd_service_memory_deny_write_execute=True,
        systemd_service_extra_directives={})


ALL_UNITS = [
    *[pytest.param(u, id=f"uwsgi-{u['name']}") for u in uwsgi_units(INSTANCES, SETTINGS)],
    *[pytest.param(u, id=f"uwsgi-chain-{u['name']}") for u in uwsgi_units(INSTANCES, SETTINGS, chain=True)],
    *[pytest.param(u, id=f"gunicorn-{u['name']}") for u in gunicorn_units(INSTANCES, SETTINGS)],
]


# --------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("item", ALL_UNITS)
def test_job_runs_what_the_systemd_unit_runs(item):
    job = parse_job(render_job(item))
    unit = parse_unit(render_unit(item))

    assert one(job, "exec") == item["command"] == unit["ExecStart"][0]
    assert one(job, "setuid") == unit["User"] and one(job, "setgid") == unit["Group"]
    assert one(job, "chdir") == unit["WorkingDirectory"]
    assert dict(arg.split("=", 1) for [arg] in job["env"]) == systemd_environment(unit["Environment"])
    assert one(job, "kill signal") == [item["graceful_stop_signal"].removeprefix("SIG")]
    assert one(job, "kill timeout") == ["35"]
    assert one(job, "reload signal") == [item["reload_signal"].removeprefix("SIG")]
    assert one(job, "respawn") == [] and one(job, "respawn limit") == ["5", "60"]
    assert one(job, "start on") == ["runlevel", "[2345]"] and one(job, "stop on") == ["runlevel", "[!2345]"]
    assert one(job, "umask") == ["027"] and one(job, "description") == [item["description"]]
    # Every process of the job runs as the user: no root pre-start that could make /run/<dir>.
    assert not any(key.startswith("pre-start") for key in job)
    assert "# wsgideploy-instance-of=blog" in render_job(item).splitlines()


def test_kill_signal_falls_back_to_the_stop_signal_then_term():
    item = {**uwsgi_units(INSTANCES, {})[0]}
    del item["graceful_stop_signal"]
    assert one(parse_job(render_job(item)), "kill signal") == ["INT"]
    del item["stop_signal"], item["reload_signal"]
    job = parse_job(render_job(item))
    assert one(job, "kill signal") == ["TERM"] and "reload signal" not in job


VALUES = ["two words", 'say "hi"', "it's", "a\\b", "$HOME and `x` # not a comment", "50% off", "x\\", ' "\'mixed\' " ', ""]


@pytest.mark.parametrize("value", VALUES)
def test_environment_values_come_back_as_they_were(value):
    item = {**gunicorn_units(INSTANCES, {"V": value})[0]}
    text = render_job(item)
    env = dict(arg.split("=", 1) for [arg] in parse_job(text)["env"])
    assert env == {"V": value, "APP_INSTANCE": "blog-0"}
    assert [line for line in text.splitlines() if line.startswith("env ")] == [
        'env APP_INSTANCE="blog-0"', f"env V={up.upstart_quote(value)}"]  # sorted, one per variable


@pytest.mark.parametrize("value", VALUES)
def test_environment_matches_systemd_with_spaces_and_quotes(value):
    item = uwsgi_units(INSTANCES, {"V": value, "W": "x y"})[1]
    job_env = dict(arg.split("=", 1) for [arg] in parse_job(render_job(item))["env"])
    assert job_env == systemd_environment(parse_unit(render_unit(item))["Environment"])


def test_quoting_filters():
    assert up.upstart_quote('say "hi"') == '"say "\'"\'"hi"\'"\'""'
    assert up.upstart_quote("a\\b") == '"a\\\\b"'
    assert up.upstart_environment({"B": "1", "A": "x y"}) == ['A="x y"', 'B="1"']
    with pytest.raises(ValueError):
        up.upstart_quote("two\nlines")
    with pytest.raises(ValueError):
        up.upstart_environment({"BAD-NAME": 1})


def test_runtime_task_makes_each_directory_as_root_before_its_instance_starts():
    instances = uwsgi_units(INSTANCES, SETTINGS)
    text = render_runtime(instances)
    job = parse_job(text)
    assert "# wsgideploy-runtime-of=blog" in text.splitlines()
    assert one(job, "start on") == ["starting", "blog-0", "or", "starting", "blog-1"]
    assert one(job, "task") == [] and one(job, "instance") == ["$JOB"]
    assert "setuid" not in job and "setgid" not in job  # root
    script = one(job, "script")
    assert "install -d -o blog -g blog -m 0751 /run/blog-0" in script  # unix socket: others traverse
    assert "install -d -o blog -g blog -m 0750 /run/blog-1" in script
    assert "start on" not in parse_job(render_runtime([]))  # no instance: nothing starts it


def test_check_refuses_a_host_without_upstart_naming_the_variable():
    tasks = yaml.safe_load((ROLE / "tasks" / "check.yml").read_text())
    refusal = [t for t in tasks if "ansible.builtin.assert" in t]
    assert len(refusal) == 1
    message = refusal[0]["ansible.builtin.assert"]["fail_msg"]
    assert "wsgi_app_process_manager" in message and "upstart" in message and "Debian 12" in message
    # Read-only, also in check mode.
    commands = [t for t in tasks if "ansible.builtin.command" in t]
    assert commands and all(t["changed_when"] is False and t["check_mode"] is False for t in commands)
    # The role's first task is that check.
    main = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    assert main[0] == {"name": main[0]["name"], "ansible.builtin.import_tasks": "check.yml"}


def test_the_instance_schema_is_systemd_services():
    def schema(role, var):
        specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        options = specs["main"]["options"][var]["options"]
        return {name: {k: v for k, v in spec.items() if k != "description"} for name, spec in options.items()}

    assert schema("upstart_service", "upstart_service_instances") == schema("systemd_service", "systemd_service_instances")
