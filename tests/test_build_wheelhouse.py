"""build_wheelhouse.py: which wheels it asks pip for, and reuse of a complete wheelhouse."""

from __future__ import annotations

from pathlib import Path

import pytest
from scriptload import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "app" / "files" / "build_wheelhouse.py"
wheelhouse = load_module("wsgideploy_build_wheelhouse", SCRIPT)


def test_platforms_cover_manylinux_from_2_17_to_the_hosts_glibc():
    tags = wheelhouse.platforms("aarch64", "2.36")
    assert tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_28_aarch64" in tags and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags and "manylinux_2_16_aarch64" not in tags
    assert tags[-1] == "manylinux2014_aarch64"


@pytest.mark.parametrize("glibc", ["2.12", "musl", "3.1"])
def test_hosts_without_a_usable_glibc_are_refused(glibc):
    with pytest.raises(SystemExit, match="glibc"):
        wheelhouse.platforms("x86_64", glibc)


def test_pip_is_asked_for_binary_wheels_of_the_target_python(tmp_path):
    argv = wheelhouse.pip_download_argv(tmp_path, "3.13", "x86_64", "2.41", "req.txt", ["pyuwsgi==2.0.30.post1"],
                                        ["--index-url=http://127.0.0.1:3141/simple/"])
    assert argv[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert argv[argv.index("--abi") + 1] == "cp313"
    assert argv[argv.index("--implementation") + 1] == "cp"
    assert argv[argv.index("--requirement") + 1] == "req.txt"
    assert argv[-2:] == ["pyuwsgi==2.0.30.post1", "--index-url=http://127.0.0.1:3141/simple/"]


def test_a_complete_wheelhouse_is_reused_without_pip(tmp_path, monkeypatch):
    dest = tmp_path / "wh"
    dest.mkdir()
    (dest / "a-1.0-py3-none-any.whl").write_bytes(b"")
    (dest / ".complete").write_text("a-1.0-py3-none-any.whl\n")
    monkeypatch.setattr(wheelhouse.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert wheelhouse.build(dest, "3.11", "x86_64", "2.36", "req.txt", [], []) == {
        "wheelhouse": str(dest), "wheels": 1, "built": False}


def test_a_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    class Failed:
        returncode = 1
        stdout = ""
        stderr = "ERROR: No matching distribution found for onlysdist==1.0"

    monkeypatch.setattr(wheelhouse.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(SystemExit, match="onlysdist"):
        wheelhouse.build(tmp_path / "wh", "3.11", "x86_64", "2.36", "req.txt", [], [])
    assert list(tmp_path.iterdir()) == []
