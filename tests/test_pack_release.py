"""Tests of roles/app/files/pack_release.py: content digest, archive contents and reuse."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from scriptload import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "app" / "files" / "pack_release.py"
MTIME = 1_600_000_000  # a fixed, recognisable modification time

pack_release = load_module("wsgideploy_pack_release", SCRIPT)


def make_tree(root: Path) -> Path:
    """A small app source: a package, a static file, a requirements file, a script."""
    files = {
        "requirements.txt": "Flask>=3.0,<4\n",
        "wsgi.py": "from hello import create_app\napplication = create_app()\n",
        "hello/__init__.py": "def create_app():\n    return None\n",
        "hello/static/style.css": "body { color: black; }\n",
        "bin/manage.sh": "#!/bin/sh\necho manage\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    (root / "bin" / "manage.sh").chmod(0o755)
    return root


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def digest(src: Path, out: Path, salt: str = "", excludes: tuple[str, ...] = ()) -> str:
    return pack_release.pack(src, out, salt, excludes)["digest"]


def members(archive: str | Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


# --- the digest ----------------------------------------------------------------------------------


def test_result_names_the_archive_by_its_digest(src, tmp_path):
    result = pack_release.pack(src, tmp_path / "out")
    assert re.fullmatch(r"[0-9a-f]{64}", result["digest"])
    assert Path(result["archive"]) == tmp_path / "out" / f"{result['digest']}.tar.gz"
    assert Path(result["archive"]).is_file()
    assert result["files"] == 5


def test_same_source_same_digest_and_same_bytes(src, tmp_path):
    first = pack_release.pack(src, tmp_path / "out1")
    second = pack_release.pack(src, tmp_path / "out2")
    assert first["digest"] == second["digest"]
    # Reproducible down to the byte: fixed owners, no PAX times, gzip header without a timestamp.
    assert Path(first["archive"]).read_bytes() == Path(second["archive"]).read_bytes()


def test_touching_a_file_keeps_the_digest(src, tmp_path):
    before = digest(src, tmp_path / "out1")
    os.utime(src / "wsgi.py", (MTIME, MTIME))
    assert digest(src, tmp_path / "out2") == before


def test_changing_one_byte_changes_the_digest(src, tmp_path):
    before = digest(src, tmp_path / "out1")
    path = src / "hello" / "static" / "style.css"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # same size, one byte different
    path.write_bytes(bytes(data))
    assert digest(src, tmp_path / "out2") != before


def test_the_salt_changes_the_digest(src, tmp_path):
    plain = digest(src, tmp_path / "out")
    salted = digest(src, tmp_path / "out", salt="requirements pyuwsgi==2.0.30.post1")
    other = digest(src, tmp_path / "out", salt="requirements pyuwsgi==2.0.31")
    assert len({plain, salted, other}) == 3


def test_the_executable_bit_changes_the_digest(src, tmp_path):
    before = digest(src, tmp_path / "out1")
    (src / "wsgi.py").chmod(0o755)
    assert digest(src, tmp_path / "out2") != before


def test_other_mode_bits_are_normalised(src, tmp_path):
    before = digest(src, tmp_path / "out1")
    (src / "wsgi.py").chmod(0o664)
    (src / "requirements.txt").chmod(0o600)
    after = pack_release.pack(src, tmp_path / "out2")
    assert after["digest"] == before
    found = members(after["archive"])
    assert found["wsgi.py"].mode == 0o644
    assert found["requirements.txt"].mode == 0o644
    assert found["bin/manage.sh"].mode == 0o755
    assert found["hello"].mode == 0o755


def test_different_trees_have_different_digests(tmp_path):
    one = make_tree(tmp_path / "one")
    two = make_tree(tmp_path / "two")
    (two / "hello" / "extra.py").write_text("X = 1\n")
    assert digest(one, tmp_path / "out") != digest(two, tmp_path / "out")


def test_a_renamed_file_changes_the_digest(src, tmp_path):
    before = digest(src, tmp_path / "out1")
    (src / "wsgi.py").rename(src / "wsgi2.py")
    assert digest(src, tmp_path / "out2") != before


# --- what goes into the archive ------------------------------------------------------------------


def test_default_excludes_stay_out_and_do_not_affect_the_digest(src, tmp_path):
    clean = digest(src, tmp_path / "out1")
    junk = {
        "__pycache__/wsgi.cpython-311.pyc": b"\0bytecode",
        "hello/__pycache__/__init__.cpython-311.pyc": b"\0bytecode",
        "hello/stray.pyc": b"\0bytecode",
        ".git/HEAD": b"ref: refs/heads/main\n",
        ".venv/bin/python": b"#!/bin/sh\n",
        "hello/.venv/pyvenv.cfg": b"home = /usr/bin\n",
    }
    for rel, data in junk.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    result = pack_release.pack(src, tmp_path / "out2")
    assert result["digest"] == clean
    names = members(result["archive"])
    for name in names:
        parts = name.split("/")
        assert not {"__pycache__", ".git", ".venv"} & set(parts), name
        assert not name.endswith(".pyc"), name
    assert "hello/__init__.py" in names


def test_exclude_option_leaves_out_matching_names(src, tmp_path):
    clean = digest(src, tmp_path / "out1")
    (src / "debug.log").write_text("noise\n")
    (src / "hello" / "notes.log").write_text("noise\n")
    assert digest(src, tmp_path / "out2") != clean  # not excluded by default

    result = pack_release.pack(src, tmp_path / "out3", extra_excludes=("*.log",))
    assert result["digest"] == clean
    assert not [n for n in members(result["archive"]) if n.endswith(".log")]


def test_exclude_option_on_the_command_line(src, tmp_path, capsys):
    clean = digest(src, tmp_path / "out1")
    (src / "local_settings.py").write_text("SECRET = 1\n")
    (src / "debug.log").write_text("noise\n")
    assert pack_release.main([str(src), str(tmp_path / "out2"), "--exclude", "*.log", "--exclude=local_*"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["digest"] == clean
    names = members(result["archive"])
    assert "debug.log" not in names and "local_settings.py" not in names


def test_members_are_owned_by_root_and_keep_their_mtime(src, tmp_path):
    os.utime(src / "wsgi.py", (MTIME, MTIME))
    os.utime(src / "hello" / "static" / "style.css", (MTIME + 60, MTIME + 60))
    found = members(pack_release.pack(src, tmp_path / "out")["archive"])
    for member in found.values():
        assert (member.uid, member.gid) == (0, 0), member.name
        assert (member.uname, member.gname) == ("root", "root"), member.name
        assert member.mtime != 0, member.name
    assert found["wsgi.py"].mtime == MTIME
    assert found["hello/static/style.css"].mtime == MTIME + 60


def test_directories_and_files_are_all_listed(src, tmp_path):
    found = members(pack_release.pack(src, tmp_path / "out")["archive"])
    assert sorted(found) == [
        "bin",
        "bin/manage.sh",
        "hello",
        "hello/__init__.py",
        "hello/static",
        "hello/static/style.css",
        "requirements.txt",
        "wsgi.py",
    ]
    assert found["hello"].isdir() and found["wsgi.py"].isfile()


def test_symlinks_are_stored_as_links(src, tmp_path):
    (src / "app.py").symlink_to("wsgi.py")
    (src / "assets").symlink_to("hello/static")  # a link to a directory is not followed
    result = pack_release.pack(src, tmp_path / "out")
    found = members(result["archive"])
    assert found["app.py"].issym() and found["app.py"].linkname == "wsgi.py"
    assert found["assets"].issym() and found["assets"].linkname == "hello/static"
    assert not [n for n in found if n.startswith("assets/")]
    assert result["files"] == 5  # links are not files

    # The link target is part of the digest.
    (src / "app.py").unlink()
    (src / "app.py").symlink_to("hello/__init__.py")
    assert digest(src, tmp_path / "out2") != result["digest"]


def test_hard_linked_files_are_both_in_the_archive(src, tmp_path):
    os.link(src / "wsgi.py", src / "wsgi_alias.py")
    result = pack_release.pack(src, tmp_path / "out")
    found = members(result["archive"])
    assert "wsgi.py" in found and "wsgi_alias.py" in found


# --- errors --------------------------------------------------------------------------------------


def test_empty_source_directory_is_refused(tmp_path):
    empty = tmp_path / "empty"
    (empty / "only" / "dirs").mkdir(parents=True)
    (empty / "__pycache__").mkdir()
    (empty / "__pycache__" / "x.pyc").write_bytes(b"\0")  # excluded: does not count
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack(empty, tmp_path / "out")
    assert str(empty) in str(excinfo.value.code)
    assert "no files" in str(excinfo.value.code)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_source_directory_is_refused(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack(missing, tmp_path / "out")
    assert str(missing) in str(excinfo.value.code)
    assert "does not exist" in str(excinfo.value.code)
    assert not (tmp_path / "out").exists()


def test_a_file_as_source_is_refused(tmp_path):
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x\n")
    with pytest.raises(SystemExit, match=re.escape(str(not_a_dir))):
        pack_release.pack(not_a_dir, tmp_path / "out")


# --- reuse ---------------------------------------------------------------------------------------


def test_an_existing_archive_is_reused_not_rewritten(src, tmp_path):
    out = tmp_path / "out"
    first = pack_release.pack(src, out)
    archive = Path(first["archive"])
    os.utime(archive, (MTIME, MTIME))  # any rewrite would move the mtime off this old value
    before = archive.stat()

    os.utime(src / "wsgi.py", (MTIME + 3600, MTIME + 3600))  # touched, content unchanged
    second = pack_release.pack(src, out)
    after = archive.stat()

    assert second == first
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert sorted(p.name for p in out.iterdir()) == [archive.name]  # no temporary files left


def test_a_changed_source_gets_a_second_archive(src, tmp_path):
    out = tmp_path / "out"
    first = pack_release.pack(src, out)
    (src / "wsgi.py").write_text("application = None\n")
    second = pack_release.pack(src, out)
    assert second["archive"] != first["archive"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        Path(r["archive"]).name for r in (first, second)
    )


# --- as a script ---------------------------------------------------------------------------------


def test_runs_as_a_script_and_prints_json(src, tmp_path):
    (src / "debug.log").write_text("noise\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(src), str(out), "--salt", "requirements pyuwsgi", "--exclude", "*.log"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"digest", "archive", "files", "requirements_digest"}
    assert result["files"] == 5
    assert Path(result["archive"]).is_file()
    assert "debug.log" not in members(result["archive"])
    (src / "debug.log").unlink()
    assert result["digest"] == digest(src, tmp_path / "other", salt="requirements pyuwsgi")


def test_script_exits_non_zero_naming_a_missing_source(tmp_path):
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(missing), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert str(missing) in proc.stderr


def req_digest(src: Path, out: Path, salt: str = "") -> str | None:
    return pack_release.pack(src, out, salt, (), "requirements.txt")["requirements_digest"]


def test_requirements_digest_ignores_code_changes(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("x = 1\n")
    (src / "requirements.txt").write_text("Flask==3.1.3\n")
    first = req_digest(src, tmp_path / "out")
    (src / "pkg" / "m.py").write_text("x = 2\n")
    assert req_digest(src, tmp_path / "out") == first
    (src / "requirements.txt").write_text("Flask==3.1.3\nsix==1.16.0\n")
    assert req_digest(src, tmp_path / "out") != first


def test_requirements_digest_follows_the_salt_and_is_absent_without_a_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("Flask==3.1.3\n")
    assert req_digest(src, tmp_path / "o", "pyuwsgi==2.0.30") != req_digest(src, tmp_path / "o", "pyuwsgi==2.0.31")
    assert pack_release.pack(src, tmp_path / "o")["requirements_digest"] is None


def test_missing_requirements_file_is_an_error(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("")
    with pytest.raises(SystemExit, match="requirements file"):
        pack_release.pack(src, tmp_path / "o", "", (), "requirements.txt")
