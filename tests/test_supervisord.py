"""supervisord_service: values written into supervisord's ini files, and the program file."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from scriptload import collection_filters, load_module

ROOT = Path(__file__).resolve().parent.parent
sv = load_module("wsgideploy_supervisor_filters", ROOT / "plugins" / "filter" / "supervisor.py")
from test_gunicorn import uwsgi_units  # noqa: E402 (the same builder the uwsgi role uses)


def test_values_escape_percent_and_quotes():
    assert sv.supervisor_value("50% off") == "50%% off"
    assert sv.supervisor_environment({"B": 'say "hi"', "A": "x,y%"}) == 'A="x,y%%",B="say \\"hi\\""'
    with pytest.raises(ValueError):
        sv.supervisor_environment({"BAD-NAME": 1})
    with pytest.raises(ValueError):
        sv.supervisor_value("two\nlines")


def test_program_file_runs_the_same_command_with_a_graceful_stop():
    instances = uwsgi_units([{"index": 0, "name": "blog-0", "runtime_dir": "blog-0", "listen": "/run/blog-0/app.sock"}],
                            {"BLOG_SETTINGS": "/srv/blog/shared/settings.py"})
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters.update(collection_filters())
    env.filters["regex_replace"] = lambda s, a, b: __import__("re").sub(a, b, s)
    text = (ROOT / "roles" / "supervisord_service" / "templates" / "programs.conf.j2").read_text()
    out = env.from_string(text).render(ansible_managed="managed", supervisord_service_group="blog",
                                       supervisord_service_instances=instances, supervisord_service_start_secs=3,
                                       supervisord_service_start_retries=5, supervisord_service_stop_wait_secs=35,
                                       supervisord_service_log_dir="/var/log/supervisor",
                                       supervisord_service_log_max_bytes="10MB", supervisord_service_log_backups=5)
    lines = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line and not line.startswith(";"))
    assert lines["programs"] == "blog-0"
    assert lines["command"] == instances[0]["command"]  # what systemd's ExecStart= runs
    assert lines["user"] == "blog" and lines["directory"] == "/srv/blog/current"
    assert lines["stopsignal"] == "TERM" and lines["autorestart"] == "true"
    assert lines["environment"] == 'APP_INSTANCE="blog-0",BLOG_SETTINGS="/srv/blog/shared/settings.py"'
