"""uwsgi_units: what the process manager runs for each uWSGI instance of a host.

The contract every app server role hands to the process manager role (systemd_service's
`systemd_service_instances` documents it), built as data, not as YAML text.
"""

from __future__ import annotations

from typing import Any


def uwsgi_units(
    instances: list[dict[str, Any]],
    *,
    app: str,
    current: str,
    config_dir: str,
    user: str,
    group: str,
    shared: str,
    environment: dict[str, Any],
    chown_socket: bool = True,
    chain_reload: dict[str, Any] | None = None,
    changed: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One process-manager item per instance. chain_reload: {helper, stats, timeout} to reload
    worker by worker; changed: names whose ini changed."""
    changed_names = set(changed or [])
    units = []
    for inst in instances:
        name, run = inst["name"], f"/run/{inst['runtime_dir']}"
        ini = f"{config_dir}/{name}.ini"
        unit: dict[str, Any] = {
            "name": name,
            "description": f"{app} uWSGI instance {inst['index']}",
            "command": f"{current}/venv/bin/uwsgi --ini {ini}",
            "user": user,
            "group": group,
            "working_dir": current,
            "runtime_dir": inst["runtime_dir"],
            "listen": inst["listen"],
            "environment": {**{str(k): str(v) for k, v in environment.items()}, "APP_INSTANCE": name},
            "notify": True,
            # Graceful: in-flight requests finish. The stop signal ends whatever is left after the timeout.
            "stop_command": f"echo q > {run}/master.fifo",
            "stop_signal": "SIGINT",
            # For process managers that stop with a signal only (the ini maps SIGTERM to a
            # graceful shutdown).
            "graceful_stop_signal": "SIGTERM",
            "reload_signal": "SIGHUP",
            "read_write_paths": [shared],
            "config_changed": name in changed_names,
        }
        if str(inst["listen"]).startswith("/"):
            # nginx reaches the socket in it: others may traverse, not list (stats socket, FIFO: app only).
            unit["runtime_dir_mode"] = "0751"
            if chown_socket:
                unit["system_calls"] = ["@chown"]  # chown-socket hands the socket to the socket group
        if chain_reload:
            # Worker by worker; gracefully (SIGHUP) when the ini or the release's virtualenv changed.
            unit["reload_command"] = " ".join(
                [chain_reload["helper"], "--pid $MAINPID", f"--fifo {run}/master.fifo", f"--stamp {run}/master.started",
                 f"--ini {ini}", f"--venv {current}/venv"]
                + ([f"--stats {run}/stats.sock"] if chain_reload.get("stats") else [])
                + [f"--timeout {chain_reload['timeout']}"]
            )
        units.append(unit)
    return units


class FilterModule:
    def filters(self):
        return {"uwsgi_units": uwsgi_units}
