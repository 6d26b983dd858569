"""The gunicorn role: the instances it hands to the process manager, and its config file."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
from scriptload import collection_filters, load_module

ROOT = Path(__file__).resolve().parent.parent
app_filters = load_module("wsgideploy_app_filters", ROOT / "plugins" / "filter" / "wsgi_app.py")
COMMON = {"app": "blog", "current": "/srv/blog/current", "user": "blog", "group": "blog", "shared": "/srv/blog/shared"}


def gunicorn_units(instances, environment, changed=None):
    """What roles/gunicorn/tasks/main.yml asks of wsgi_server_units."""
    return app_filters.wsgi_server_units(
        instances, label="Gunicorn", command="/srv/blog/current/venv/bin/gunicorn --config /etc/gunicorn/blog/{name}.conf.py",
        common={**COMMON, "environment": environment}, signals={"stop": "SIGTERM", "graceful_stop": "SIGTERM", "reload": "SIGHUP"},
        socket_system_calls=["@chown"], changed=changed)


def uwsgi_units(instances, environment, chain=None, chown=True):
    """What roles/uwsgi/tasks/main.yml asks of wsgi_server_units."""
    return app_filters.wsgi_server_units(
        instances, label="uWSGI", command="/srv/blog/current/venv/bin/uwsgi --ini /etc/uwsgi/blog/{name}.ini",
        common={**COMMON, "environment": environment}, signals={"stop": "SIGINT", "graceful_stop": "SIGTERM", "reload": "SIGHUP"},
        stop_command="echo q > {run}/master.fifo",
        reload_command=("/h --pid $MAINPID --fifo {run}/master.fifo --stamp {run}/master.started"
                        " --ini /etc/uwsgi/blog/{name}.ini --venv {current}/venv --stats {run}/stats.sock --timeout 50")
        if chain else "",
        socket_system_calls=["@chown"] if chown else [])

INSTANCES = [
    {"index": 0, "name": "blog-0", "runtime_dir": "blog-0", "listen": "/run/blog-0/app.sock", "port": None,
     "nginx": "unix:/run/blog-0/app.sock"},
    {"index": 1, "name": "blog-1", "runtime_dir": "blog-1", "listen": "0.0.0.0:8001", "port": 8001, "nginx": "127.0.0.1:8001"},
]


def test_units_follow_the_contract():
    out = gunicorn_units(INSTANCES, {"BLOG_SETTINGS": "/srv/blog/shared/settings.py", "N": 3}, changed=["blog-1"])
    unix, tcp = out
    assert unix["command"] == "/srv/blog/current/venv/bin/gunicorn --config /etc/gunicorn/blog/blog-0.conf.py"
    assert unix["environment"] == {"BLOG_SETTINGS": "/srv/blog/shared/settings.py", "N": "3", "APP_INSTANCE": "blog-0"}
    assert (unix["stop_signal"], unix["reload_signal"], unix["notify"]) == ("SIGTERM", "SIGHUP", True)
    assert unix["runtime_dir_mode"] == "0751" and unix["system_calls"] == ["@chown"]
    assert "system_calls" not in tcp and "runtime_dir_mode" not in tcp
    assert (unix["config_changed"], tcp["config_changed"]) == (False, True)
    assert unix["read_write_paths"] == ["/srv/blog/shared"] and unix["working_dir"] == "/srv/blog/current"


def render(item: dict, **overrides) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    env.filters.update(collection_filters())
    env.filters["regex_replace"] = lambda s, a, b: __import__("re").sub(a, b, s)
    values = {
        "ansible_managed": "managed", "wsgi_app_name": "blog", "wsgi_app_process_manager": "systemd",
        "wsgi_app_entry_dir": "/usr/local/lib/wsgideploy/python", "wsgi_app_current": "/srv/blog/current",
        "gunicorn_backlog": 128, "gunicorn_workers": 5, "gunicorn_worker_class": "sync", "gunicorn_threads": 1,
        "gunicorn_timeout": 30, "gunicorn_graceful_timeout": 25, "gunicorn_keepalive": 5, "gunicorn_max_requests": 5000,
        "gunicorn_max_requests_jitter": 500, "gunicorn_access_log": True, "gunicorn_socket_group": "blog-sock",
        "gunicorn_socket_mode": "0660", "gunicorn_extra_settings": {"limit_request_line": 8190}, "item": item,
    }
    values.update(overrides)
    text = (ROOT / "roles" / "gunicorn" / "templates" / "instance.conf.py.j2").read_text()
    return env.from_string(text).render(**values)


def settings(text: str) -> dict:
    scope: dict = {}
    exec(compile(text, "gunicorn config", "exec"), scope)  # noqa: S102 (our own rendered file)
    return scope


def test_config_file_is_python_gunicorn_reads():
    unix = settings(render(INSTANCES[0]))
    assert unix["bind"] == ["unix:/run/blog-0/app.sock"] and unix["wsgi_app"] == "wsgideploy_release:application"
    assert unix["chdir"] == "/srv/blog/current" and unix["preload_app"] is False
    assert (unix["workers"], unix["graceful_timeout"], unix["max_requests_jitter"]) == (5, 25, 500)
    assert unix["limit_request_line"] == 8190 and unix["accesslog"] == "-"
    assert callable(unix["when_ready"])  # hands the socket to the socket group
    tcp = settings(render(INSTANCES[1], gunicorn_access_log=False))
    assert tcp["bind"] == ["0.0.0.0:8001"] and "when_ready" not in tcp and tcp["accesslog"] is None


def test_uwsgi_units_follow_the_same_contract():
    unix, tcp = uwsgi_units(INSTANCES, {"X": 1})
    assert unix["command"] == "/srv/blog/current/venv/bin/uwsgi --ini /etc/uwsgi/blog/blog-0.ini"
    assert unix["description"] == "blog uWSGI instance 0"
    assert unix["stop_command"] == "echo q > /run/blog-0/master.fifo" and "'" not in unix["stop_command"]
    assert unix["system_calls"] == ["@chown"] and "reload_command" not in unix
    assert "system_calls" not in uwsgi_units(INSTANCES, {}, chown=False)[0]
    chain = uwsgi_units(INSTANCES, {}, chain=True)[1]
    assert chain["reload_command"] == (
        "/h --pid $MAINPID --fifo /run/blog-1/master.fifo --stamp /run/blog-1/master.started"
        " --ini /etc/uwsgi/blog/blog-1.ini --venv /srv/blog/current/venv --stats /run/blog-1/stats.sock --timeout 50")
    assert set(unix) - set(gunicorn_units(INSTANCES, {})[0]) == {"stop_command"}
    assert (unix["graceful_stop_signal"], unix["stop_signal"]) == ("SIGTERM", "SIGINT")
