"""systemctl_show_units: the output of `systemctl show --property=... UNIT...` as one dict per unit
(systemctl prints a block of key=value lines per unit, blocks separated by an empty line)."""

from __future__ import annotations


def systemctl_show_units(text: str) -> list[dict[str, str]]:
    units = []
    for block in str(text or "").split("\n\n"):
        unit = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if unit:
            units.append(unit)
    return units


class FilterModule:
    def filters(self):
        return {"systemctl_show_units": systemctl_show_units}
