"""gunicorn_units: what the process manager runs for each Gunicorn instance of a host.

The contract every app server role hands to the process manager role (systemd_service's
`systemd_service_instances` documents it): one item per instance with its command line, user,
directories, environment, and how to stop and reload it. Built here as data, not as YAML text.
"""

from __future__ import annotations

from typing import Any


def gunicorn_units(
    instances: list[dict[str, Any]],
    *,
    app: str,
    current: str,
    config_dir: str,
    user: str,
    group: str,
    shared: str,
    environment: dict[str, Any],
    changed: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One process-manager item per instance (`changed`: names whose config file changed)."""
    changed_names = set(changed or [])
    units = []
    for inst in instances:
        unix = str(inst["listen"]).startswith("/")
        unit: dict[str, Any] = {
            "name": inst["name"],
            "description": f"{app} Gunicorn instance {inst['index']}",
            # The arbiter starts from the release's virtualenv; its config names the entry point.
            "command": f"{current}/venv/bin/gunicorn --config {config_dir}/{inst['name']}.conf.py",
            "user": user,
            "group": group,
            "working_dir": current,
            "runtime_dir": inst["runtime_dir"],
            "listen": inst["listen"],
            "environment": {**{str(k): str(v) for k, v in environment.items()}, "APP_INSTANCE": inst["name"]},
            # Gunicorn tells systemd when it is ready (NOTIFY_SOCKET).
            "notify": True,
            # SIGTERM: graceful (in-flight requests get graceful_timeout); SIGHUP: new workers
            # on the re-read config and the release current names, the old ones finish first.
            "stop_signal": "SIGTERM",
            "graceful_stop_signal": "SIGTERM",
            "reload_signal": "SIGHUP",
            "read_write_paths": [shared],
            "config_changed": inst["name"] in changed_names,
        }
        if unix:
            # nginx reaches the socket in it: others may traverse, not list. The arbiter hands
            # the socket to the socket group (chown) once it is bound.
            unit["runtime_dir_mode"] = "0751"
            unit["system_calls"] = ["@chown"]
        units.append(unit)
    return units


class FilterModule:
    def filters(self):
        return {"gunicorn_units": gunicorn_units}
