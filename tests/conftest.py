"""Shared fixtures of the controller-side tests: the project root and a fenced-in way to run Ansible.

Tests that start Ansible carry the `ansible` marker (`pytest -m "not ansible"` skips them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Extra vars of every Ansible run started through the `ansible` fixture. Extra vars beat inventory
# and apply to every host, the implicit localhost of `delegate_to: localhost` included: with this
# interpreter no module code runs anywhere. Action plugins that work on the controller alone
# (validate_argument_spec, assert, debug, set_fact) still run; the first real module task fails with
# rc 1 having done nothing, and the host leaves the play.
NO_MODULES = {"ansible_python_interpreter": "/bin/false"}


# Lines a test asks to show at the end of the run (the `terminal_summary` fixture), shown with -q too.
SUMMARY = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ansible: starts ansible or ansible-playbook (a few seconds each)")
    config.stash[SUMMARY] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def terminal_summary(pytestconfig: pytest.Config) -> list[str]:
    """A list whose lines are shown at the end of the test run."""
    return pytestconfig.stash[SUMMARY]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@dataclass
class AnsibleRunner:
    """Runs an Ansible command from the project root with a hermetic environment.

    Every file Ansible writes lands under `tmp`: HOME (Ansible's home and local temp, the app
    role's controller cache under ~/.cache) and the remote temp of the local connection, which
    Ansible would otherwise put below the passwd home of the user (`echo ~root`). No ANSIBLE_*
    setting leaks in from the caller; the project's ansible.cfg applies. Facts are not gathered:
    gathering runs a module, which NO_MODULES forbids, and the play needs no facts to validate.
    """

    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        home = self.tmp / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            HOME=str(home),
            ANSIBLE_CONFIG=str(PROJECT_ROOT / "ansible.cfg"),
            ANSIBLE_HOME=str(home / ".ansible"),
            ANSIBLE_LOCAL_TEMP=str(self.tmp / "local-tmp"),
            ANSIBLE_REMOTE_TEMP=str(self.tmp / "remote-tmp"),
            ANSIBLE_GATHERING="explicit",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            PYTHONDONTWRITEBYTECODE="1",  # no __pycache__ beside the roles' filter plugins
        )
        return env

    @staticmethod
    def command(name: str) -> Path:
        """An Ansible entry point: the project's venv first, then beside the running interpreter."""
        for bindir in (PROJECT_ROOT / ".venv" / "bin", Path(sys.executable).parent):
            candidate = bindir / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        pytest.skip(f"{name} is neither in {PROJECT_ROOT / '.venv' / 'bin'} nor beside {sys.executable}")

    def __call__(
        self, tool: str, *args: str | os.PathLike, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.command(tool)), *map(str, args), "-e", json.dumps(NO_MODULES)]
        return subprocess.run(
            argv,
            cwd=PROJECT_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="session")
def ansible_runner_class() -> type[AnsibleRunner]:
    """The runner itself, for a session fixture that makes its own (the name `conftest` is not
    importable where other test directories have one too)."""
    return AnsibleRunner


@pytest.fixture
def ansible(tmp_path: Path) -> AnsibleRunner:
    """`ansible("ansible-playbook", *args)`: a CompletedProcess; see AnsibleRunner."""
    return AnsibleRunner(tmp_path / "ansible")
