"""Unit tests of plugins/filter/systemctl.py."""

from __future__ import annotations

from pathlib import Path

from scriptload import load_module

PATH = Path(__file__).resolve().parent.parent / "plugins" / "filter" / "systemctl.py"
systemctl = load_module("wsgideploy_filter_systemctl", PATH)

# What systemd 252 (Debian 12) prints for two instances, one not loaded, and the target.
SHOW = """Id=hello-0.service
ActiveState=active
UnitFileState=enabled

Id=hello-1.service
ActiveState=inactive
UnitFileState=

Id=hello.target
ActiveState=active
UnitFileState=enabled
"""


def test_one_dict_per_unit_in_order():
    units = systemctl.systemctl_show_units(SHOW)
    assert units == [
        {"Id": "hello-0.service", "ActiveState": "active", "UnitFileState": "enabled"},
        {"Id": "hello-1.service", "ActiveState": "inactive", "UnitFileState": ""},
        {"Id": "hello.target", "ActiveState": "active", "UnitFileState": "enabled"},
    ]


def test_values_with_equals_signs_and_empty_output():
    assert systemctl.systemctl_show_units("Id=a.service\nDescription=x=y\n") == [{"Id": "a.service", "Description": "x=y"}]
    assert systemctl.systemctl_show_units("") == []
    assert systemctl.systemctl_show_units(None) == []


def test_filter_module_maps_the_name():
    assert systemctl.FilterModule().filters() == {"systemctl_show_units": systemctl.systemctl_show_units}
