"""Make the shared molecule test helpers importable; keep each fleet's tests on one xdist worker;
print the measured figures at the end."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

from wsgideploy_testlib import figures_summary  # noqa: E402

# The fleet each test file works on. The two fleets share no host, so their tests run side by side
# (molecule.yml: two xdist workers); the tests of one fleet run on one worker, in file order.
FLEET_OF_FILE = {"test_cluster.py": "hello", "test_deploy.py": "hello", "test_guestbook.py": "guestbook"}


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class FleetScheduling(LoadScopeScheduling):
        """xdist's scope scheduling, with a test file's fleet as its scope."""

        def _split_scope(self, nodeid: str) -> str:
            name = os.path.basename(nodeid.split("::", 1)[0])
            return FLEET_OF_FILE.get(name, name)

    return FleetScheduling(config, log)


def pytest_terminal_summary(terminalreporter):
    # In the run's log (CI keeps it): molecule removes its ephemeral directory with the hosts.
    text = figures_summary()
    if text:
        terminalreporter.write_sep("=", "measured figures")
        terminalreporter.write_line(text)
