"""Unit tests of a host's stamp: the inputs digest (plugins/filter/stamp.py) and the
module that writes and checks the stamp (plugins/modules/wsgideploy_stamp.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scriptload import load_module

ROLLOUT = Path(__file__).resolve().parent.parent / "roles" / "rollout"
PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
digest_of = load_module("wsgideploy_filter_stamp", PLUGINS / "filter" / "stamp.py").wsgi_stamp_digest
MODULE = PLUGINS / "modules" / "wsgideploy_stamp.py"


# --- the inputs digest -----------------------------------------------------------------------


class HostVars(dict):
    """Like Ansible's hostvars of a host: values are templated on access, which may fail."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, Exception):
            raise value
        return value


@pytest.fixture
def roles(tmp_path):
    root = tmp_path / "roles"
    for role, option in (("web", "web_port"), ("db", "db_name")):
        (root / role / "meta").mkdir(parents=True)
        (root / role / "meta" / "argument_specs.yml").write_text(
            f"argument_specs:\n  main:\n    options:\n      {option}: {{type: str}}\n"
        )
        (root / role / "defaults").mkdir()
        (root / role / "defaults" / "main.yml").write_text(f"{option}: x\n")
        (root / role / "README.md").write_text("docs\n")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "site.yml").write_text("- hosts: all\n")
    return root


def _digest(roles, host_vars, **kwargs):
    return digest_of(HostVars(host_vars), str(roles), ["web", "db"], trees=[str(roles.parent / "playbooks")], **kwargs)


def test_the_same_inputs_give_the_same_digest(roles):
    assert _digest(roles, {"web_port": "80"}) == _digest(roles, {"web_port": "80"})


def test_a_declared_variable_counts(roles):
    assert _digest(roles, {"web_port": "80"}) != _digest(roles, {"web_port": "81"})
    assert _digest(roles, {}) != _digest(roles, {"db_name": "app"})


def test_what_no_role_declares_does_not_count(roles):
    # Facts, registered results and other roles' variables change from run to run.
    base = _digest(roles, {"web_port": "80"})
    assert _digest(roles, {"web_port": "80", "web_result": {"delta": "0:00:01"}, "ansible_uptime": 5}) == base


def test_the_roles_code_and_the_playbooks_count_but_not_their_readme(roles):
    base = _digest(roles, {})
    (roles / "web" / "README.md").write_text("other docs\n")
    assert _digest(roles, {}) == base
    (roles / "web" / "defaults" / "main.yml").write_text("web_port: y\n")
    changed = _digest(roles, {})
    assert changed != base
    (roles.parent / "playbooks" / "site.yml").write_text("- hosts: web\n")
    assert _digest(roles, {}) != changed


def test_byte_code_does_not_count(roles):
    base = _digest(roles, {})
    (roles / "web" / "__pycache__").mkdir()
    (roles / "web" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert _digest(roles, {}) == base


def test_extra_inputs_count(roles):
    assert _digest(roles, {}, extra={"release": "a"}) != _digest(roles, {}, extra={"release": "b"})


def test_an_excluded_variable_does_not_count_nor_the_file_it_names(roles, tmp_path):
    src = tmp_path / "src.tar"
    src.write_text("one\n")
    base = _digest(roles, {"web_port": str(src), "db_name": "app"}, exclude=["web_port"])
    src.write_text("two\n")
    assert _digest(roles, {"web_port": str(src), "db_name": "app"}, exclude=["web_port"]) == base
    assert _digest(roles, {"web_port": "elsewhere", "db_name": "app"}, exclude=["web_port"]) == base
    assert _digest(roles, {"web_port": "elsewhere", "db_name": "other"}, exclude=["web_port"]) != base


def test_the_content_of_a_controller_file_a_variable_names_counts(roles, tmp_path):
    cert = tmp_path / "ca.pem"
    cert.write_text("one\n")
    base = _digest(roles, {"web_port": str(cert)})
    cert.write_text("two\n")
    assert _digest(roles, {"web_port": str(cert)}) != base


def test_a_value_that_cannot_be_templated_counts_as_its_error(roles):
    bad = _digest(roles, {"web_port": ValueError("'nope' is undefined")})
    assert bad == _digest(roles, {"web_port": ValueError("'nope' is undefined")})
    assert bad != _digest(roles, {"web_port": "80"})


def test_an_unknown_role_is_refused(roles):
    with pytest.raises(ValueError, match="no role 'cache'"):
        digest_of(HostVars(), str(roles), ["cache"])


def test_the_digest_does_not_depend_on_where_the_roles_are(roles, tmp_path):
    moved = tmp_path / "elsewhere"
    for tree in ("roles", "playbooks"):
        shutil.copytree(roles.parent / tree, moved / tree)
    assert _digest(roles, {}) == digest_of(
        HostVars(), str(moved / "roles"), ["web", "db"], trees=[str(moved / "playbooks")]
    )


# --- the module ------------------------------------------------------------------------------


def _run(tmp_path, check_mode=False, **args):
    argsfile = tmp_path / "args.json"
    argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}))
    proc = subprocess.run([sys.executable, str(MODULE), str(argsfile)], capture_output=True, text=True, check=False)
    result = json.loads(proc.stdout)
    assert not result.get("failed"), result
    return result


@pytest.fixture
def host(tmp_path):
    etc = tmp_path / "etc"
    (etc / "app").mkdir(parents=True)
    (etc / "app" / "a.ini").write_text("a\n")
    (etc / "units").mkdir()
    (etc / "units" / "app-0.service").write_text("[Service]\n")
    os.symlink("releases/r1", tmp_path / "current")
    pidfile = tmp_path / "nginx.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    return {
        "stamp": str(tmp_path / "state" / "stamp.json"),
        "paths": [str(etc / "app"), str(etc / "units" / "app-*.service"), str(tmp_path / "current"), str(tmp_path / "gone")],
        "pidfiles": [str(pidfile)],
        "probe": ["/bin/true"],
        "root": tmp_path,
    }


def _write(tmp_path, host, digest="d1", **overrides):
    args = {"path": host["stamp"], "state": "write", "digest": digest, "paths": host["paths"],
            "pidfiles": host["pidfiles"], "probe": host["probe"]}
    return _run(tmp_path, **{**args, **overrides})


def _check(tmp_path, host, digest="d1", **extra):
    return _run(tmp_path, path=host["stamp"], state="check", digest=digest, **extra)


def test_a_host_without_a_stamp_is_not_current(tmp_path, host):
    result = _check(tmp_path, host)
    assert not result["current"] and "no stamp" in result["reason"] and not result["changed"]


def test_a_stamped_host_is_current_and_a_second_write_changes_nothing(tmp_path, host):
    assert _write(tmp_path, host)["changed"]
    assert oct(os.stat(host["stamp"]).st_mode & 0o777) == "0o600"
    assert _check(tmp_path, host)["current"]
    assert not _write(tmp_path, host)["changed"]


def test_write_in_check_mode_writes_nothing(tmp_path, host):
    assert _write(tmp_path, host, check_mode=True)["changed"]
    assert not os.path.exists(host["stamp"])


def test_other_inputs_make_the_host_not_current(tmp_path, host):
    _write(tmp_path, host)
    result = _check(tmp_path, host, digest="d2")
    assert not result["current"] and "inputs changed" in result["reason"]


@pytest.mark.parametrize(
    "drift",
    [
        lambda root: (root / "etc" / "app" / "a.ini").write_text("b\n"),
        lambda root: (root / "etc" / "app" / "a.ini").chmod(0o600),
        lambda root: (root / "etc" / "app" / "new.ini").write_text("n\n"),
        lambda root: (root / "etc" / "units" / "app-1.service").write_text("[Service]\n"),
        lambda root: (root / "etc" / "units" / "app-0.service").unlink(),
        lambda root: ((root / "current").unlink(), os.symlink("releases/r2", root / "current")),
        lambda root: (root / "gone").write_text("here\n"),
    ],
    ids=["content", "mode", "new-file-in-dir", "new-glob-match", "removed", "link-target", "absent-appears"],
)
def test_a_recorded_path_that_changed_makes_the_host_not_current(tmp_path, host, drift):
    _write(tmp_path, host)
    drift(host["root"])
    result = _check(tmp_path, host)
    assert not result["current"] and "is not as the last run left it" in result["reason"]


def test_a_process_that_does_not_run_makes_the_host_not_current(tmp_path, host):
    _write(tmp_path, host)
    Path(host["pidfiles"][0]).write_text("999999999\n")
    result = _check(tmp_path, host)
    assert not result["current"] and "does not run" in result["reason"]


def test_a_failing_probe_makes_the_host_not_current(tmp_path, host):
    _write(tmp_path, host, probe=["/bin/sh", "-c", "echo instance down; exit 1"])
    result = _check(tmp_path, host)
    assert not result["current"] and "instance down" in result["reason"]


def test_a_missing_probe_command_makes_the_host_not_current(tmp_path, host):
    _write(tmp_path, host, probe=[str(tmp_path / "no-such-helper")])
    result = _check(tmp_path, host)
    assert not result["current"] and "is missing" in result["reason"]


# --- a new release alone: the base --------------------------------------------------------------

FACTS = {"instances": [{"name": "app-0", "listen": "/run/app-0/socket"}], "server_live_paths": ["/etc/uwsgi/app"]}


def test_a_new_release_alone_keeps_the_base_current_and_returns_the_recorded_facts(tmp_path, host):
    _write(tmp_path, host, digest="d1", base_digest="b1", facts=FACTS)
    result = _check(tmp_path, host, digest="d2", base_digest="b1")
    assert not result["current"] and result["base_current"], result
    assert "new release" in result["reason"] and result["facts"] == FACTS


def test_a_current_host_has_a_current_base_too(tmp_path, host):
    _write(tmp_path, host, digest="d1", base_digest="b1", facts=FACTS)
    result = _check(tmp_path, host, digest="d1", base_digest="b1")
    assert result["current"] and result["base_current"] and result["facts"] == FACTS


@pytest.mark.parametrize("base", ["b2", ""], ids=["other-base", "no-base-given"])
def test_other_inputs_besides_the_release_make_the_base_not_current(tmp_path, host, base):
    _write(tmp_path, host, digest="d1", base_digest="b1", facts=FACTS)
    result = _check(tmp_path, host, digest="d2", base_digest=base)
    assert not result["current"] and not result["base_current"] and result["facts"] == {}
    assert "inputs changed" in result["reason"]


def test_a_stamp_without_a_base_vouches_for_no_base(tmp_path, host):
    _write(tmp_path, host, digest="d1")
    result = _check(tmp_path, host, digest="d2", base_digest="")
    assert not result["base_current"]


def test_drift_makes_the_base_not_current_either(tmp_path, host):
    _write(tmp_path, host, digest="d1", base_digest="b1", facts=FACTS)
    (host["root"] / "etc" / "app" / "a.ini").write_text("edited\n")
    result = _check(tmp_path, host, digest="d2", base_digest="b1")
    assert not result["current"] and not result["base_current"] and result["facts"] == {}
    assert "is not as the last run left it" in result["reason"]
