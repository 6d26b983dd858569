"""Unit tests of plugins/filter/contain.py: values held to where they belong."""

from __future__ import annotations

from pathlib import Path

import pytest
from scriptload import load_module

contain = load_module("wsgideploy_filter_contain", Path(__file__).resolve().parent.parent / "plugins" / "filter" / "contain.py")
problems = contain.contain_problems

# The app definition as the wsgi_app role's defaults make it (what every host sees).
DEFINITION = {
    "wsgi_app_name": "hello", "wsgi_app_user": "hello", "wsgi_app_group": "hello",
    "wsgi_app_socket_group": "hello-sock", "wsgi_app_root": "/srv/hello", "wsgi_app_current": "/srv/hello/current",
    "wsgi_app_shared": "/srv/hello/shared", "wsgi_app_settings_file": "/srv/hello/shared/settings.py",
    "wsgi_app_static_path": "hello/static", "wsgi_app_static_url": "/static/", "wsgi_app_health_path": "/",
    "wsgi_app_url_prefix": "", "wsgi_app_release_header": "X-App-Release", "wsgi_app_entry_dir": "/usr/local/lib/wsgideploy/python",
    "wsgi_app_listen": "unix", "wsgi_app_base_port": 8000, "wsgi_app_instances": 2, "wsgi_app_environment": {},
    "wsgi_app_src": "/work/../app", "wsgi_app_requirements_file": "requirements.txt",
    "wsgi_app_server_environment": {"HELLO_SETTINGS": "/srv/hello/shared/settings.py"},
}


def check(**changes):
    return problems({**DEFINITION, **changes})


def test_the_defaults_and_the_scenarios_values_pass():
    assert check() == []
    assert check(wsgi_app_listen="tcp", wsgi_app_base_port=8000, wsgi_app_bind_address="0.0.0.0") == []
    assert check(app_shared_links=[{"path": "instance"}, {"path": "public/uploads", "shared": "uploads"}],
                 app_shared_dirs=["log", "data"], lb_server_names=["wsgideploy-cluster-lb", "*.example.com", "_", "10.0.0.1"],
                 wsgi_app_url_prefix="/guestbook", wsgi_app_settings_file="/srv/hello/shared/instance/config.py",
                 lb_security_headers={"Content-Security-Policy": "frame-ancestors 'self'"},
                 app_settings={"NOTE": "two\nlines are fine: the settings file is Python, values are literals"},
                 wsgi_app_environment={"DJANGO_SETTINGS_MODULE": "site.settings", "N": 3}) == []
    assert check(wsgi_app_settings_file="/etc/hello/settings.py") == []


@pytest.mark.parametrize(("changes", "words"), [
    ({"wsgi_app_static_path": "../../../../etc"}, ["wsgi_app_static_path", ".."]),
    ({"wsgi_app_static_path": "/etc"}, ["wsgi_app_static_path", "absolute"]),
    ({"wsgi_app_static_path": "static/../../x"}, ["wsgi_app_static_path"]),
    ({"app_shared_links": [{"path": "../../etc"}]}, ["app_shared_links[0].path", ".."]),
    ({"app_shared_links": [{"path": "instance", "shared": "../../../etc"}]}, ["app_shared_links[0].shared"]),
    ({"app_shared_dirs": ["log", "/var/log"]}, ["app_shared_dirs[1]", "absolute"]),
    ({"wsgi_app_user": "root"}, ["wsgi_app_user", "root"]),
    ({"wsgi_app_user": "www-data"}, ["wsgi_app_user", "www-data"]),
    ({"wsgi_app_group": "sudo"}, ["wsgi_app_group", "sudo"]),
    ({"wsgi_app_socket_group": "nogroup"}, ["wsgi_app_socket_group"]),
    ({"wsgi_app_user": "deploy", "deploy_user_name": "deploy"}, ["wsgi_app_user", "deploy"]),
    ({"app_hooks_after_install": [{"name": "x", "command": "true", "user": "root"}]},
     ["app_hooks_after_install[0].user", "become_root"]),
    ({"app_hooks_build": [{"name": "x", "command": "true", "user": "www-data"}]}, ["app_hooks_build[0].user", "www-data"]),
    ({"app_hooks_build": [{"name": "x", "command": "true", "user": "backup2"}]}, ["app_hooks_build[0].user", "backup2"]),
    ({"wsgi_app_environment": {"X": "a\nExecStartPre=/usr/bin/touch /tmp/pwned"}}, ["wsgi_app_environment[X]", "control character"]),
    ({"wsgi_app_environment": {"BAD NAME": "x"}}, ["wsgi_app_environment", "BAD NAME"]),
    ({"wsgi_app_environment": {"X": "trailing\\"}}, []),  # escaped by the unit's filter, not refused
    ({"lb_server_names": ["127.0.0.1; return 200 injected"]}, ["lb_server_names[0]", "host name"]),
    ({"lb_server_names": ["bad name"]}, ["lb_server_names[0]"]),
    ({"lb_server_names": ["~^(?<x>.+)$"]}, ["lb_server_names[0]"]),
    ({"app_proxy_server_names": ["a{b"]}, ["app_proxy_server_names[0]"]),
    ({"wsgi_app_listen": "tcp", "wsgi_app_base_port": 80}, ["wsgi_app_base_port", "privileged"]),
    ({"wsgi_app_listen": "tcp", "wsgi_app_base_port": 8098}, ["wsgi_app_base_port", "8099", "nginx_status_listen"]),
    ({"wsgi_app_listen": "tcp", "wsgi_app_base_port": 8442, "lb_https_port": 8443}, ["lb_https_port", "8443"]),
    ({"wsgi_app_url_prefix": "/a;return 200 x"}, ["wsgi_app_url_prefix"]),
    ({"wsgi_app_url_prefix": "/a/../b"}, ["wsgi_app_url_prefix"]),
    ({"wsgi_app_static_url": "/static/$x/"}, ["wsgi_app_static_url"]),
    ({"wsgi_app_release_header": "X-A: b"}, ["wsgi_app_release_header"]),
    ({"lb_security_headers": {"X-Test": "a $host"}}, ["lb_security_headers", "$"]),
    ({"wsgi_app_root": "/etc/hello"}, ["wsgi_app_root", "system directory"]),
    ({"wsgi_app_root": "/srv"}, ["wsgi_app_root"]),
    ({"wsgi_app_root": "/srv/a b"}, ["wsgi_app_root", "letters"]),
    ({"wsgi_app_shared": "/var/lib/elsewhere"}, ["wsgi_app_shared", "inside wsgi_app_root"]),
    ({"wsgi_app_settings_file": "/etc/settings.py"}, ["wsgi_app_settings_file", "/etc/<app>"]),
    ({"wsgi_app_settings_file": "/srv/hello/../x/settings.py"}, ["wsgi_app_settings_file", ".."]),
    ({"uwsgi_extra_options": {"env": "A=b\n[uwsgi]"}}, ["uwsgi_extra_options[env]", "control character"]),
    ({"nginx_http_extra": ["gzip on;\nserver { }"]}, ["nginx_http_extra[0]", "control character"]),
])
def test_refused_naming_the_variable(changes, words):
    found = "; ".join(check(**changes))
    if not words:
        assert found == ""
        return
    assert found, f"{changes} was not refused"
    for word in words:
        assert word in found, found


def test_a_hook_may_name_the_app_user_or_root_with_become_root():
    assert check(app_hooks_build=[{"name": "x", "command": "true", "user": "hello"}]) == []
    assert check(app_hooks_build=[{"name": "x", "command": "true", "user": "root", "become_root": True}]) == []
    assert check(app_hooks_build=[{"name": "x", "command": "true", "become_root": True}]) == []


def test_controller_paths_may_be_relative_and_climb():
    assert check(wsgi_app_src="../elsewhere/app", lb_tls_cert_src="../certs/x.crt") == []
    assert check(wsgi_app_src="a\nb") != []
