"""The settings candidate's `validate:` command (roles/app/tasks/settings.yml) refuses a file that
does not compile, and names app_settings; a good file passes."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

TASKS = Path(__file__).resolve().parent.parent / "roles" / "app" / "tasks" / "settings.yml"


def validate_argv(path: Path) -> list[str]:
    task = next(t for t in yaml.safe_load(TASKS.read_text()) if "validate" in t.get("ansible.builtin.template", {}))
    command = task["ansible.builtin.template"]["validate"].replace("{{ app_python }}", sys.executable)
    # Ansible splits the validate command like a shell line and runs it without a shell.
    return shlex.split(command.replace("%s", shlex.quote(str(path))))


def run(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "settings.py"
    path.write_text(text)
    return subprocess.run(validate_argv(path), capture_output=True, text=True, check=False)


def test_a_candidate_that_compiles_passes(tmp_path):
    assert run(tmp_path, "SECRET_KEY_FILE = '/srv/x/secret'\nGREETING = 'hi'\n").returncode == 0


def test_a_candidate_that_does_not_compile_is_refused_naming_app_settings(tmp_path):
    for text in ("bad key = 1\n", "class = 1\n", "GREETING = 'unterminated\n"):
        result = run(tmp_path, text)
        assert result.returncode != 0, text
        assert "SyntaxError" in result.stderr and "app_settings" in result.stderr, result.stderr
