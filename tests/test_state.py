"""wsgideploy-state: a failed change is undone exactly (files, links, dirs, added files, absent paths)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from scriptload import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "rollout" / "files" / "wsgideploy_state.py"
state = load_module("wsgideploy_state", SCRIPT)


def tree(root: Path) -> dict[str, object]:
    """Everything below root: content and mode of files, targets of links, modes of directories."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = ("dir", path.stat().st_mode & 0o7777)
        else:
            found[rel] = ("file", path.read_bytes(), path.stat().st_mode & 0o7777)
    return found


def run(capsys, *argv: str) -> dict:
    assert state.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def live(tmp_path: Path) -> Path:
    root = tmp_path / "live"
    (root / "releases" / "aaa").mkdir(parents=True)
    (root / "releases" / "bbb").mkdir()
    (root / "current").symlink_to(root / "releases" / "aaa")
    (root / "etc").mkdir(mode=0o750)
    (root / "etc" / "app-0.ini").write_text("processes = 2\n")
    (root / "etc" / "app-0.ini").chmod(0o640)
    (root / "settings.py").write_text("GREETING = 'hi'\n")
    (root / "units").mkdir()
    (root / "units" / "app-0.service").write_text("[Service]\n")
    return root


def test_a_failed_change_is_undone_exactly(tmp_path, live, capsys):
    record = tmp_path / "state" / "app.json"
    before = tree(live)
    out = run(capsys, "save", str(record), str(live / "current"), str(live / "settings.py"), str(live / "etc"),
              str(live / "units" / "app-*.service"), str(live / "absent.conf"))
    assert out["changed"] is True
    assert record.stat().st_mode & 0o777 == 0o600

    # The change: current moves, settings and ini rewritten with other modes, a unit added, a
    # file created where nothing was, a directory removed.
    (live / "current").unlink()
    (live / "current").symlink_to(live / "releases" / "bbb")
    (live / "settings.py").write_text("bad key = 1\n")
    (live / "etc" / "app-0.ini").write_text("processes = 0\n")
    (live / "etc" / "app-0.ini").chmod(0o644)
    (live / "etc" / "app-1.ini").write_text("new\n")
    (live / "units" / "app-1.service").write_text("[Service]\n")
    (live / "absent.conf").write_text("x")
    assert tree(live) != before

    out = run(capsys, "restore", str(record))
    assert tree(live) == before
    assert set(out["paths"]) == {str(live / p) for p in
                                 ("current", "settings.py", "etc/app-0.ini", "etc/app-1.ini",
                                  "units/app-1.service", "absent.conf")}
    # Restoring again changes nothing.
    assert run(capsys, "restore", str(record)) == {"changed": False, "paths": []}


def test_a_removed_directory_comes_back(tmp_path, live, capsys):
    record = tmp_path / "app.json"
    before = tree(live)
    run(capsys, "save", str(record), str(live / "etc"))
    for f in (live / "etc").iterdir():
        f.unlink()
    (live / "etc").rmdir()
    run(capsys, "restore", str(record))
    assert tree(live) == before


def test_saving_the_same_state_twice_reports_no_change(tmp_path, live, capsys):
    record = tmp_path / "app.json"
    assert run(capsys, "save", str(record), str(live / "settings.py"))["changed"] is True
    mtime = record.stat().st_mtime_ns
    assert run(capsys, "save", str(record), str(live / "settings.py"))["changed"] is False
    assert record.stat().st_mtime_ns == mtime
    (live / "settings.py").write_text("GREETING = 'other'\n")
    assert run(capsys, "save", str(record), str(live / "settings.py"))["changed"] is True


def test_relative_paths_and_bad_usage_are_refused(tmp_path, capsys):
    assert state.main(["save", str(tmp_path / "x.json"), "relative/path"]) == 1
    assert state.main(["restore"]) == 2
    assert state.main(["restore", str(tmp_path / "missing.json")]) == 1
