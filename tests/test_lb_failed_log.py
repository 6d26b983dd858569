"""The lb's log of an app's failed requests (roles/lb: lb.conf.j2, tasks/failed.yml).

The site writes every 5xx answer of the app's server blocks, one line each, into lb_failed_log,
under http-level names of its own (a log_format and a map per site: several apps' files share
nginx's http context). access_log at server level replaces nginx.conf's, so each server block
repeats the main access log as nginx.conf.j2 writes it. tasks/failed.yml counts the lines of a time
window with one awk program, run here against temporary files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from scriptload import collection_filters

ROOT = Path(__file__).resolve().parents[1]
LB_TEMPLATE = ROOT / "roles" / "lb" / "templates" / "lb.conf.j2"
NGINX_TEMPLATE = ROOT / "roles" / "nginx" / "templates" / "nginx.conf.j2"
AWK = shutil.which("awk")
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def version_test(value: str, other: str, op: str = "==") -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in str(v).split("."))
    a, b = parts(value), parts(other)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]


def env() -> jinja2.Environment:
    # As Ansible's template module renders (trim_blocks).
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    environment.filters["regex_replace"] = lambda value, pattern, repl="": re.sub(pattern, repl, value)
    environment.filters["dict2items"] = lambda d: [{"key": k, "value": v} for k, v in d.items()]
    environment.tests["version"] = version_test
    environment.filters.update(collection_filters())
    return environment


# The defaults with expressions that the two templates read.
USED = ("lb_site_name", "lb_process_protocol", "lb_process_keepalive", "lb_process_keepalive_timeout_ms",
        "lb_url_prefix", "lb_hidden_headers", "lb_public_https_port", "lb_tls_ocsp_stapling", "lb_resolvers",
        "lb_failed_log", "lb_backends_dir", "lb_gate_map_file")


def values(**overrides) -> dict:
    """The lb role's and the nginx role's defaults, as a deploy renders them (a few facts given)."""
    context: dict = {"wsgi_app_name": "hello", "ansible_managed": "managed", "inventory_hostname": "lb1",
                     "ansible_facts": {"dns": {"nameservers": ["10.0.0.53"]}}, "lb_nginx_release": "1.22.1",
                     "wsgi_app_protocol": "http", "wsgi_app_keepalive": 0, "wsgi_app_url_prefix": "",
                     "wsgi_app_hidden_headers": [], "wsgi_app_static_path": "hello/static",
                     "wsgi_app_static_url": "/static/", "wsgi_app_health_path": "/", "rollout_state_dir": "/x"}
    context.update(overrides)
    for path in (ROOT / "roles" / "nginx" / "defaults" / "main.yml", ROOT / "roles" / "lb" / "defaults" / "main.yml",
                 ROOT / "roles" / "lb" / "vars" / "main.yml"):
        raw = yaml.safe_load(path.read_text())
        for name, value in raw.items():
            if name in context:
                continue
            context[name] = value
    # Resolve the defaults' expressions (a few passes: they refer to one another).
    for _ in range(4):
        for name, value in list(context.items()):
            if isinstance(value, str) and "{{" in value and name not in overrides:
                try:
                    rendered = env().from_string(value).render(**context).strip()
                except jinja2.TemplateError:  # an Ansible-only filter or test: a value the site does not use
                    continue
                context[name] = yaml.safe_load(rendered) if rendered[:1] in ("[", "{") or rendered in ("True", "False") \
                    else rendered
    context.update(overrides)
    unresolved = [name for name in USED if "{{" in str(context[name])]
    assert not unresolved, unresolved
    return context


def render(**overrides) -> str:
    return env().from_string(LB_TEMPLATE.read_text()).render(**values(**overrides))


def server_blocks(text: str) -> list[str]:
    return re.findall(r"^server \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)


def main_access_log(**overrides) -> str | None:
    """nginx.conf.j2's access_log line, its own lines rendered (None when the log is off)."""
    template = NGINX_TEMPLATE.read_text()
    start = template.index("{% if nginx_access_log == 'off' %}")
    snippet = template[start : template.index("{% endif %}", start) + len("{% endif %}")]
    text = env().from_string(snippet).render(**values(**overrides))
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("access_log ")]
    first = lines[0]
    return None if first == "access_log off;" else first


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_every_server_block_logs_failed_requests_and_the_main_log(tls):
    text = render(lb_tls=tls)
    assert "log_format hello_lb_failed '$msec $status \"$upstream_status\" \"$upstream_addr\" $request_method \"$uri\"';" \
        in text, text
    assert re.search(r"^map \$status \$hello_lb_failed \{\n    ~\^5 1;\n    default 0;\n\}$", text, re.MULTILINE), text
    blocks = server_blocks(text)
    assert len(blocks) == (2 if tls else 1), text
    main = main_access_log()
    assert main == "access_log /var/log/nginx/access.log main buffer=64k flush=1s;"
    for block in blocks:
        logs = [line.strip() for line in block.splitlines() if line.strip().startswith("access_log")]
        assert logs == ["access_log /var/log/nginx/wsgideploy-hello-failed.log hello_lb_failed if=$hello_lb_failed;",
                        main], block


def test_a_name_with_a_dash_gives_nginx_names_of_word_characters():
    text = render(wsgi_app_name="my-app")
    assert "log_format my_app_lb_failed '" in text
    assert "map $status $my_app_lb_failed {" in text
    assert "access_log /var/log/nginx/wsgideploy-my-app-failed.log my_app_lb_failed if=$my_app_lb_failed;" in text
    names = re.findall(r"^log_format (\S+)|^map \S+ \$(\S+)", text, re.MULTILINE)
    assert names and all(re.fullmatch(r"[A-Za-z0-9_]+", a or b) for a, b in names), names


def test_main_log_off_leaves_only_the_failed_log():
    text = render(nginx_access_log="off")
    assert main_access_log(nginx_access_log="off") is None
    for block in server_blocks(text):
        logs = [line.strip() for line in block.splitlines() if line.strip().startswith("access_log")]
        assert logs == ["access_log /var/log/nginx/wsgideploy-hello-failed.log hello_lb_failed if=$hello_lb_failed;"]


def test_main_log_without_a_buffer_is_written_as_nginx_conf_writes_it():
    text = render(nginx_access_log_buffer="")
    main = main_access_log(nginx_access_log_buffer="")
    assert main == "access_log /var/log/nginx/access.log main;"
    for block in server_blocks(text):
        assert f"    {main}\n" in block


def test_a_failed_log_path_that_breaks_the_directive_is_refused():
    with pytest.raises(ValueError, match=r"^lb_failed_log: "):
        render(lb_failed_log="/var/log/nginx/x; access_log /etc/passwd")


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed on this machine")
def test_nginx_reads_the_site(tmp_path):
    site = render(lb_failed_log=str(tmp_path / "failed.log"), nginx_access_log=str(tmp_path / "access.log"),
                  lb_tls=False, lb_gate_map_file=str(tmp_path / "gate.conf"), lb_backends_dir=str(tmp_path / "b"))
    (tmp_path / "gate.conf").write_text("")
    (tmp_path / "b" / "app").mkdir(parents=True)
    (tmp_path / "b" / "app" / "one.conf").write_text("server 127.0.0.1:9;\n")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    log_format main '$remote_addr';
{site.replace('listen 80', 'listen 127.0.0.1:1')}
}}
""")
    result = subprocess.run([NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr + conf.read_text()


# --------------------------------------------------------------------------- tasks/failed.yml

def failed_task() -> dict:
    tasks = yaml.safe_load((ROOT / "roles" / "lb" / "tasks" / "failed.yml").read_text())
    return tasks[0]["ansible.builtin.command"], tasks[1]["ansible.builtin.set_fact"]


def count(log: Path, since, until=None) -> dict:
    """The command of tasks/failed.yml, its argv rendered as Ansible would, run; then the fact."""
    command, set_fact = failed_task()
    context = {"lb_failed_log": str(log), "lb_failed_since": since}
    if until is not None:
        context["lb_failed_until"] = until
    environment = env()
    environment.filters["float"] = lambda value, default=0.0: _float(value, default)
    argv = [environment.from_string(str(arg)).render(**context) for arg in command["argv"]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    lines = result.stdout.splitlines()
    fact = set_fact["lb_failed_requests"]
    assert fact["count"] == "{{ lb_failed_scan.stdout_lines[0] | int }}"
    assert fact["lines"] == "{{ lb_failed_scan.stdout_lines[1:] }}"
    return {"count": int(lines[0]), "lines": lines[1:]}


def _float(value, default=0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def line(msec: float, status: int = 502, uri: str = "/") -> str:
    return f'{msec:.3f} {status} "-" "-" GET "{uri}"'


@pytest.mark.skipif(AWK is None, reason="awk is not installed on this machine")
def test_failed_counts_the_window_over_the_log_and_its_rotation(tmp_path):
    log = tmp_path / "failed.log"
    (tmp_path / "failed.log.1").write_text("\n".join([line(900), line(1000.5, uri="/a b"), "garbage"]) + "\n")
    log.write_text("\n".join(line(2000 + i, 500, f"/p{i}") for i in range(30)) + "\n")
    assert count(log, 1000) == {"count": 31, "lines": [line(2000 + i, 500, f"/p{i}") for i in range(10, 30)]}
    assert count(log, 1000.5, 2001) == {"count": 3, "lines": [line(1000.5, uri="/a b"), line(2000, 500, "/p0"),
                                                              line(2001, 500, "/p1")]}
    assert count(log, 1000.501)["count"] == 30
    assert count(log, 2029.001) == {"count": 0, "lines": []}
    assert count(log, 0, 0)["count"] == 32  # until 0: no end


@pytest.mark.skipif(AWK is None, reason="awk is not installed on this machine")
def test_failed_counts_a_missing_log_as_nothing(tmp_path):
    assert count(tmp_path / "none.log", 0) == {"count": 0, "lines": []}
    (tmp_path / "only.log.1").write_text(line(5) + "\n")
    assert count(tmp_path / "only.log", 1) == {"count": 1, "lines": [line(5)]}


@pytest.mark.skipif(AWK is None, reason="awk is not installed on this machine")
def test_failed_takes_only_numbers_for_the_window(tmp_path):
    """A time that is not a number is cast to one (0) before it reaches awk: no program text."""
    log = tmp_path / "failed.log"
    log.write_text(line(10) + "\n")
    assert count(log, "1; system(\"touch " + str(tmp_path / "pwned") + "\")")["count"] == 1
    assert not (tmp_path / "pwned").exists()
