"""contain_problems: what an inventory value may not be, whatever its type says.

The argument specs check types and choices, playbooks/tasks/validate-input.yml the bounds of numbers.
A value can pass both and still escape where it belongs: a static path with `..` that nginx serves
from /etc, an environment value whose newline adds a directive to a unit, a server name whose `;`
ends nginx's directive, an account that is root. This filter holds every value to its place, on the
controller, before any host changes; each problem names the variable.

  {{ values | wsgideploy.fleet.contain_problems(options) }}

values: variable name -> value, for the variables defined for the host. options: variable name ->
its argument spec (type, elements), for the walk that refuses control characters in every string
that reaches a file. The tables below say which variables are paths, and of which kind; accounts,
names and ports have rules of their own. The rules, one line each, are in the README ("What the
collection refuses").
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

# One grammar for each: what the input check refuses here, the templates' filters refuse too.
from ansible_collections.wsgideploy.fleet.plugins.filter.nginx import server_name_ok
from ansible_collections.wsgideploy.fleet.plugins.plugin_utils.escape import ENV_NAME_RE, control_character

# --- Paths -------------------------------------------------------------------------------------

# Relative paths inside the release (the app's own files): no `..`, not absolute.
RELEASE_PATHS = ("wsgi_app_static_path", "wsgi_app_requirements_file", "app_requirements_file")

# Lists of relative paths inside shared/ (state that survives releases).
SHARED_PATH_LISTS = ("app_shared_dirs",)

# Lists of {path: in the release, shared: under shared/}.
LINK_LISTS = ("app_shared_links",)

# Absolute directories and files on the hosts that the collection writes or owns.
HOST_PATHS = (
    "wsgi_app_root", "app_root", "wsgi_app_entry_dir", "rollout_entry_dir", "rollout_bin_dir",
    "rollout_state_dir", "rollout_stamp_file", "uwsgi_config_dir", "gunicorn_config_dir",
    "supervisord_service_conf_dir", "supervisord_service_log_dir", "upstart_service_job_dir",
    "lb_tls_dir", "lb_backend_dir", "app_proxy_locations_dir", "deploy_user_shell",
    "wsgi_app_current", "wsgi_app_shared", "wsgi_app_settings_file", "app_current", "app_shared",
    "app_releases_dir", "app_venvs_dir", "app_history_file", "app_pip_cert_path", "app_secret_key_file",
    "app_settings_file", "app_settings_staged", "app_proxy_static_root", "nginx_conf_d", "lb_failed_log",
    "fleet_run_dir", "fleet_run_lock", "fleet_run_ledger", "fleet_run_failed_log",
)
# Lists of absolute paths on the hosts.
HOST_PATH_LISTS = (
    "systemd_service_read_write_paths", "nginx_hardening_read_write_paths", "rollout_stamp_pidfiles",
    "rollout_state_paths", "rollout_stamp_paths",
)
# Host paths that must lie inside another one (variable -> the variable it lies in).
INSIDE = {
    "wsgi_app_current": "wsgi_app_root",
    "wsgi_app_shared": "wsgi_app_root",
    "app_current": "app_root",
    "app_shared": "app_root",
    "app_releases_dir": "app_root",
    "app_venvs_dir": "app_root",
    "app_history_file": "app_root",
    "app_pip_cert_path": "app_root",
    "app_settings_staged": "app_root",
    "app_secret_key_file": "app_shared",
    "app_proxy_static_root": "wsgi_app_root",
    "fleet_run_lock": "fleet_run_dir",
    "fleet_run_ledger": "fleet_run_dir",
}
# The settings file: in the app root (shared/, usually), or in a directory of its own under /etc.
SETTINGS_FILES = {"wsgi_app_settings_file": "wsgi_app_root", "app_settings_file": "app_root"}
# The app root: a directory of its own, never a system directory or one of its direct children
# that the system owns (/srv/<app>, /opt/<app>, /var/www/<app>, /home/<app> are fine).
APP_ROOTS = ("wsgi_app_root", "app_root")
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
                "/run", "/sbin", "/sys", "/tmp", "/usr", "/var/tmp", "/var/lib", "/var/log", "/var/cache",
                "/var/spool", "/var/run", "/var/lock")

# Paths on the controller: resolved there, relative paths allowed (`..` too); they must exist (the
# files check in validate-input.yml) and only control characters are refused here.
CONTROLLER_PATHS = (
    "wsgi_app_src", "app_src", "wsgi_app_artifact", "app_artifact", "wsgi_app_artifact_requirements",
    "app_artifact_requirements", "wsgi_app_git_repo", "app_git_repo", "app_controller_cache_dir",
    "app_wheelhouse_cache_dir", "lb_tls_cert_src", "lb_tls_key_src", "lb_tls_trusted_chain_src",
    "app_pip_cert_src",
)

# What a path on the hosts may be made of: it is written unquoted into units, ini files and nginx.
HOST_PATH_CHARS = re.compile(r"^[A-Za-z0-9._@+/-]+$")

# --- Accounts ----------------------------------------------------------------------------------

# The app's accounts: created by the collection (the base role), never root or a system account.
USER_VARS = ("wsgi_app_user", "app_user", "base_app_user")
GROUP_VARS = ("wsgi_app_group", "app_group", "base_app_group", "wsgi_app_socket_group", "base_socket_group",
              "app_proxy_socket_group", "gunicorn_socket_group")
ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Accounts and groups Debian (base-passwd, adduser, the packages the collection installs) and the
# collection itself (the deploy user, nginx's) hand to something else.
SYSTEM_ACCOUNTS = frozenset(
    "root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats nobody nogroup "
    "_apt adm tty disk kmem dialout fax voice cdrom floppy tape sudo audio dip operator src shadow utmp video "
    "sasl plugdev staff users input sgx kvm render crontab netdev ssl-cert messagebus sshd systemd-journal "
    "systemd-network systemd-resolve systemd-timesync systemd-coredump systemd-oom polkitd syslog uuidd tss "
    "nginx supervisor docker lxd admin wheel ftp postfix postgres mysql redis".split()
)

# --- Names -------------------------------------------------------------------------------------

ENVIRONMENT_VARS = ("wsgi_app_environment", "app_environment")
HOOK_LISTS = ("app_hooks_build", "app_hooks_after_install", "app_hooks_before_switch", "app_hooks_after_switch")
# An HTTP header name as nginx writes it (add_header, *_hide_header): letters, digits and -.
HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
HEADER_VARS = ("wsgi_app_release_header", "rollout_gate_release_header")
HEADER_LISTS = ("lb_hidden_headers", "app_proxy_hidden_headers", "wsgi_app_hidden_headers")
# server_name: host names (RFC 1123 labels), a leading `*.` or `.` wildcard or a trailing `.*`, an
# IP address, `_` (no name), `localhost` (the nginx filters' server_name_ok). No regular
# expressions, nothing nginx would read as syntax (`;`, spaces, braces, quotes, `$`).
SERVER_NAME_LISTS = ("lb_server_names", "app_proxy_server_names")
# URL paths nginx matches in a location: an absolute path of URL characters, no `..` segment, none
# of nginx's syntax (`;`, `{`, `}`, quotes, `$`, spaces).
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!&()*+,=:@%/-]*$")
URL_PREFIXES = ("wsgi_app_url_prefix", "lb_url_prefix", "app_proxy_url_prefix")  # empty, or /path
URL_PATHS = ("wsgi_app_static_url", "wsgi_app_health_path", "app_proxy_static_url", "nginx_status_path",
             "rollout_gate_path")

# --- Ports -------------------------------------------------------------------------------------

# Where the app's instances may not listen: below 1024 (they run unprivileged, and nginx, the lb
# and sshd live there), and on the ports these variables give to nginx, the lb or sshd.
OTHER_PORTS = ("lb_http_port", "lb_https_port", "firewall_ssh_port")

# Strings that may hold any text: they are escaped for their file (python_literal), not refused.
FREE_TEXT = ("app_settings",)
# Names written into config files and unit names, each by its grammar (an inventory's group and
# host names too: they reach nginx's upstreams and the firewall's sets).
_APP_NAME = (re.compile(r"^[a-z][a-z0-9_-]{0,30}$"), "a-z, 0-9, _ or -, starting with a letter, at most 31")
_ENV_NAME = (ENV_NAME_RE, "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
_WORD = (re.compile(r"^[A-Za-z0-9_-]+$"), "letters, digits, _ or -")
_ACCOUNT = (ACCOUNT_RE, "an account name (a-z, 0-9, _ or -)")
_INVENTORY = (re.compile(r"^[A-Za-z0-9_.-]+$"), "inventory names (letters, digits, _ . or -)")
_HOST = (re.compile(r"^[A-Za-z0-9_.:\[\]-]+$"), "host names or addresses (letters, digits, _ . : [ ] or -)")
NAME_RULES = {
    **dict.fromkeys(("wsgi_app_name", "app_name"), _APP_NAME),
    **dict.fromkeys(("wsgi_app_settings_envvar", "app_settings_envvar"), _ENV_NAME),
    **dict.fromkeys(("app_proxy_site_name", "app_proxy_server", "lb_site_name", "supervisord_service_group",
                     "upstart_service_group"), _WORD),
    "systemd_service_target": (re.compile(r"^[A-Za-z0-9_.@-]+$"), "a unit name (letters, digits, _ . @ or -)"),
    **dict.fromkeys(("nginx_user", "app_proxy_nginx_user", "deploy_user_name"), _ACCOUNT),
    **dict.fromkeys(("lb_backend_group", "firewall_lbs", "lb_drained_hosts", "lb_backend_lbs", "fleet_run_groups",
                     "fleet_run_app_group", "fleet_run_lb_group", "fleet_run_host"), _INVENTORY),
    **dict.fromkeys(("lb_backend_host", "app_pip_trusted_hosts"), _HOST),
}
# Where the app role's paths lie when the inventory does not set its own names for them.
DEFAULT_OF = {"app_root": "wsgi_app_root", "app_shared": "wsgi_app_shared"}
# Directories whose default the roles derive from the app's name (their defaults/main.yml), for
# an inventory that sets a path inside them but not them.
DERIVED_DEFAULTS = {"fleet_run_dir": lambda values: f"/var/lib/wsgideploy-fleet/{values.get('wsgi_app_name', 'app')}"}


def _has_control(text: str) -> bool:
    """A control character (C0, DEL, C1) or line separator: it would end or change a line."""
    return control_character(text) is not None


def _show(value: Any) -> str:
    text = repr(value if not isinstance(value, str) else str(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _relative_problem(path: Any, where: str) -> str | None:
    """Why `path` is not a relative path that stays inside `where` (None: it is)."""
    if not isinstance(path, str):
        return f"must be a relative path inside {where}, got {_show(path)}"
    if _has_control(path):
        return f"has a control character: {_show(path)}"
    if path.startswith("/"):
        return f"must be relative to {where}, not absolute: {_show(path)}"
    parts = path.split("/")
    if ".." in parts:
        return f"must stay inside {where} (no '..'): {_show(path)}"
    if not HOST_PATH_CHARS.fullmatch(path):
        return f"may hold letters, digits and . _ @ + - / only (it is written into config files): {_show(path)}"
    if posixpath.normpath(path) in (".", ""):
        return f"must name a path inside {where}, not {where} itself: {_show(path)}"
    return None


def _absolute_problem(path: Any) -> str | None:
    """Why `path` is not a plain absolute path on a host (None: it is)."""
    if not isinstance(path, str):
        return f"must be an absolute path, got {_show(path)}"
    if _has_control(path):
        return f"has a control character: {_show(path)}"
    if not path.startswith("/"):
        return f"must be an absolute path: {_show(path)}"
    if any(part in (".", "..") for part in path.split("/")):
        return f"must be a plain absolute path (no '.' or '..'): {_show(path)}"
    if not HOST_PATH_CHARS.fullmatch(path):
        return f"may hold letters, digits and . _ @ + - / only (it is written into config files): {_show(path)}"
    return None


def _inside(path: str, root: str) -> bool:
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path != root and path.startswith(root.rstrip("/") + "/")


def _strings(value: Any, where: str):
    """(where, string) for every string in value, keys of mappings included."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key, f"{where} key")
            yield from _strings(item, f"{where}[{key!s}]")
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            yield from _strings(item, f"{where}[{n}]")


def _listen_port(listen: Any) -> int | None:
    """The port of an nginx listen argument ('80 default_server', '127.0.0.1:8099', '[::]:443 ssl')."""
    first = str(listen).split()[0] if str(listen).split() else ""
    match = re.search(r"(?:^|:)(\d{1,5})$", first)
    return int(match.group(1)) if match else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def contain_problems(values: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem of the given values, each a sentence that starts with the variable."""
    values = dict(values or {})
    problems: list[str] = []

    def bad(name: str, text: str) -> None:
        problems.append(f"{name} {text}")

    # Control characters: no string that reaches a file may hold one (a newline adds a line).
    derived = ("wsgi_app_server_environment", "wsgi_app_instance_list")
    seen: set[str] = set()  # a value a derived variable repeats is reported once, under its source
    for name in sorted(values, key=lambda name: (name in derived, name)):
        if name in FREE_TEXT or name in CONTROLLER_PATHS:
            continue
        for where, text in _strings(values[name], name):
            if _has_control(text) and not (name in derived and text in seen):
                seen.add(text)
                problems.append(f"{where} has a control character (newline, tab, NUL...), which would end its line "
                                f"in the file it is written to: {_show(text)}")
                break
    for name in CONTROLLER_PATHS:
        if isinstance(values.get(name), str) and _has_control(values[name]):
            bad(name, f"has a control character: {_show(values[name])}")
    for name in FREE_TEXT:
        for where, text in _strings(values.get(name), name):
            if where.endswith(" key") and _has_control(text):
                problems.append(f"{where} has a control character: {_show(text)}")
    if problems:
        # The other rules would only repeat these values.
        return problems

    # Paths inside the release and shared/.
    for name in RELEASE_PATHS:
        value = values.get(name)
        if value is None or value == "" and name == "wsgi_app_static_path":
            continue
        why = _relative_problem(value, "the release")
        if why:
            bad(name, why)
    for name in SHARED_PATH_LISTS:
        for n, item in enumerate(values.get(name) or []):
            why = _relative_problem(item, "shared/")
            if why:
                bad(f"{name}[{n}]", why)
    for name in LINK_LISTS:
        for n, item in enumerate(values.get(name) or []):
            if not isinstance(item, Mapping):
                bad(f"{name}[{n}]", f"must be a mapping with `path` (and `shared`), got {_show(item)}")
                continue
            why = _relative_problem(item.get("path"), "the release")
            if why:
                bad(f"{name}[{n}].path", why)
            if item.get("shared") not in (None, ""):
                why = _relative_problem(item.get("shared"), "shared/")
                if why:
                    bad(f"{name}[{n}].shared", why)

    # Paths on the hosts.
    for name in HOST_PATHS:
        value = values.get(name)
        if value is None or value == "" and name == "app_proxy_static_root":
            continue
        why = _absolute_problem(value)
        if why:
            bad(name, why)
    for name in HOST_PATH_LISTS:
        for n, item in enumerate(values.get(name) or []):
            why = _absolute_problem(item)
            if why:
                bad(f"{name}[{n}]", why)
    if problems:
        return problems
    for name in APP_ROOTS:
        root = values.get(name)
        if root is None:
            continue
        norm = posixpath.normpath(root)
        if norm.count("/") < 2 or any(norm == tree or norm.startswith(tree + "/") for tree in SYSTEM_TREES):
            bad(name, f"must be a directory of the app's own, such as /srv/<app> (not a system directory or one "
                      f"directly under /): {_show(root)}")
    for name, root_name in INSIDE.items():
        path, root = values.get(name), values.get(root_name, values.get(DEFAULT_OF.get(root_name, "")))
        if root is None and root_name in DERIVED_DEFAULTS:
            root = DERIVED_DEFAULTS[root_name](values)
        if path in (None, "") or root is None:
            continue
        if not _inside(path, root):
            bad(name, f"must lie inside {root_name} ({root}): {_show(path)}")
    for name, root_name in SETTINGS_FILES.items():
        path, root = values.get(name), values.get(root_name)
        if path is None:
            continue
        in_root = root is not None and _inside(path, root)
        in_etc = posixpath.normpath(path).startswith("/etc/") and posixpath.normpath(path).count("/") >= 3
        if not (in_root or in_etc):
            bad(name, f"must lie inside the app root ({root}) or in a directory of its own under /etc "
                      f"(/etc/<app>/settings.py): {_show(path)}")

    # Accounts.
    for name in USER_VARS + GROUP_VARS:
        value = values.get(name)
        if value is None:
            continue
        kind = "user" if name in USER_VARS else "group"
        if not isinstance(value, str) or not ACCOUNT_RE.fullmatch(value):
            bad(name, f"must be a {kind} name (a-z, 0-9, _ or -, starting with a letter or _, at most 32), "
                      f"got {_show(value)}")
        elif value in SYSTEM_ACCOUNTS or value == values.get("deploy_user_name") or value == values.get("nginx_user"):
            bad(name, f"is {_show(value)}, a {kind} of the system or of another service: the app runs as "
                      f"accounts the collection creates for it alone")
    for name in HOOK_LISTS:
        for n, hook in enumerate(values.get(name) or []):
            if not isinstance(hook, Mapping):
                continue
            user = hook.get("user")
            if user in (None, ""):
                pass
            elif hook.get("become_root") is True and user == "root":
                pass
            elif user == "root":
                bad(f"{name}[{n}].user", "is root: a hook runs as root only with `become_root: true` (and "
                                         "without `user`)")
            elif user != values.get("app_user", values.get("wsgi_app_user")):
                bad(f"{name}[{n}].user", f"must be the app's user (the default; the only account the collection "
                                         f"makes for it) or, with `become_root: true`, root; got {_show(user)}")
            for key in (hook.get("environment") or {}):
                if not ENV_NAME_RE.fullmatch(str(key)):
                    bad(f"{name}[{n}].environment", f"has a name that is no environment variable name "
                                                    f"([A-Za-z_][A-Za-z0-9_]*): {_show(key)}")
    chown = values.get("uwsgi_chown_socket")
    if isinstance(chown, str) and chown:
        user, _, group = chown.partition(":")
        if user in SYSTEM_ACCOUNTS or group in SYSTEM_ACCOUNTS:
            bad("uwsgi_chown_socket", f"names a system account: {_show(chown)}")

    # Names that reach config files.
    for name, (rule, what) in NAME_RULES.items():
        value = values.get(name)
        for n, item in enumerate(value if isinstance(value, (list, tuple)) else [value]):
            if item is not None and not (isinstance(item, str) and rule.fullmatch(item)):
                where = f"{name}[{n}]" if isinstance(value, (list, tuple)) else name
                bad(where, f"must be {what}, got {_show(item)}")
    for name in ENVIRONMENT_VARS:
        env = values.get(name)
        if isinstance(env, Mapping):
            for key, value in env.items():
                if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
                    bad(name, f"has a name that is no environment variable name ([A-Za-z_][A-Za-z0-9_]*): {_show(key)}")
                elif value is not None and not isinstance(value, (str, int, float, bool)):
                    bad(name, f"value of {key} must be a string or a number, got {_show(value)}")
    for name in HEADER_VARS:
        value = values.get(name)
        if value not in (None, "") and not (isinstance(value, str) and HEADER_RE.fullmatch(value)):
            bad(name, f"must be an HTTP header name (letters, digits and -), got {_show(value)}")
    for name in HEADER_LISTS:
        for n, value in enumerate(values.get(name) or []):
            if not (isinstance(value, str) and HEADER_RE.fullmatch(value)):
                bad(f"{name}[{n}]", f"must be an HTTP header name (letters, digits and -), got {_show(value)}")
    headers = values.get("lb_security_headers")
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if not (isinstance(key, str) and HEADER_RE.fullmatch(key)):
                bad("lb_security_headers", f"key {_show(key)} is not an HTTP header name (letters, digits and -)")
            elif isinstance(value, str) and "$" in value:
                bad("lb_security_headers", f"value of {key} has a $, which nginx reads as a variable: {_show(value)}")
    for name in SERVER_NAME_LISTS:
        for n, value in enumerate(values.get(name) or []):
            if not _server_name_ok(value):
                bad(f"{name}[{n}]", f"must be a host name (RFC 1123, a leading *. or . wildcard), an IP address or "
                                    f"_, got {_show(value)}: nginx would read anything else as its own syntax")
    for name in URL_PREFIXES:
        value = values.get(name)
        if value in (None, ""):
            continue
        if not (isinstance(value, str) and URL_PATH_RE.fullmatch(value)) or value.endswith("/") or "//" in value \
                or any(part in (".", "..") for part in value.split("/")):
            bad(name, f"must be empty or a URL path like /blog (no trailing slash, no '..', none of ; {{ }} $ "
                      f"quotes or spaces), got {_show(value)}")
    for name in URL_PATHS:
        value = values.get(name)
        if value is None:
            continue
        if not (isinstance(value, str) and URL_PATH_RE.fullmatch(value)) or any(p == ".." for p in value.split("/")):
            bad(name, f"must be a URL path starting with / (no '..', none of ; {{ }} $ quotes or spaces), "
                      f"got {_show(value)}")

    problems.extend(_port_problems(values))
    return problems


def _server_name_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and control_character(value) is None and server_name_ok(value)


def _port_problems(values: Mapping[str, Any]) -> list[str]:
    """The app's instances (listen tcp) against the ports of nginx, the lb and sshd on the host."""
    if values.get("wsgi_app_listen", "unix") != "tcp":
        return []
    base, count = _as_int(values.get("wsgi_app_base_port", 8000)), _as_int(values.get("wsgi_app_instances", 1))
    if base is None or count is None or count < 1:
        return []  # the bounds check reports these
    ports = set(range(base, base + count))
    span = f"{base}" if count == 1 else f"{base}-{base + count - 1}"
    problems = []
    if base < 1024:
        problems.append(f"wsgi_app_base_port {base} is a privileged port (below 1024): the app's instances run "
                        f"unprivileged, and nginx, the lb and sshd listen there (wsgi_app_instances: {count}, "
                        f"ports {span})")
        return problems
    taken: dict[int, str] = {22: "sshd"}
    for name in OTHER_PORTS:
        port = _as_int(values.get(name))
        if port is not None:
            taken[port] = name
    # nginx's counters, on loopback (the nginx role's default when it is not set here).
    status = values.get("nginx_status_listen", "127.0.0.1:8099")
    if status is not None and _listen_port(status) is not None:
        taken[_listen_port(status)] = "nginx_status_listen"
    for n, listen in enumerate(values.get("app_proxy_listen") or []):
        port = _listen_port(listen)
        if port is not None:
            taken[port] = f"app_proxy_listen[{n}]"
    for port in sorted(ports & set(taken)):
        problems.append(f"wsgi_app_base_port {base} puts instance {port - base} on port {port}, which "
                        f"{taken[port]} gives to {'sshd' if taken[port] in ('sshd', 'firewall_ssh_port') else 'nginx'} "
                        f"(wsgi_app_instances: {count}, ports {span})")
    return problems


class FilterModule:
    def filters(self):
        return {"contain_problems": contain_problems}
