"""lb_left_down(items, drained_by_lb, host): of the upstream files (lb_backend's loop items,
[find result of an lb, file]) whose servers were all down already when a run came to drain
`host`, those an operator did not drain (the host is not in that lb's list of drained hosts,
drained_by_lb: {lb: [hosts]}): a run that was killed between its drain and its undrain left them
down, and the run that now holds the lock puts them back after its switch (roles/lb_backend).
"""

from __future__ import annotations


def lb_left_down(items, drained_by_lb, host):
    drained_by_lb = drained_by_lb or {}
    return [item for item in items or []
            if host not in (drained_by_lb.get(item[0].get("lb_backend_lb"), []) or [])]


class FilterModule:
    def filters(self):
        return {"lb_left_down": lb_left_down}
