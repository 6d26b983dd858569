"""nginx-trial: the lb gate's twin of nginx moves every listener to loopback, port + offset."""

from __future__ import annotations

from pathlib import Path

import pytest
from scriptload import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "lb" / "files" / "nginx_trial.py"
trial = load_module("wsgideploy_nginx_trial", SCRIPT)


@pytest.mark.parametrize(
    ("line", "moved"),
    [
        ("    listen 80 default_server;", "    listen 127.0.0.1:20080 default_server;"),
        ("    listen 443 ssl http2 default_server;", "    listen 127.0.0.1:20443 ssl http2 default_server;"),
        ("    listen 0.0.0.0:8080;", "    listen 127.0.0.1:28080;"),
        ("    listen 127.0.0.1:8081;", "    listen 127.0.0.1:28081;"),
        ("    listen [::]:80;", None),
        ("    listen unix:/run/x.sock;", None),
        ("    server_name localhost;", "    server_name localhost;"),
    ],
)
def test_listeners_move_to_loopback_with_the_offset(line, moved):
    assert trial.twin_listen(line, 20000) == moved


def test_a_port_beyond_65535_is_refused():
    with pytest.raises(ValueError):
        trial.twin_listen("listen 50000;", 20000)


def test_the_copy_points_into_itself(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("pid /run/nginx.pid;\ninclude /etc/nginx/conf.d/*.conf;\nserver {\n    listen 80;\n}\n")
    trial.rewrite(str(conf), "/tmp/copy", ["/etc/nginx"], 20000)
    assert conf.read_text() == (
        "pid /tmp/copy/nginx.pid;\ninclude /tmp/copy/etc/nginx/conf.d/*.conf;\nserver {\n    listen 127.0.0.1:20080;\n}\n"
    )


def test_usage():
    assert trial.main(["--bogus"]) == 2
    assert trial.main(["--live"]) == 2
    assert trial.main(["--live", "--", "true", "--", "true"]) == 0
    assert trial.main(["--live", "--", "true", "--", "false"]) == 1
