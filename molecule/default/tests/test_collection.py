"""The project as a collection another project uses: `ansible-galaxy collection build` makes the
tarball, a separate project (consumer/: its own ansible.cfg, inventory, playbook and app) installs
it from its requirements.yml and deploys its app with `wsgideploy.fleet.site` and the roles by
FQCN, onto the scenario's bare host (Runs after test_check_mode_bare.py, which needs it bare.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from wsgideploy_testlib import recap, scenario_host

BARE = "wsgideploy-default-bare"
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
CONSUMER = PROJECT / "molecule" / "default" / "consumer"
TITLE = "Notes, deployed from the collection"
# What the collection holds, and what it must not.
MUST_HOLD = ["MANIFEST.json", "meta/runtime.yml", "playbooks/site.yml", "playbooks/deploy.yml", "playbooks/rollback.yml",
             "roles/app/tasks/main.yml", "roles/nginx/meta/argument_specs.yml", "plugins/filter/wsgi_app.py",
             "plugins/modules/wsgideploy_stamp.py"]
MUST_NOT_HOLD = ("tests/", "molecule/", "app/", "guestbook/", "inventories/", "scripts/", "collections/", ".venv/",
                 ".cache/", ".git/", "requirements/", "playbooks/local-cluster.yml", "bench-results.json")


def tool(name: str) -> str:
    """An Ansible command of the running interpreter's environment."""
    return str(Path(sys.executable).parent / name)


def run(cwd: Path, *argv: str, timeout: int = 1500) -> tuple[int, str]:
    """A command as the other project runs it: its own ansible.cfg (no ANSIBLE_* of the scenario)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(the other project's directory with the collection installed, the tarball)."""
    work = tmp_path_factory.mktemp("collection")
    rc, out = run(work, tool("ansible-galaxy"), "collection", "build", "--output-path", str(work / "dist"), str(PROJECT))
    assert rc == 0, out
    (tarball,) = (work / "dist").glob("wsgideploy-fleet-*.tar.gz")
    project = work / "notes-infra"
    shutil.copytree(CONSUMER, project)
    shutil.copy(tarball, project / "wsgideploy-fleet.tar.gz")
    rc, out = run(project, tool("ansible-galaxy"), "collection", "install", "-r", "requirements.yml")
    assert rc == 0, out
    return project, tarball


@pytest.fixture(scope="module")
def deployed(built) -> str:
    project, _ = built
    rc, out = run(project, tool("ansible-playbook"), "site.yml")
    assert rc == 0, out[-6000:]
    return out


def test_the_tarball_holds_roles_playbooks_and_plugins_and_nothing_else(built):
    _, tarball = built
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert {"namespace": "wsgideploy", "name": "fleet"}.items() <= manifest["collection_info"].items()
    missing = [name for name in MUST_HOLD if name not in names]
    assert not missing, missing
    stray = [n for n in names if n.startswith(MUST_NOT_HOLD) or "__pycache__" in n or n.endswith(".pyc")]
    assert not stray, stray


def test_requirements_installed_it_into_the_other_project(built):
    project, _ = built
    installed = project / "collections" / "ansible_collections" / "wsgideploy" / "fleet"
    assert json.loads((installed / "MANIFEST.json").read_text())["collection_info"]["version"]
    assert (installed / "playbooks" / "site.yml").is_file() and not (installed / "tests").exists()


def test_the_other_project_deploys_its_own_app_with_it(deployed):
    host = scenario_host(BARE)
    # Its app, under Gunicorn, through the host's nginx, with the settings from its inventory.
    assert TITLE in host.check_output("curl -sf http://127.0.0.1/")
    masters = [line for line in host.check_output("ps -eo user:32=,args=").splitlines() if "gunicorn" in line]
    assert masters and all(line.split()[0] == "notes" for line in masters), masters
    # The roles by FQCN read the same host: the release they report is the one current names.
    active = host.check_output("basename $(readlink -f /srv/notes/current)")
    assert f"notes active release: {active}" in deployed, deployed[-3000:]


def test_a_second_run_from_the_other_project_is_one_check(built, deployed):
    project, _ = built
    rc, out = run(project, tool("ansible-playbook"), "site.yml")
    assert rc == 0, out[-6000:]
    assert recap(out)[BARE]["changed"] == 0, out[-3000:]
    assert "Is the host as the last successful run left it" in out and "TASK [wsgideploy.fleet.base : " not in out, out[-3000:]
