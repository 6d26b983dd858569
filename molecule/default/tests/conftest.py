"""Make the shared molecule test helpers importable; the molecule_env fixture; print the measured
figures at the end."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

from wsgideploy_testlib import figures_summary  # noqa: E402


@pytest.fixture(scope="module")
def molecule_env():
    """Tests that run ansible-playbook with molecule's own inventory and environment."""
    if "MOLECULE_INVENTORY_FILE" not in os.environ:
        pytest.skip("needs molecule's environment")


def pytest_terminal_summary(terminalreporter):
    # In the run's log (CI keeps it): molecule removes its ephemeral directory with the hosts.
    text = figures_summary()
    if text:
        terminalreporter.write_sep("=", "measured figures")
        terminalreporter.write_line(text)
