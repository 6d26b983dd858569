"""Filters shared by the wsgideploy roles.

wsgi_instances: the app server processes of one host, derived from the app definition, so the app
server, the process manager, the app host's nginx and the load balancer agree on names and addresses.

python_literal: a value rendered as a Python literal, for the app's Python settings file.
python_identifier: a name assigned in such a file (settings, Gunicorn's config), refused unless it
is a Python identifier that is not a keyword.

wsgi_release_stack, wsgi_rollback_release, wsgi_releases_to_keep: the activation history of a
host's releases (oldest first; each release that passed the health gate), what a rollback picks
from it, and which releases pruning keeps.

wsgi_upstream_servers: a load balancer's upstream servers over a group of app hosts (one per host,
or one per instance), from each host's inventory values.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")


def _integer(variable: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{variable} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{variable} must be an integer, got {value!r}") from None


def _bracket(address: str) -> str:
    """IPv6 literals take brackets before a :port."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def wsgi_instances(
    name: str,
    count: int,
    listen: str = "unix",
    base_port: int = 8000,
    bind_address: str = "127.0.0.1",
) -> list[dict[str, Any]]:
    """Describe the app server instances of one host.

    Each item: index, name (`<app>-<n>`), runtime_dir (under /run), listen (what the app server
    binds: a socket path or host:port), port (tcp only), and nginx (the address nginx proxies to).
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"wsgi_app_name {name!r}: use 1-31 of a-z, 0-9, '_' or '-', starting with a letter")
    count = _integer("wsgi_app_instances", count)
    base_port = _integer("wsgi_app_base_port", base_port)
    if not 1 <= count <= 64:
        raise ValueError(f"wsgi_app_instances must be between 1 and 64, got {count}")
    if listen not in ("unix", "tcp"):
        raise ValueError(f"wsgi_app_listen must be 'unix' or 'tcp', got {listen!r}")
    if listen == "tcp" and not 1 <= base_port <= 65535 - count + 1:
        raise ValueError(f"wsgi_app_base_port {base_port} leaves no room for {count} instance(s)")

    items = []
    for index in range(count):
        inst = f"{name}-{index}"
        item: dict[str, Any] = {"index": index, "name": inst, "runtime_dir": inst}
        if listen == "unix":
            sock = f"/run/{inst}/app.sock"
            item.update(listen=sock, port=None, nginx=f"unix:{sock}")
        else:
            port = base_port + index
            # nginx on the same host reaches a wildcard bind through loopback.
            local = "127.0.0.1" if bind_address in ("0.0.0.0", "::", "*") else bind_address
            item.update(listen=f"{_bracket(bind_address)}:{port}", port=port, nginx=f"{_bracket(local)}:{port}")
        items.append(item)
    return items


def python_literal(value: Any) -> str:
    """Render a YAML/JSON-ish value as a Python literal (True/False/None, not true/false/null).

    Ansible hands over its own subclasses of str/int/dict/list; they are normalised first.
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        value = float(value)
        # inf and nan have no literal: spell them as calls the settings file can evaluate.
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(str(k))}: {python_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    raise TypeError(f"python_literal: cannot render {type(value).__name__} as a Python literal")


def python_identifier(value: Any, variable: str = "name") -> str:
    """value as it is, refused unless it is a Python identifier (and not a keyword): the name of
    an assignment `name = <python_literal>`."""
    text = str(value)
    if not text.isidentifier() or keyword.iskeyword(text) or not text.isascii():
        raise ValueError(f"{variable}: {value!r} is not a Python identifier (ASCII letters, digits and '_', not a keyword)")
    return text


def wsgi_release_stack(stack: list[str], release: str, rollback: bool = False) -> list[str]:
    """The activation history after `release` passed the gate.

    A deploy puts the release on top (an earlier activation of the same release moves up). A
    rollback steps back: the history is cut after the release's last activation, so a second
    rollback goes one release further back; a rollback to a release never activated here is
    pushed like a deploy.
    """
    stack = [str(r) for r in stack or []]
    release = str(release)
    if rollback and release in stack:
        return stack[: len(stack) - stack[::-1].index(release)]
    return [r for r in stack if r != release] + [release]


def wsgi_rollback_release(stack: list[str], active: str = "") -> str:
    """The release a rollback picks: the one activated before the active one ('' if none)."""
    stack = [str(r) for r in stack or []]
    if stack and stack[-1] == active:
        stack = stack[:-1]
    below = [r for r in stack if r != active]
    return below[-1] if below else ""


def wsgi_releases_to_keep(stack: list[str], keep: int, also: list[str] | None = None) -> list[str]:
    """The releases pruning keeps: the `keep` most recently activated ones, the one a rollback
    would pick from there, and `also` (the new release, the one active before the run)."""
    keep = _integer("app_keep_releases", keep)
    if keep < 1:
        raise ValueError(f"app_keep_releases must be at least 1, got {keep}")
    stack = [str(r) for r in stack or []]
    kept = stack[-keep:]
    target = wsgi_rollback_release(stack, stack[-1] if stack else "")
    return list(dict.fromkeys(kept + ([target] if target else []) + [str(r) for r in also or [] if r]))


def wsgi_server_units(
    instances: list[dict[str, Any]],
    *,
    label: str,
    command: str,
    common: dict[str, Any],
    signals: dict[str, str],
    stop_command: str = "",
    reload_command: str = "",
    socket_system_calls: list[str] | None = None,
    changed: list[str] | None = None,
) -> list[dict[str, Any]]:
    """What the process manager runs for each app server instance of a host: the contract every
    app server role hands over (systemd_service's `systemd_service_instances` documents it).

    common: app, current, user, group, shared, environment (the same for every instance).
    command, stop_command, reload_command: formats with {name}, {index}, {run} (the runtime dir
    under /run) and {current}. signals: stop, graceful_stop, reload. socket_system_calls: system
    calls an instance on a unix socket needs (to hand the socket to the socket group).
    """
    changed_names = set(changed or [])
    units = []
    for inst in instances:
        fields = {"name": inst["name"], "index": inst["index"], "run": f"/run/{inst['runtime_dir']}",
                  "current": common["current"]}
        unit: dict[str, Any] = {
            "name": inst["name"],
            "description": f"{common['app']} {label} instance {inst['index']}",
            "command": command.format(**fields),
            "user": common["user"],
            "group": common["group"],
            "working_dir": common["current"],
            "runtime_dir": inst["runtime_dir"],
            "listen": inst["listen"],
            "environment": {**{str(k): str(v) for k, v in common["environment"].items()}, "APP_INSTANCE": inst["name"]},
            "notify": True,
            "stop_signal": signals["stop"],
            "graceful_stop_signal": signals["graceful_stop"],
            "reload_signal": signals["reload"],
            "read_write_paths": [common["shared"]],
            "config_changed": inst["name"] in changed_names,
        }
        if stop_command:
            unit["stop_command"] = stop_command.format(**fields)
        if reload_command:
            unit["reload_command"] = reload_command.format(**fields)
        if str(inst["listen"]).startswith("/"):
            # nginx reaches the socket in it: others may traverse, not list.
            unit["runtime_dir_mode"] = "0751"
            if socket_system_calls:
                unit["system_calls"] = list(socket_system_calls)
        units.append(unit)
    return units


# The app definition's variables wsgi_upstream_servers reads on each app host (inventory values; a
# host without one takes the load balancer's value, handed over in `defaults`).
_UPSTREAM_APP_KEYS = ("wsgi_app_name", "wsgi_app_instances", "wsgi_app_listen", "wsgi_app_base_port",
                      "wsgi_app_bind_address")


def wsgi_upstream_servers(
    hosts: list[str],
    hostvars: Any,
    topology: str,
    defaults: dict[str, Any],
    drained: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One item per upstream server of a load balancer: each app host (topology `host`, on
    defaults['port']) or each of its app server instances (`process`, on the instance's port).

    Each item: host, instance (None for a host), ip, port, weight, backup, max_fails, fail_timeout,
    down. Per-host inventory values: lb_backend_address (else the host's default IPv4 fact),
    lb_weight, lb_backup, lb_max_fails, lb_fail_timeout, lb_drain, and the app definition's
    instances. defaults: port, max_fails, fail_timeout and the app definition's values. drained:
    hosts marked down on this load balancer. ip and port are None where unknown: the caller says
    which host lacks them.
    """
    if topology not in ("host", "process"):
        raise ValueError(f"lb_topology must be 'host' or 'process', got {topology!r}")
    drained_hosts = {str(h) for h in drained or []}
    servers = []
    for host in hosts:
        hv = hostvars[host]

        def value(key: str, default: Any, hv=hv) -> Any:
            return hv[key] if key in hv else default

        address = value("lb_backend_address", None)
        if address is None:
            facts = value("ansible_facts", None) or {}
            address = (value("ansible_default_ipv4", None) or facts.get("default_ipv4") or {}).get("address")
        common = {
            "host": str(host),
            "ip": str(address) if address is not None else None,
            "weight": _integer("lb_weight", value("lb_weight", 1)),
            "backup": _boolean("lb_backup", value("lb_backup", False)),
            "max_fails": _integer("lb_max_fails", value("lb_max_fails", defaults["max_fails"])),
            "fail_timeout": str(value("lb_fail_timeout", defaults["fail_timeout"])),
            "down": _boolean("lb_drain", value("lb_drain", False)) or str(host) in drained_hosts,
        }
        if topology == "host":
            servers.append({**common, "instance": None, "port": _integer("lb_backend_port", defaults["port"])})
            continue
        app = {key: value(key, defaults[key]) for key in _UPSTREAM_APP_KEYS}
        for inst in wsgi_instances(app["wsgi_app_name"], app["wsgi_app_instances"], app["wsgi_app_listen"],
                                   app["wsgi_app_base_port"], app["wsgi_app_bind_address"]):
            servers.append({**common, "instance": inst["name"], "port": inst["port"]})
    return servers


def _boolean(variable: str, value: Any) -> bool:
    """Ansible's own booleans (yes/no, on/off, 1/0...); an empty string is false, as `| bool` has it."""
    if isinstance(value, str) and not value.strip():
        return False
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise ValueError(f"{variable} must be a boolean, got {value!r}") from None


class FilterModule:
    def filters(self):
        return {
            "wsgi_server_units": wsgi_server_units,
            "wsgi_instances": wsgi_instances,
            "python_literal": python_literal,
            "python_identifier": python_identifier,
            "wsgi_release_stack": wsgi_release_stack,
            "wsgi_rollback_release": wsgi_rollback_release,
            "wsgi_releases_to_keep": wsgi_releases_to_keep,
            "wsgi_upstream_servers": wsgi_upstream_servers,
        }
