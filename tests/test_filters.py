"""Unit tests of the filters in plugins/filter/wsgi_app.py."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from scriptload import load_module

FILTERS_PATH = Path(__file__).resolve().parent.parent / "plugins" / "filter" / "wsgi_app.py"

filters = load_module("wsgideploy_filter_wsgi_app", FILTERS_PATH)
wsgi_instances = filters.wsgi_instances
python_literal = filters.python_literal


# --- wsgi_instances: unix sockets ----------------------------------------------------------------


def test_unix_instances_have_a_socket_per_instance_under_run():
    items = wsgi_instances("hello", 3, "unix")
    assert [i["name"] for i in items] == ["hello-0", "hello-1", "hello-2"]
    assert [i["index"] for i in items] == [0, 1, 2]
    for i in items:
        assert i["runtime_dir"] == i["name"]
        assert i["listen"] == f"/run/{i['name']}/app.sock"
        assert i["nginx"] == f"unix:/run/{i['name']}/app.sock"
        assert i["port"] is None


def test_defaults_are_one_unix_instance():
    assert wsgi_instances("hello", 1) == [
        {
            "index": 0,
            "name": "hello-0",
            "runtime_dir": "hello-0",
            "listen": "/run/hello-0/app.sock",
            "port": None,
            "nginx": "unix:/run/hello-0/app.sock",
        }
    ]


def test_unix_ignores_the_base_port():
    # base_port only matters for tcp; an out-of-range one is no error for unix sockets.
    assert len(wsgi_instances("hello", 2, "unix", 70000)) == 2


# --- wsgi_instances: tcp -------------------------------------------------------------------------


def test_tcp_ports_count_up_from_the_base_port():
    items = wsgi_instances("hello", 3, "tcp", 9000, "127.0.0.1")
    assert [i["name"] for i in items] == ["hello-0", "hello-1", "hello-2"]
    assert [i["runtime_dir"] for i in items] == ["hello-0", "hello-1", "hello-2"]
    assert [i["port"] for i in items] == [9000, 9001, 9002]
    assert [i["listen"] for i in items] == ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]
    assert [i["nginx"] for i in items] == ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", "*"])
def test_tcp_wildcard_bind_is_reached_through_loopback(wildcard):
    items = wsgi_instances("hello", 2, "tcp", 8000, wildcard)
    bind = f"[{wildcard}]" if ":" in wildcard else wildcard
    assert [i["listen"] for i in items] == [f"{bind}:8000", f"{bind}:8001"]
    assert [i["nginx"] for i in items] == ["127.0.0.1:8000", "127.0.0.1:8001"]


def test_tcp_specific_bind_address_is_the_nginx_address():
    items = wsgi_instances("hello", 2, "tcp", 8000, "10.0.0.5")
    assert [i["listen"] for i in items] == ["10.0.0.5:8000", "10.0.0.5:8001"]
    assert [i["nginx"] for i in items] == ["10.0.0.5:8000", "10.0.0.5:8001"]


@pytest.mark.parametrize(
    ("bind", "nginx"),
    [
        ("::1", "[::1]:8000"),
        ("fd00::5", "[fd00::5]:8000"),
        ("[::1]", "[::1]:8000"),  # already bracketed: not bracketed twice
    ],
)
def test_tcp_ipv6_nginx_address_is_bracketed(bind, nginx):
    (item,) = wsgi_instances("hello", 1, "tcp", 8000, bind)
    assert item["nginx"] == nginx
    assert item["port"] == 8000


def test_tcp_ipv6_listen_address_is_bracketed():
    (item,) = wsgi_instances("hello", 1, "tcp", 8000, "::1")
    assert item["listen"] == "[::1]:8000"


def test_tcp_highest_ports_fit_exactly():
    items = wsgi_instances("hello", 2, "tcp", 65534)
    assert [i["port"] for i in items] == [65534, 65535]


def test_string_numbers_are_accepted():
    # Extra vars on the command line and some inventories hand numbers over as strings.
    items = wsgi_instances("hello", "2", "tcp", "8000")
    assert [i["port"] for i in items] == [8000, 8001]
    assert len(wsgi_instances("hello", "2")) == 2


@pytest.mark.parametrize("count", [1, 64])
def test_instance_count_bounds_are_inclusive(count):
    assert len(wsgi_instances("hello", count)) == count


@pytest.mark.parametrize("name", ["a", "hello", "my_app-2", "a" * 31])
def test_valid_names(name):
    assert wsgi_instances(name, 1)[0]["name"] == f"{name}-0"


# --- wsgi_instances: errors ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Hello", "1app", "-app", "my app", "app.x", "a" * 32, None, 5])
def test_bad_name_is_a_value_error(name):
    with pytest.raises(ValueError, match="wsgi_app_name"):
        wsgi_instances(name, 1)


@pytest.mark.parametrize("count", [0, 65, -1, "0", "65"])
def test_count_out_of_range_is_a_value_error(count):
    with pytest.raises(ValueError, match="wsgi_app_instances"):
        wsgi_instances("hello", count)


@pytest.mark.parametrize("count", ["x", None, "2.0"])
def test_non_integer_count_is_a_value_error(count):
    with pytest.raises(ValueError):
        wsgi_instances("hello", count)


@pytest.mark.parametrize("listen", ["udp", "UNIX", "", "carrier-pigeon"])
def test_unknown_listen_is_a_value_error(listen):
    with pytest.raises(ValueError, match="wsgi_app_listen"):
        wsgi_instances("hello", 1, listen)


@pytest.mark.parametrize(("base_port", "count"), [(65535, 2), (65500, 64), (65536, 1), (0, 1), (-1, 1)])
def test_tcp_port_overflow_is_a_value_error(base_port, count):
    with pytest.raises(ValueError, match="wsgi_app_base_port"):
        wsgi_instances("hello", count, "tcp", base_port)


def test_non_integer_base_port_is_a_value_error():
    with pytest.raises(ValueError):
        wsgi_instances("hello", 1, "tcp", "http")


# --- python_literal ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [(True, "True"), (False, "False"), (None, "None")])
def test_python_constants(value, text):
    assert python_literal(value) == text


@pytest.mark.parametrize(
    "value",
    [
        0,
        -7,
        10**20,
        1.5,
        -0.25,
        "",
        "plain",
        "it's",
        'say "hi"',
        "both ' and \"",
        "back\\slash and \\n literally",
        "new\nline\ttab",
        "ünïcødé ✓",
        "{{ not a template }}",
        [],
        {},
        [1, "two", None, True, 3.0],
        {"GREETING": "Hello", "PROXY_FIX_X_FOR": 1, "DEBUG": False, "EMPTY": None},
        {"outer": {"inner": [{"deep": ["it's", 'a "test"']}], "flag": True}},
    ],
)
def test_round_trips_through_literal_eval(value):
    text = python_literal(value)
    assert ast.literal_eval(text) == value
    # Valid on the right-hand side of an assignment in the settings file, too.
    namespace: dict = {}
    exec(f"SETTING = {text}", {}, namespace)  # noqa: S102 - the text comes from the test's own values
    assert namespace["SETTING"] == value


def test_bools_stay_bools_inside_containers():
    text = python_literal({"a": [True, 1, False, 0]})
    assert text == "{'a': [True, 1, False, 0]}"
    result = ast.literal_eval(text)
    assert [type(v) for v in result["a"]] == [bool, int, bool, int]


def test_tuple_renders_as_list():
    assert python_literal((1, "a")) == "[1, 'a']"


def test_dict_keys_render_as_strings():
    assert ast.literal_eval(python_literal({1: "one", "two": 2})) == {"1": "one", "two": 2}


class _Str(str):
    def __repr__(self) -> str:
        return "_Str(!)"


class _Int(int):
    def __repr__(self) -> str:
        return "_Int(!)"


class _Float(float):
    def __repr__(self) -> str:
        return "_Float(!)"


class _Dict(dict):
    pass


class _List(list):
    pass


def test_str_subclass_renders_as_plain_str():
    assert python_literal(_Str("it's")) == repr("it's")


def test_int_subclass_renders_as_plain_int():
    assert python_literal(_Int(42)) == "42"


def test_float_subclass_renders_as_plain_float():
    assert python_literal(_Float(0.5)) == "0.5"


def test_bool_is_not_treated_as_int():
    # bool subclasses int; it must come out as True/False, never 1/0.
    assert python_literal(True) == "True"
    assert python_literal([False]) == "[False]"


def test_container_subclasses_render_as_plain_containers():
    value = _Dict(k=_List([_Str("v"), _Int(1)]))
    text = python_literal(value)
    assert text == "{'k': ['v', 1]}"
    assert ast.literal_eval(text) == {"k": ["v", 1]}


def test_ansible_tagged_str_renders_as_plain_str():
    template = pytest.importorskip("ansible.template")
    trust_as_template = getattr(template, "trust_as_template", None)
    if trust_as_template is None:
        pytest.skip("ansible.template.trust_as_template needs ansible-core 2.19+")
    tagged = trust_as_template("it's {{ x }}")
    assert type(tagged) is not str and isinstance(tagged, str)
    assert python_literal(tagged) == repr("it's {{ x }}")


@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset(), object(), b"bytes", 1 + 2j, {"nested": [{"bad": {1}}]}, [object()]],
    ids=["set", "frozenset", "object", "bytes", "complex", "nested-set", "nested-object"],
)
def test_unsupported_types_raise_type_error(value):
    with pytest.raises(TypeError, match="python_literal"):
        python_literal(value)


# --- FilterModule --------------------------------------------------------------------------------


def test_filter_module_maps_every_name():
    mapping = filters.FilterModule().filters()
    assert mapping == {"wsgi_instances": wsgi_instances, "python_literal": python_literal,
                       "python_identifier": filters.python_identifier,
                       "wsgi_release_stack": filters.wsgi_release_stack,
                       "wsgi_rollback_release": filters.wsgi_rollback_release,
                       "wsgi_releases_to_keep": filters.wsgi_releases_to_keep,
                       "wsgi_server_units": filters.wsgi_server_units,
                       "wsgi_upstream_servers": filters.wsgi_upstream_servers}


@pytest.mark.ansible
def test_filters_work_inside_ansible(ansible, project_root):
    """Through Ansible's own templating (its tagged/lazy str, dict and list types).

    `debug` is an action plugin: it runs on the controller and starts no module.
    """
    settings = {"GREETING": "it's \"here\"", "N": 1, "B": True, "L": [None, 1.5, {"k": "v"}]}
    result = ansible(
        "ansible",
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-m",
        "ansible.builtin.debug",
        "-a",
        "msg={{ {'settings': settings | wsgideploy.fleet.python_literal,"
        " 'instances': 'hello' | wsgideploy.fleet.wsgi_instances('2', 'tcp', 8000, '0.0.0.0'),"
        " 'units': 'hello' | wsgideploy.fleet.wsgi_instances(1) | wsgideploy.fleet.wsgi_server_units(label='uWSGI', command='run {name} in {run}',"
        " common={'app': 'hello', 'current': '/srv/hello/current', 'user': 'hello', 'group': 'hello',"
        " 'shared': '/srv/hello/shared', 'environment': settings},"
        " signals={'stop': 'SIGINT', 'graceful_stop': 'SIGTERM', 'reload': 'SIGHUP'},"
        " socket_system_calls=['@chown'])} }}",
        "-e",
        json.dumps({"settings": settings}),
        env={
            "ANSIBLE_COLLECTIONS_PATH": str(project_root / "collections"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    msg = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert ast.literal_eval(msg["settings"]) == settings
    assert [i["nginx"] for i in msg["instances"]] == ["127.0.0.1:8000", "127.0.0.1:8001"]
    assert [i["listen"] for i in msg["instances"]] == ["0.0.0.0:8000", "0.0.0.0:8001"]
    unit = msg["units"][0]
    assert unit["command"] == "run hello-0 in /run/hello-0" and unit["system_calls"] == ["@chown"]
    assert unit["environment"]["APP_INSTANCE"] == "hello-0" and unit["environment"]["N"] == "1"


# --- the activation history: deploys push, rollbacks step back, pruning keeps what they need -----

stack_after = filters.wsgi_release_stack
rollback_release = filters.wsgi_rollback_release
to_keep = filters.wsgi_releases_to_keep


def test_deploys_push_releases_and_a_redeploy_moves_one_up():
    stack = []
    for release in ("a", "b", "c"):
        stack = stack_after(stack, release)
    assert stack == ["a", "b", "c"]
    assert stack_after(stack, "a") == ["b", "c", "a"]
    assert stack_after(stack, "c") == ["a", "b", "c"]  # a re-run changes nothing


def test_a_second_rollback_steps_further_back():
    stack = ["a", "b", "c"]
    assert rollback_release(stack, "c") == "b"
    stack = stack_after(stack, "b", rollback=True)
    assert stack == ["a", "b"]
    assert rollback_release(stack, "b") == "a"
    stack = stack_after(stack, "a", rollback=True)
    assert stack == ["a"]
    assert rollback_release(stack, "a") == ""
    # A deploy after rollbacks starts a new branch of the history.
    assert stack_after(stack, "d") == ["a", "d"]


def test_a_rollback_to_a_release_never_activated_is_pushed():
    assert stack_after(["a", "b"], "x", rollback=True) == ["a", "b", "x"]


def test_rollback_target_when_current_was_moved_by_hand():
    # The active release is not the top of the history: the top is where a rollback goes.
    assert rollback_release(["a", "b"], "zzz") == "b"
    assert rollback_release([], "") == ""


def test_pruning_keeps_the_newest_the_rollback_target_and_the_extras():
    stack = ["a", "b", "c", "d", "e"]
    assert set(to_keep(stack, 1, ["e"])) == {"e", "d"}  # d: the rollback target, even with keep 1
    assert set(to_keep(stack, 3, [])) == {"c", "d", "e"}
    assert set(to_keep(stack, 2, ["a", ""])) == {"a", "d", "e"}  # a: active before the run


@pytest.mark.parametrize("keep", [0, -1, "x"])
def test_pruning_refuses_a_keep_below_one(keep):
    with pytest.raises(ValueError, match="app_keep_releases"):
        to_keep(["a"], keep, [])


# --- wsgi_upstream_servers: a load balancer's upstream over a group of app hosts -----------------

wsgi_upstream_servers = filters.wsgi_upstream_servers

UPSTREAM_DEFAULTS = {
    "port": 80, "max_fails": 1, "fail_timeout": "10s", "wsgi_app_name": "hello", "wsgi_app_instances": 2,
    "wsgi_app_listen": "tcp", "wsgi_app_base_port": 8000, "wsgi_app_bind_address": "0.0.0.0",
}


def fleet_vars() -> dict:
    return {
        "app1": {"ansible_default_ipv4": {"address": "10.0.0.1"}},
        # its own address, weight, instances and drain, as strings the way inventories give them
        "app2": {"lb_backend_address": "10.0.0.9", "ansible_default_ipv4": {"address": "10.0.0.2"},
                 "lb_weight": "3", "lb_backup": "yes", "lb_max_fails": 2, "lb_fail_timeout": "30s",
                 "wsgi_app_instances": 3, "wsgi_app_base_port": 9000, "lb_drain": "false"},
        "app3": {"ansible_default_ipv4": {"address": "10.0.0.3"}, "lb_drain": True},
    }


def test_host_topology_gives_one_server_per_host_with_its_own_values():
    servers = wsgi_upstream_servers(["app1", "app2", "app3"], fleet_vars(), "host", UPSTREAM_DEFAULTS)
    assert servers == [
        {"host": "app1", "instance": None, "ip": "10.0.0.1", "port": 80, "weight": 1, "backup": False,
         "max_fails": 1, "fail_timeout": "10s", "down": False},
        {"host": "app2", "instance": None, "ip": "10.0.0.9", "port": 80, "weight": 3, "backup": True,
         "max_fails": 2, "fail_timeout": "30s", "down": False},
        {"host": "app3", "instance": None, "ip": "10.0.0.3", "port": 80, "weight": 1, "backup": False,
         "max_fails": 1, "fail_timeout": "10s", "down": True},
    ]


def test_process_topology_gives_one_server_per_instance_from_each_hosts_definition():
    servers = wsgi_upstream_servers(["app1", "app2"], fleet_vars(), "process", UPSTREAM_DEFAULTS, drained=["app1"])
    assert [(s["host"], s["instance"], s["ip"], s["port"], s["down"]) for s in servers] == [
        ("app1", "hello-0", "10.0.0.1", 8000, True),
        ("app1", "hello-1", "10.0.0.1", 8001, True),
        ("app2", "hello-0", "10.0.0.9", 9000, False),
        ("app2", "hello-1", "10.0.0.9", 9001, False),
        ("app2", "hello-2", "10.0.0.9", 9002, False),
    ]
    assert {s["weight"] for s in servers if s["host"] == "app2"} == {3}


def test_unknown_addresses_and_unix_sockets_leave_none_for_the_caller_to_name():
    hostvars = {"app1": {}, "app2": {"ansible_default_ipv4": {"address": "10.0.0.2"}, "wsgi_app_listen": "unix"}}
    servers = wsgi_upstream_servers(["app1", "app2"], hostvars, "process", UPSTREAM_DEFAULTS)
    assert [s["ip"] for s in servers if s["host"] == "app1"] == [None, None]
    assert [s["port"] for s in servers if s["host"] == "app2"] == [None, None]


@pytest.mark.parametrize(
    ("hostvars", "topology", "message"),
    [
        ({"app1": {"lb_weight": "heavy"}}, "host", "lb_weight"),
        ({"app1": {"lb_drain": "maybe"}}, "host", "lb_drain"),
        ({"app1": {"wsgi_app_instances": 0}}, "process", "wsgi_app_instances"),
        ({"app1": {}}, "machine", "lb_topology"),
    ],
)
def test_bad_upstream_values_are_refused_by_name(hostvars, topology, message):
    with pytest.raises(ValueError, match=message):
        wsgi_upstream_servers(["app1"], hostvars, topology, UPSTREAM_DEFAULTS)
