"""Tests of roles/app/files/pack_release.py: content digest, archive contents, reuse, the kinds of source."""

from __future__ import annotations

import calendar
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from scriptload import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "roles" / "app" / "files" / "pack_release.py"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """pack_release.py run as a script, as the app role runs it."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


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
    argv = [str(tmp_path / "out2"), "--src", str(src), "--exclude", "*.log", "--exclude=local_*"]
    assert pack_release.main(argv) == 0
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
    proc = run_script(str(out), "--src", str(src), "--salt=requirements pyuwsgi", "--exclude=*.log")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"digest", "archive", "files", "requirements_digest", "requirements_file", "source"}
    assert result["source"] == {"kind": "dir", "commit": None, "artifact": None}
    assert result["files"] == 5
    assert Path(result["archive"]).is_file()
    assert "debug.log" not in members(result["archive"])
    (src / "debug.log").unlink()
    assert result["digest"] == digest(src, tmp_path / "other", salt="requirements pyuwsgi")


def test_script_exits_non_zero_naming_a_missing_source(tmp_path):
    missing = tmp_path / "nowhere"
    proc = run_script(str(tmp_path / "out"), "--src", str(missing))
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


def test_requirements_file_is_a_copy_named_by_its_digest(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("Flask==3.1.3\n")
    first = pack_release.pack(src, tmp_path / "o", "salt", (), "requirements.txt")
    assert Path(first["requirements_file"]).read_text() == "Flask==3.1.3\n"
    assert Path(first["requirements_file"]).name.startswith(first["requirements_digest"])
    (src / "requirements.txt").write_text("Flask==3.1.2\n")
    second = pack_release.pack(src, tmp_path / "o", "salt", (), "requirements.txt")
    assert Path(second["requirements_file"]).read_text() == "Flask==3.1.2\n"
    assert Path(first["requirements_file"]).read_text() == "Flask==3.1.3\n"
    assert pack_release.pack(src, tmp_path / "o")["requirements_file"] is None


def test_missing_requirements_file_is_an_error(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("")
    with pytest.raises(SystemExit, match="requirements file"):
        pack_release.pack(src, tmp_path / "o", "", (), "requirements.txt")


# --- requirements generated from pyproject.toml [project] dependencies ---------------------------

PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "hello"
version = "1.0"
dependencies = [
    "Flask >= 3.0, <4",
    "uvicorn[standard] >=0.30 ; python_version >= '3.9'",
    "pkg @ https://example.com/pkg-1.0.tar.gz ; os_name == 'posix'",
    "requests",
]

[project.optional-dependencies]
test = ["pytest"]
"""
# packaging's spelling of a URL requirement has changed over its versions ("pkg@ url", "pkg @ url");
# the ' ;' after the URL, without which the ';' would be part of the URL, has not.
URL_LINE = str(Requirement("pkg@https://example.com/pkg-1.0.tar.gz ; os_name == 'posix'"))
assert URL_LINE.endswith('https://example.com/pkg-1.0.tar.gz ; os_name == "posix"')
GENERATED = f"""# generated from pyproject.toml [project] dependencies
Flask<4,>=3.0
uvicorn[standard]>=0.30; python_version >= "3.9"
{URL_LINE}
requests
"""


def make_pyproject_tree(root: Path, pyproject: str = PYPROJECT) -> Path:
    """make_tree without its requirements.txt, with a pyproject.toml instead."""
    make_tree(root)
    (root / "requirements.txt").unlink()
    (root / "pyproject.toml").write_text(pyproject)
    os.utime(root / "pyproject.toml", (MTIME, MTIME))
    return root


def pyproject_with(dependencies: str, extra: str = "") -> str:
    return f'[project]\nname = "hello"\nversion = "1.0"\n{extra}dependencies = {dependencies}\n'


def test_pyproject_dependencies_become_the_requirements_file(tmp_path):
    src = make_pyproject_tree(tmp_path / "src")
    result = pack_release.pack(src, tmp_path / "out", "salt", (), "requirements.txt")
    found = members(result["archive"])
    assert "requirements.txt" in found and "pyproject.toml" in found
    assert found["requirements.txt"].mode == 0o644 and found["requirements.txt"].mtime == MTIME
    assert found["requirements.txt"].uname == "root" and found["requirements.txt"].uid == 0
    assert read_member(result["archive"], "requirements.txt") == GENERATED  # normalised, in order
    assert result["files"] == 6
    assert result["requirements_digest"] == hashlib.sha256(b"salt\0" + GENERATED.encode()).hexdigest()
    assert Path(result["requirements_file"]).read_text() == GENERATED
    assert not (src / "requirements.txt").exists()  # the source is left as it is


def test_pyproject_requirements_pack_as_if_the_file_were_shipped(tmp_path):
    src = make_pyproject_tree(tmp_path / "a")
    generated = pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")
    shipped = make_pyproject_tree(tmp_path / "b")
    (shipped / "requirements.txt").write_text(GENERATED)
    as_file = pack_release.pack(shipped, tmp_path / "out", "", (), "requirements.txt")
    assert generated["digest"] == as_file["digest"]
    assert generated["requirements_digest"] == as_file["requirements_digest"]
    assert generated["files"] == as_file["files"]
    # Reproducible down to the byte, like any other release.
    again = pack_release.pack(src, tmp_path / "out2", "", (), "requirements.txt")
    assert Path(again["archive"]).read_bytes() == Path(generated["archive"]).read_bytes()


def test_pyproject_requirements_digest_follows_the_dependencies(tmp_path):
    one = pack_release.pack(make_pyproject_tree(tmp_path / "a"), tmp_path / "out", "", (), "requirements.txt")
    code = make_pyproject_tree(tmp_path / "b")
    (code / "wsgi.py").write_text("application = None\n")
    (code / "pyproject.toml").write_text(PYPROJECT.replace('version = "1.0"', 'version = "1.1"'))
    two = pack_release.pack(code, tmp_path / "out", "", (), "requirements.txt")
    assert one["digest"] != two["digest"]
    assert one["requirements_digest"] == two["requirements_digest"]  # same dependencies: same virtualenv
    spelled = make_pyproject_tree(tmp_path / "c", PYPROJECT.replace('"Flask >= 3.0, <4"', '"flask<4,>=3.0"'))
    three = pack_release.pack(spelled, tmp_path / "out", "", (), "requirements.txt")
    assert three["requirements_digest"] != one["requirements_digest"]  # the name as written is kept
    more = make_pyproject_tree(tmp_path / "d", PYPROJECT.replace('"requests",', '"requests",\n    "six",'))
    four = pack_release.pack(more, tmp_path / "out", "", (), "requirements.txt")
    assert four["requirements_digest"] != one["requirements_digest"]
    assert read_member(four["archive"], "requirements.txt").splitlines()[-1] == "six"


@pytest.mark.parametrize(
    "pyproject", [pyproject_with("[]"), '[project]\nname = "hello"\nversion = "1.0"\n'], ids=["empty", "no key"]
)
def test_pyproject_without_dependencies_gives_an_empty_requirements_file(tmp_path, pyproject):
    src = make_pyproject_tree(tmp_path / "src", pyproject)
    result = pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")
    content = "# generated from pyproject.toml [project] dependencies\n"
    assert read_member(result["archive"], "requirements.txt") == content
    assert result["requirements_digest"] == hashlib.sha256(b"\0" + content.encode()).hexdigest()


def test_pyproject_requirements_go_where_the_requirements_file_is_named(tmp_path):
    src = make_pyproject_tree(tmp_path / "src")
    result = pack_release.pack(src, tmp_path / "out", "", (), "requirements/prod.txt")
    found = members(result["archive"])
    assert found["requirements"].isdir() and found["requirements"].mode == 0o755
    assert found["requirements"].mtime == MTIME
    assert read_member(result["archive"], "requirements/prod.txt") == GENERATED
    (src / "requirements").mkdir()
    (src / "requirements" / "prod.txt").write_text(GENERATED)
    os.utime(src / "requirements", (MTIME, MTIME))
    assert pack_release.pack(src, tmp_path / "out", "", (), "requirements/prod.txt")["digest"] == result["digest"]
    (src / "requirements" / "prod.txt").unlink()
    (src / "requirements" / "base.txt").write_text("six\n")  # an existing directory is kept as it is
    mixed = pack_release.pack(src, tmp_path / "out", "", (), "requirements/prod.txt")
    assert {"requirements/base.txt", "requirements/prod.txt"} <= set(members(mixed["archive"]))

    shutil.rmtree(src / "requirements")
    (src / "requirements").write_text("not a directory\n")
    with pytest.raises(SystemExit, match=r"cannot add requirements/prod.txt generated from pyproject.toml"):
        pack_release.pack(src, tmp_path / "out", "", (), "requirements/prod.txt")


def test_a_requirements_file_wins_over_pyproject(tmp_path):
    src = make_pyproject_tree(tmp_path / "src")
    (src / "requirements.txt").write_text("Flask==3.1.3\n")
    result = pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")
    assert read_member(result["archive"], "requirements.txt") == "Flask==3.1.3\n"
    assert result["requirements_digest"] == hashlib.sha256(b"\0Flask==3.1.3\n").hexdigest()


def test_without_requirements_option_nothing_is_generated(tmp_path):
    """Install mode package: the role passes no --requirements; pyproject.toml is just a file."""
    src = make_pyproject_tree(tmp_path / "src")
    result = pack_release.pack(src, tmp_path / "out")
    assert result["requirements_digest"] is None and result["requirements_file"] is None
    assert "requirements.txt" not in members(result["archive"])


def test_pyproject_dynamic_dependencies_are_refused(tmp_path):
    src = make_pyproject_tree(tmp_path / "src", '[project]\nname = "hello"\ndynamic = ["version", "dependencies"]\n')
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")
    message = str(excinfo.value.code)
    assert message.startswith(f"pack_release: pyproject.toml in source directory {src} lists dependencies")
    assert "[project] dynamic" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
    # Other dynamic fields do not matter.
    other = make_pyproject_tree(tmp_path / "other", pyproject_with('["six"]', 'dynamic = ["version"]\n'))
    result = pack_release.pack(other, tmp_path / "out", "", (), "requirements.txt")
    assert read_member(result["archive"], "requirements.txt").splitlines()[1:] == ["six"]


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        ("[project\nname = 1\n", "is not valid TOML: "),
        (pyproject_with('["six", 3]'), "[project] dependencies is not a list of strings"),
        (pyproject_with('"six"'), "[project] dependencies is not a list of strings"),
        ('project = "hello"\n', "project is not a table"),
    ],
)
def test_a_broken_pyproject_is_refused(tmp_path, pyproject, expected):
    src = make_pyproject_tree(tmp_path / "src", pyproject)
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")
    message = str(excinfo.value.code)
    assert message.startswith(f"pack_release: pyproject.toml in source directory {src}")
    assert expected in message and "\n" not in message


@pytest.mark.parametrize("bad", ["flask >>= 3", "six; python_version <", "not a requirement", "pkg @"])
def test_an_invalid_pyproject_requirement_is_refused_naming_it(tmp_path, bad):
    src = make_pyproject_tree(tmp_path / "src", pyproject_with(json.dumps(["six", bad])))
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")
    message = str(excinfo.value.code)
    assert message.startswith(
        f"pack_release: pyproject.toml in source directory {src} has an invalid requirement"
        f" in [project] dependencies: {bad!r} ("
    )
    assert "\n" not in message


@pytest.mark.parametrize("pyproject", [None, '[build-system]\nrequires = ["setuptools"]\n', "[tool.ruff]\n"])
def test_neither_requirements_file_nor_project_table_is_refused(tmp_path, pyproject):
    src = make_tree(tmp_path / "src")
    (src / "requirements.txt").unlink()
    if pyproject is not None:
        (src / "pyproject.toml").write_text(pyproject)
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")
    assert str(excinfo.value.code) == (
        f"pack_release: source directory {src} has no requirements file requirements.txt"
        " and no [project] dependencies in pyproject.toml"
    )


def test_a_requirements_path_that_is_not_a_file_is_refused(tmp_path):
    src = make_pyproject_tree(tmp_path / "src")
    (src / "requirements.txt").symlink_to("nowhere.txt")
    with pytest.raises(SystemExit, match="requirements file requirements.txt in .* is not a file"):
        pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")


def test_a_pyproject_link_out_of_the_source_is_refused(tmp_path):
    src = make_tree(tmp_path / "src")
    (src / "requirements.txt").unlink()
    (tmp_path / "elsewhere.toml").write_text(pyproject_with('["six"]'))
    (src / "pyproject.toml").symlink_to(tmp_path / "elsewhere.toml")
    with pytest.raises(SystemExit, match="pyproject.toml in .* is a link to a file outside the source"):
        pack_release.pack(src, tmp_path / "out", "", (), "requirements.txt")


def test_pyproject_requirements_on_the_command_line(tmp_path):
    src = make_pyproject_tree(tmp_path / "src")
    proc = run_script(str(tmp_path / "out"), "--src", str(src), "--requirements", "requirements.txt")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert read_member(result["archive"], "requirements.txt") == GENERATED
    assert Path(result["requirements_file"]).read_text() == GENERATED

    (src / "pyproject.toml").write_text(pyproject_with('["flask >>= 3"]'))
    bad = run_script(str(tmp_path / "out"), "--src", str(src), "--requirements", "requirements.txt")
    assert bad.returncode != 0 and bad.stdout == ""
    assert bad.stderr.startswith("pack_release: pyproject.toml in ") and bad.stderr.count("\n") == 1
    assert "'flask >>= 3'" in bad.stderr


# --- --git: a commit of a repository -------------------------------------------------------------

COMMIT_TIME = 1_700_000_000  # the committer date of every test commit


def run_git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_DATE": f"@{COMMIT_TIME} +0000",
        "GIT_COMMITTER_DATE": f"@{COMMIT_TIME} +0000",
    }
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", message)
    return run_git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the make_tree files committed on main, tagged v1 (annotated)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = make_tree(tmp_path / "repo")
    run_git(root, "init", "-q", "-b", "main")
    (root / "hello" / "link.css").symlink_to("static/style.css")
    commit_all(root, "first")
    run_git(root, "tag", "-a", "v1", "-m", "v1")
    return root


def head(repo: Path) -> str:
    return run_git(repo, "rev-parse", "main")


def test_git_packs_the_committed_tree_not_the_working_tree(repo, tmp_path):
    (repo / "local_settings.py").write_text("SECRET = 1\n")  # untracked
    (repo / "wsgi.py").write_text("application = 'uncommitted'\n")  # modified, not committed
    out = tmp_path / "cache" / "out"
    result = pack_release.pack_git(str(repo), out, "main", requirements="requirements.txt")
    assert result["source"] == {"kind": "git", "commit": head(repo), "artifact": None}
    found = members(result["archive"])
    assert sorted(found) == [
        "bin",
        "bin/manage.sh",
        "hello",
        "hello/__init__.py",
        "hello/link.css",
        "hello/static",
        "hello/static/style.css",
        "requirements.txt",
        "wsgi.py",
    ]
    with tarfile.open(result["archive"], "r:gz") as tar:
        committed = tar.extractfile("wsgi.py").read()
    assert committed == b"from hello import create_app\napplication = create_app()\n"
    assert found["bin/manage.sh"].mode == 0o755 and found["wsgi.py"].mode == 0o644
    assert found["hello/link.css"].issym() and found["hello/link.css"].linkname == "static/style.css"
    assert {m.mtime for m in found.values()} == {COMMIT_TIME}  # the commit time, for nginx's ETag

    # The same rules as a source directory holding that tree: same digest, same requirements digest.
    plain = make_tree(tmp_path / "plain")
    (plain / "hello" / "link.css").symlink_to("static/style.css")
    as_dir = pack_release.pack(plain, tmp_path / "dir-out", "", (), "requirements.txt")
    assert result["digest"] == as_dir["digest"]
    assert result["requirements_digest"] == as_dir["requirements_digest"] is not None


def test_git_branch_tag_and_sha(repo, tmp_path):
    out = tmp_path / "cache" / "out"
    first = head(repo)
    by_branch = pack_release.pack_git(str(repo), out, "main")
    by_tag = pack_release.pack_git(str(repo), out, "v1")
    by_sha = pack_release.pack_git(str(repo), out, first)
    by_short_sha = pack_release.pack_git(str(repo), out, first[:10])
    assert by_branch == by_tag == by_sha == by_short_sha
    assert by_tag["source"]["commit"] == first  # the annotated tag is peeled to its commit

    (repo / "hello" / "static" / "style.css").write_text("body { color: red; }\n")
    second = commit_all(repo, "second")
    branch_now = pack_release.pack_git(str(repo), out, "main")
    tag_now = pack_release.pack_git(str(repo), out, "v1")
    assert branch_now["source"]["commit"] == second != first
    assert branch_now["digest"] != by_branch["digest"]
    assert tag_now == by_tag
    assert pack_release.pack_git(str(repo), out, first) == by_sha
    assert pack_release.pack_git(str(repo), out)["source"]["commit"] == second  # HEAD: the default branch


def test_git_same_commit_same_archive_bytes(repo, tmp_path):
    one = pack_release.pack_git(str(repo), tmp_path / "cache" / "out1", "v1")
    two = pack_release.pack_git(str(repo), tmp_path / "cache" / "out2", "v1")
    assert Path(one["archive"]).read_bytes() == Path(two["archive"]).read_bytes()


def test_git_keeps_a_mirror_and_fetches_into_it(repo, tmp_path):
    out = tmp_path / "cache" / "out"
    first = pack_release.pack_git(str(repo), out, "main")
    key = hashlib.sha256(str(repo).encode()).hexdigest()[:16]
    mirror = tmp_path / "cache" / "git" / f"{key}.git"
    assert run_git(mirror, "rev-parse", "--is-bare-repository") == "true"
    assert sorted(p.name for p in mirror.parent.iterdir() if p.suffix == ".git") == [mirror.name]
    (mirror / "marker").write_text("same mirror\n")  # a new clone would not have it

    (repo / "new.py").write_text("NEW = 1\n")
    second = commit_all(repo, "second")
    run_git(repo, "tag", "v2")
    again = pack_release.pack_git(str(repo), out, "main")
    assert (mirror / "marker").is_file()
    assert again["source"]["commit"] == second
    assert "new.py" in members(again["archive"]) and "new.py" not in members(first["archive"])
    assert pack_release.pack_git(str(repo), out, "v2")["source"]["commit"] == second  # tags come along

    # A branch deleted upstream is pruned from the mirror.
    run_git(repo, "branch", "gone", first["source"]["commit"])
    pack_release.pack_git(str(repo), out, "gone")
    run_git(repo, "branch", "-D", "gone")
    with pytest.raises(SystemExit, match="gone"):
        pack_release.pack_git(str(repo), out, "gone")


def test_git_head_follows_a_new_default_branch(repo, tmp_path):
    out = tmp_path / "cache" / "out"
    assert pack_release.pack_git(str(repo), out)["source"]["commit"] == head(repo)
    run_git(repo, "branch", "-m", "main", "trunk")  # the remote's HEAD now names trunk; main is gone
    (repo / "new.py").write_text("NEW = 1\n")
    trunk = commit_all(repo, "on trunk")
    assert pack_release.pack_git(str(repo), out, "HEAD")["source"]["commit"] == trunk


def test_git_relative_path_is_the_same_mirror(repo, tmp_path, monkeypatch):
    out = tmp_path / "cache" / "out"
    monkeypatch.chdir(repo.parent)
    relative = pack_release.pack_git(repo.name, out, "main")
    monkeypatch.chdir(tmp_path / "cache")
    absolute = pack_release.pack_git(str(repo), out, "main")
    assert relative == absolute
    assert len(list((tmp_path / "cache" / "git").glob("*.git"))) == 1


def test_git_unknown_ref_is_an_error_naming_it(repo, tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack_git(str(repo), tmp_path / "cache" / "out", "no-such-branch")
    message = str(excinfo.value.code)
    assert message.startswith("pack_release: ") and "\n" not in message
    assert "no-such-branch" in message and str(repo) in message
    assert not (tmp_path / "cache" / "out").exists()


def test_git_unreachable_repository_is_an_error_naming_it(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    missing = tmp_path / "no-repo"
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack_git(str(missing), tmp_path / "cache" / "out", "v9")
    message = str(excinfo.value.code)
    assert message.startswith("pack_release: ") and "\n" not in message
    assert str(missing) in message and "v9" in message
    assert not list((tmp_path / "cache" / "git").glob("*.git"))  # no half-made mirror left behind


def test_git_an_option_as_ref_is_refused(repo, tmp_path):
    with pytest.raises(SystemExit, match="invalid ref"):
        pack_release.pack_git(str(repo), tmp_path / "cache" / "out", "--output=/tmp/x")


def test_git_submodules_are_refused_unless_excluded(repo, tmp_path):
    run_git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head(repo)},vendor/lib")
    run_git(repo, "commit", "-q", "-m", "a submodule")
    with pytest.raises(SystemExit, match=r"submodule at vendor/lib"):
        pack_release.pack_git(str(repo), tmp_path / "cache" / "out", "main")
    result = pack_release.pack_git(str(repo), tmp_path / "cache" / "out", "main", extra_excludes=("vendor",))
    assert not [n for n in members(result["archive"]) if n.startswith("vendor")]


def write_tar(path: Path, entries: list[tuple[str, str, bytes | str]]) -> Path:
    """A tar with (name, 'f'|'l'|'d'|'c', content or link target) entries ('c': a character device)."""
    with tarfile.open(path, "w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "f":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.type = tarfile.DIRTYPE if kind == "d" else tarfile.CHRTYPE
                tar.addfile(info)
    return path


@pytest.mark.parametrize(
    "entries",
    [
        [("../evil.py", "f", b"x")],
        [("/abs/evil.py", "f", b"x")],
        [("a/../../evil.py", "f", b"x")],
        [("esc", "l", ".."), ("esc/evil.py", "f", b"x")],  # writing through a stored link
        [("dev", "c", b"")],
    ],
)
def test_tree_extraction_stays_inside(tmp_path, entries):
    path = write_tar(tmp_path / "t.tar", entries)
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError):
        pack_release.extract_tar(path, tmp_path / "x" / "dest")
    assert not (tmp_path / "x" / "evil.py").exists() and not (tmp_path / "evil.py").exists()


def test_git_on_the_command_line(repo, tmp_path):
    out = tmp_path / "cache" / "out"
    ok = run_script(str(out), "--git", str(repo), "--ref=v1", "--requirements=requirements.txt")
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["source"] == {"kind": "git", "commit": head(repo), "artifact": None}
    assert result["requirements_digest"] is not None and Path(result["archive"]).is_file()

    bad = run_script(str(out), "--git", str(repo), "--ref", "nope")
    assert bad.returncode != 0 and bad.stdout == ""
    assert bad.stderr.startswith("pack_release: ") and bad.stderr.count("\n") == 1
    assert "nope" in bad.stderr and str(repo) in bad.stderr


def test_git_pyproject_requirements_come_from_the_commit(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_pyproject_tree(tmp_path / "repo")
    run_git(repo, "init", "-q", "-b", "main")
    sha = commit_all(repo, "pyproject only")
    # What is in the working copy, committed or not, does not count.
    (repo / "pyproject.toml").write_text(pyproject_with('["django"]'))
    (repo / "requirements.txt").write_text("django\n")
    out = tmp_path / "cache" / "out"
    result = pack_release.pack_git(str(repo), out, "main", requirements="requirements.txt")
    assert result["source"]["commit"] == sha
    assert read_member(result["archive"], "requirements.txt") == GENERATED
    found = members(result["archive"])
    assert found["requirements.txt"].mtime == COMMIT_TIME  # pyproject.toml's time: the commit's
    assert result["requirements_digest"] == hashlib.sha256(b"\0" + GENERATED.encode()).hexdigest()
    assert Path(result["requirements_file"]).read_text() == GENERATED
    # The same as a source directory holding that tree.
    plain = make_pyproject_tree(tmp_path / "plain")
    as_dir = pack_release.pack(plain, tmp_path / "dir-out", "", (), "requirements.txt")
    assert result["digest"] == as_dir["digest"]
    assert result["requirements_digest"] == as_dir["requirements_digest"]

    (repo / "pyproject.toml").write_text(pyproject_with('["django"]', 'dynamic = ["dependencies"]\n'))
    (repo / "requirements.txt").unlink()
    bad = commit_all(repo, "dynamic")
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack_git(str(repo), out, "main", requirements="requirements.txt")
    message = str(excinfo.value.code)
    assert message.startswith(f"pack_release: pyproject.toml in {repo} (ref main) at {bad} lists dependencies")
    assert "[project] dynamic" in message
    # Without --requirements (install mode package) the pyproject.toml is not read.
    assert pack_release.pack_git(str(repo), out, "main")["requirements_digest"] is None


def test_ref_goes_only_with_git(src, tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        pack_release.main([str(tmp_path / "out"), "--src", str(src), "--ref", "main"])
    assert excinfo.value.code == 2
    with pytest.raises(SystemExit):
        pack_release.main([str(tmp_path / "out"), "--src", str(src), "--git", str(src)])  # one kind only
    with pytest.raises(SystemExit):
        pack_release.main([str(tmp_path / "out")])  # and one is needed


# --- --artifact: a wheel or an sdist -------------------------------------------------------------

WHEEL_TIME = (2024, 5, 6, 7, 8, 10)
METADATA = """Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Dist: Flask>=3.0
Requires-Dist: pytest; extra == "test"
Requires-Dist: tomli; python_version < "3.11"
Provides-Extra: test

A demo app.
"""


def make_wheel(path: Path, extra: dict[str, bytes] | None = None, metadata: str = METADATA) -> Path:
    entries = {
        "demo/__init__.py": b"def create_app():\n    return None\n",
        "demo/static/a.css": b"a { color: blue; }\n",
        "demo-1.0.data/purelib/extra_mod.py": b"EXTRA = 1\n",
        "demo-1.0.data/scripts/x": b"#!python\nprint('x')\n",
        "demo-1.0.dist-info/METADATA": metadata.encode(),
        "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        **(extra or {}),
    }
    record = [*entries, "demo-1.0.dist-info/RECORD"]
    entries["demo-1.0.dist-info/RECORD"] = "".join(f"{name},,\n" for name in record).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, WHEEL_TIME)
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            zf.writestr(info, data)
    return path


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "dist" / "demo-1.0-py3-none-any.whl")


def read_member(archive: str | Path, name: str) -> str:
    with tarfile.open(archive, "r:gz") as tar:
        return tar.extractfile(name).read().decode()


def test_wheel_is_unpacked_like_a_source_directory(wheel, tmp_path):
    result = pack_release.pack_artifact(wheel, tmp_path / "out")
    assert result["source"] == {"kind": "artifact", "commit": None, "artifact": wheel.name}
    found = members(result["archive"])
    assert sorted(found) == [
        "demo",
        "demo-1.0.dist-info",
        "demo-1.0.dist-info/METADATA",
        "demo-1.0.dist-info/RECORD",
        "demo-1.0.dist-info/WHEEL",
        "demo/__init__.py",
        "demo/static",
        "demo/static/a.css",
        "extra_mod.py",  # purelib merged into the root; scripts left out
        "requirements.txt",
    ]
    assert result["files"] == 7
    assert read_member(result["archive"], "extra_mod.py") == "EXTRA = 1\n"
    wheel_time = calendar.timegm((*WHEEL_TIME, 0, 0, 0))
    assert {m.mtime for m in found.values()} == {wheel_time}
    assert {m.mode for m in found.values() if m.isfile()} == {0o644}


def test_wheel_requirements_are_generated_from_requires_dist(wheel, tmp_path):
    result = pack_release.pack_artifact(wheel, tmp_path / "out")
    lines = read_member(result["archive"], "requirements.txt").splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["Flask>=3.0", 'tomli; python_version < "3.11"']  # no pytest: an extra's
    expected = hashlib.sha256(b"\0" + read_member(result["archive"], "requirements.txt").encode()).hexdigest()
    assert result["requirements_digest"] == expected


def test_wheel_requirements_digest_follows_the_dependencies_not_the_version(tmp_path):
    one = pack_release.pack_artifact(make_wheel(tmp_path / "a" / "demo-1.0-py3-none-any.whl"), tmp_path / "out")
    changed = make_wheel(tmp_path / "b" / "demo-1.0-py3-none-any.whl", extra={"demo/views.py": b"V = 2\n"})
    two = pack_release.pack_artifact(changed, tmp_path / "out")
    assert one["digest"] != two["digest"]
    assert one["requirements_digest"] == two["requirements_digest"]
    metadata = METADATA.replace("Provides-Extra", "Requires-Dist: itsdangerous (>=2.0)\nProvides-Extra")
    more = make_wheel(tmp_path / "c" / "demo-1.0-py3-none-any.whl", metadata=metadata)
    three = pack_release.pack_artifact(more, tmp_path / "out")
    assert three["requirements_digest"] != one["requirements_digest"]
    # Normalised by packaging: the same dependency spelled differently gives the same line.
    assert "itsdangerous>=2.0" in read_member(three["archive"], "requirements.txt").splitlines()


def test_wheel_requirements_drop_extras_and_keep_other_markers(tmp_path):
    metadata = """Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Dist: Flask >= 3.0
Requires-Dist: pytest ; extra == 'test'
Requires-Dist: coverage[toml]; (extra == "test" or extra == "cov")
Requires-Dist: mypy; python_version >= "3.9" and extra == "dev"
Requires-Dist: sphinx; "docs" == extra
Requires-Dist: tomli; python_version < "3.11"
Requires-Dist: pywin32; sys_platform == "win32" and python_version >= "3.8"
Requires-Dist: extra-thing; os_name == "extra"
Requires-Dist: pkg @ https://example.com/pkg-1.0.tar.gz ; os_name == "posix"
Requires-Dist: itsdangerous
 (>=2.0)
Provides-Extra: test
Provides-Extra: cov
Provides-Extra: dev
Provides-Extra: docs

A demo app.
"""
    wheel = make_wheel(tmp_path / "dist" / "demo-1.0-py3-none-any.whl", metadata=metadata)
    result = pack_release.pack_artifact(wheel, tmp_path / "out")
    assert read_member(result["archive"], "requirements.txt").splitlines() == [
        pack_release.REQUIREMENTS_HEADER.strip(),
        "extra-thing; os_name == \"extra\"",  # "extra" as a value is not the extra marker
        "Flask>=3.0",
        "itsdangerous>=2.0",  # a header continued on a second line
        URL_LINE,  # a space before ';' after a URL
        'pywin32; sys_platform == "win32" and python_version >= "3.8"',
        'tomli; python_version < "3.11"',
    ]


def test_wheel_with_an_invalid_requires_dist_is_refused(tmp_path):
    metadata = METADATA.replace("Provides-Extra", "Requires-Dist: flask >>= 3\nProvides-Extra")
    wheel = make_wheel(tmp_path / "dist" / "demo-1.0-py3-none-any.whl", metadata=metadata)
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack_artifact(wheel, tmp_path / "out")
    message = str(excinfo.value.code)
    assert message.startswith(f"pack_release: {wheel.name} has an invalid Requires-Dist 'flask >>= 3' (")
    assert "\n" not in message


def test_requirements_option_replaces_the_generated_file(wheel, tmp_path, monkeypatch, capsys):
    generated = pack_release.pack_artifact(wheel, tmp_path / "out")
    (tmp_path / "lock.txt").write_text("flask==3.1.3\nwerkzeug==3.1.3\n")
    monkeypatch.chdir(tmp_path)  # a relative path is relative to the current directory
    argv = [str(tmp_path / "out"), "--artifact", str(wheel), "--requirements", "lock.txt"]
    assert pack_release.main(argv) == 0
    locked = json.loads(capsys.readouterr().out)
    assert read_member(locked["archive"], "requirements.txt") == "flask==3.1.3\nwerkzeug==3.1.3\n"
    assert locked["requirements_digest"] != generated["requirements_digest"]
    assert locked["requirements_digest"] == hashlib.sha256(b"\0flask==3.1.3\nwerkzeug==3.1.3\n").hexdigest()
    assert locked["digest"] != generated["digest"]
    assert locked["source"] == generated["source"]
    with pytest.raises(SystemExit, match="missing.txt"):
        pack_release.pack_artifact(wheel, tmp_path / "out", requirements_file=Path("missing.txt"))


def test_wheel_packs_reproducibly_and_keeps_executable_bits(tmp_path):
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl", extra={"demo/tool.sh": b"#!/bin/sh\n"})
    one = pack_release.pack_artifact(wheel, tmp_path / "out1")
    two = pack_release.pack_artifact(wheel, tmp_path / "out2")
    assert Path(one["archive"]).read_bytes() == Path(two["archive"]).read_bytes()
    assert members(one["archive"])["demo/tool.sh"].mode == 0o755


@pytest.mark.parametrize(
    "bad", ["../evil.py", "demo/../../evil.py", "/tmp/evil.py", "demo-1.0.data/purelib/../../evil.py"]
)
def test_wheel_with_an_escaping_path_is_refused(tmp_path, bad):
    wheel = make_wheel(tmp_path / "w" / "demo-1.0-py3-none-any.whl", extra={bad: b"EVIL = 1\n"})
    with pytest.raises(SystemExit, match="unsafe path"):
        pack_release.pack_artifact(wheel, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.rglob("evil.py"))


def test_not_a_wheel_is_refused(tmp_path):
    garbage = tmp_path / "demo-1.0-py3-none-any.whl"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(SystemExit, match="not a wheel"):
        pack_release.pack_artifact(garbage, tmp_path / "out")
    no_dist_info = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(no_dist_info, "w") as zf:
        zf.writestr("other/__init__.py", "")
    with pytest.raises(SystemExit, match="dist-info"):
        pack_release.pack_artifact(no_dist_info, tmp_path / "out")
    text = tmp_path / "demo.txt"
    text.write_text("x\n")
    with pytest.raises(SystemExit, match="neither a wheel"):
        pack_release.pack_artifact(text, tmp_path / "out")
    with pytest.raises(SystemExit, match="does not exist"):
        pack_release.pack_artifact(tmp_path / "nowhere.whl", tmp_path / "out")


BACKEND = '''
import os, zipfile
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if os.path.exists("FAIL"):
        raise RuntimeError("this sdist does not build")
    name = "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        zf.writestr("demo/__init__.py", open("demo/__init__.py").read())
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\\nName: demo\\nVersion: 1.0\\n"
                    "Requires-Dist: Flask>=3.0\\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
                    "Tag: py3-none-any\\n")
        zf.writestr("demo-1.0.dist-info/RECORD", "")
    return name
'''


def make_sdist(path: Path, fail: bool = False) -> Path:
    """An sdist whose in-tree build backend needs nothing from an index: it builds offline."""
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": BACKEND,
        "PKG-INFO": "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        "demo/__init__.py": "X = 1\n",
        **({"FAIL": ""} if fail else {}),
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(f"demo-1.0/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.fixture
def offline_pip(tmp_path, monkeypatch):
    """pip may not reach an index (any download fails) and caches nothing outside tmp_path."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip(f"no pip for {sys.executable}")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))


def test_sdist_is_built_into_a_wheel_first(tmp_path, offline_pip):
    result = pack_release.pack_artifact(make_sdist(tmp_path / "demo-1.0.tar.gz"), tmp_path / "out")
    assert result["source"] == {"kind": "artifact", "commit": None, "artifact": "demo-1.0-py3-none-any.whl"}
    found = members(result["archive"])
    assert "demo/__init__.py" in found and "demo-1.0.dist-info/METADATA" in found
    assert "pyproject.toml" not in found and "backend.py" not in found
    assert read_member(result["archive"], "requirements.txt").splitlines()[1:] == ["Flask>=3.0"]


def test_sdist_that_does_not_build_is_a_clear_error(tmp_path, offline_pip):
    sdist = make_sdist(tmp_path / "demo-1.0.tar.gz", fail=True)
    with pytest.raises(SystemExit) as excinfo:
        pack_release.pack_artifact(sdist, tmp_path / "out")
    message = str(excinfo.value.code)
    assert message.startswith(f"pack_release: pip could not build a wheel from {sdist}: ")
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_artifact_on_the_command_line(wheel, tmp_path):
    proc = run_script(str(tmp_path / "out"), "--artifact", str(wheel), "--salt", "pyuwsgi")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["source"] == {"kind": "artifact", "commit": None, "artifact": wheel.name}
    assert result == pack_release.pack_artifact(wheel, tmp_path / "out", "pyuwsgi")
