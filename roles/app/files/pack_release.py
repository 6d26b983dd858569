#!/usr/bin/env python3
"""Pack an app release from a directory, a git commit or a built artifact, and name it by its content.

    pack_release.py OUTDIR (--src DIR | --git URL [--ref REF] | --artifact FILE)
                    [--salt TEXT] [--exclude GLOB ...] [--requirements FILE]

Prints one JSON object: {"digest": <sha256 hex>, "archive": <path>, "files": <count>,
"requirements_digest": <sha256 hex of the requirements file and the salt, or null>,
"requirements_file": <a copy of that requirements file in OUTDIR, or null>,
"source": {"kind": "dir"|"git"|"artifact", "commit": <sha or null>, "artifact": <wheel name or null>}}.

Three kinds of source, each turned into a directory tree that is then packed the same way:

--src DIR: the directory as it is. --requirements names a file relative to DIR.

--requirements FILE with --src or --git (the app role passes it in install mode `requirements` only):
when the tree has no such file but has a pyproject.toml at its root with a [project] table, the
release carries FILE generated from [project] dependencies (no key: no dependencies), as if the
tree had shipped it: a comment line, then each requirement normalised (packaging's
Requirement), in the order given. It is in the archive at FILE (and in the digest), with
pyproject.toml's modification time, and requirements_digest is computed from it, so the same
dependencies give the same digest. Refused: dependencies listed in [project] dynamic (known only
by building the package), a pyproject.toml that is not valid TOML, a dependency that is not a valid
PEP 508 requirement, and a tree with neither FILE nor a [project] table. Without --requirements
nothing is generated and requirements_digest is null (install mode `package`).

--git URL [--ref REF]: the tree of one commit (REF defaults to HEAD: the remote's default branch;
a branch, a tag or a sha). The controller keeps a bare mirror of URL under
OUTDIR/../git/<first 16 hex of sha256(URL)>.git (a relative local path is made absolute first),
cloned the first time and fetched (--prune --tags) on every later pack; a full sha the mirror
already holds is used without fetching. The commit's tree is exported with `git archive`, so
.gitattributes export-ignore/export-subst apply and uncommitted or ignored files never get in;
every file and directory carries the commit time as its modification time, so one commit always
gives the same archive. Submodules are not supported: a tree with a submodule is refused unless
--exclude leaves it out. git runs with GIT_TERMINAL_PROMPT=0: credentials must come from a helper
or an ssh agent. --requirements names a file relative to the tree's root.

--artifact FILE: a wheel (.whl), or an sdist (.tar.gz, .zip) that is first built into a wheel
with `python -m pip wheel --no-deps` on the controller (pip's own configuration and PIP_*
variables apply, the index included). The wheel is unpacked into the layout of a source
directory: its top-level packages, modules and *.dist-info directory at the release root, the
contents of <name>.data/purelib and <name>.data/platlib merged into the root, <name>.data/scripts,
headers and data left out. A requirements.txt at the root lists the wheel's Requires-Dist (each
parsed and normalised by packaging, markers kept, requirements whose marker mentions `extra` left
out, sorted, under a fixed comment line, so releases with the same dependencies share a
virtualenv); with --requirements FILE (a path on the controller, e.g. a pinned lock file) that
file's content is the requirements.txt instead.
requirements_digest is always set for an artifact. Files keep the wheel's entry times (read as
UTC); directories and requirements.txt get the newest of them.

The digest covers what the release is made of and nothing else: each entry's path, type,
normalised mode (0644/0755) and content (or link target), in sorted order, plus the salt. Touching
a file without changing it keeps the digest; changing one byte changes it. The same tree gives the
same digest whatever kind of source it came from (a commit and a checkout of it, a tag and a
branch at that commit). The digest doubles as the release id, so a deploy of unchanged code finds
its release already on the host. The salt lets the caller fold in what else defines a release
(e.g. the app server packages). --exclude and the default excludes apply to every kind of source.

The archive keeps the files' real modification times (nginx derives Last-Modified and ETag from
them, so caches notice a changed static file even when its size stays the same); owners are root.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import email.parser
import fcntl
import fnmatch
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: only a pyproject.toml fallback needs it
    tomllib = None  # type: ignore[assignment]

try:
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
except ModuleNotFoundError:  # only generated requirements need it
    Marker = Requirement = None  # type: ignore[assignment,misc]

DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", "__pycache__", "*.pyc", "*.pyo", ".venv", "venv", "*.egg-info",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox", "build", "dist",
    ".coverage", "htmlcov", ".DS_Store", "*.swp",
)


def excluded(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def walk(src: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Every file, symlink and directory below src (relative), sorted, without excluded names."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not excluded(d, patterns))
        base = Path(dirpath)
        for d in dirnames:
            found.append((base / d).relative_to(src))
        for f in sorted(filenames):
            if not excluded(f, patterns):
                found.append((base / f).relative_to(src))
    return sorted(found, key=lambda p: p.as_posix())


def generated_info(name: str, mtime: int, data: bytes | None) -> tarfile.TarInfo:
    """The tar header of a file (data) or directory (None) that is not on disk."""
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = mtime
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.type, info.mode, info.size = tarfile.REGTYPE, 0o644, len(data)
    return info


def build_tar(
    src: Path, patterns: tuple[str, ...], generated: dict[str, tuple[bytes, int]] | None = None
) -> tuple[bytes, str, int]:
    """The tar archive of src, the SHA-256 of its manifest (without salt) and its file count.

    generated: files that are not in src ({relative posix path: (content, mtime)}), packed as if
    they were (mode 0644), with any missing parent directory (0755, the same mtime).
    """
    buf = io.BytesIO()
    manifest = hashlib.sha256()
    count = 0
    extra: dict[str, tuple[bytes | None, int]] = {}
    for name, (data, mtime) in (generated or {}).items():
        parts = name.split("/")
        for depth in range(1, len(parts)):
            extra.setdefault("/".join(parts[:depth]), (None, mtime))
        extra[name] = (data, mtime)
    paths: dict[str, Path | None] = {rel.as_posix(): rel for rel in walk(src, patterns)}
    for name, (data, _) in extra.items():
        rel = paths.setdefault(name, None)
        if rel is not None and (data is not None or (src / rel).is_symlink() or not (src / rel).is_dir()):
            # A directory on disk stays as it is; anything else there clashes with the generated file.
            raise SystemExit(f"pack_release: cannot add the generated {name} to {src}: {name} is in the way")
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(paths):
            rel = paths[name]
            if rel is None:
                data, mtime = extra[name]
                info = generated_info(name, mtime, data)
                if data is None:
                    tar.addfile(info)
                    entry = b"d"
                else:
                    tar.addfile(info, io.BytesIO(data))
                    entry = b"f%o" % info.mode + hashlib.sha256(data).digest()
                    count += 1
                manifest.update(name.encode() + b"\0" + entry + b"\n")
                continue
            full = src / rel
            info = tar.gettarinfo(str(full), arcname=rel.as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.pax_headers = {}
            if info.islnk():
                # A second name of a hard-linked file: store it as the regular file it is.
                info.type = tarfile.REGTYPE
                info.linkname = ""
                info.size = full.lstat().st_size
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
                entry = b"d"
            elif info.issym():
                info.mode = 0o777
                tar.addfile(info)
                entry = b"l" + info.linkname.encode()
            elif info.isfile():
                # Any x bit makes it executable, whoever packs it.
                info.mode = 0o755 if full.lstat().st_mode & 0o111 else 0o644
                with open(full, "rb") as fh:
                    data = fh.read()
                tar.addfile(info, io.BytesIO(data))
                entry = b"f%o" % info.mode + hashlib.sha256(data).digest()
                count += 1
            else:
                continue  # sockets, fifos and devices have no place in a release
            manifest.update(rel.as_posix().encode() + b"\0" + entry + b"\n")
    return buf.getvalue(), manifest.hexdigest(), count


PYPROJECT_HEADER = "# generated from pyproject.toml [project] dependencies\n"


def need_packaging(what: str) -> None:
    if Requirement is None:
        raise SystemExit(
            f"pack_release: {what} needs the Python library 'packaging' on the controller ({sys.executable})"
        )


def parse_requirement(text: str) -> Requirement:
    """A PEP 508 requirement, or ValueError with a one-line reason."""
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else "invalid") from None


def pyproject_requirements(src: Path, requirements: str, where: str) -> bytes | None:
    """A requirements file made of pyproject.toml's [project] dependencies; None without a [project] table."""
    path = src / "pyproject.toml"
    if not path.is_file():
        return None
    named = f"pyproject.toml in {where}"
    if not path.resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"pack_release: {named} is a link to a file outside the source")
    if tomllib is None:
        raise SystemExit(f"pack_release: reading {named} needs Python 3.11 or later on the controller")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise SystemExit(f"pack_release: {named} is not valid TOML: not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"pack_release: {named} is not valid TOML: {exc}") from None
    project = data.get("project")
    if project is None:
        return None
    if not isinstance(project, dict):
        raise SystemExit(f"pack_release: {named}: project is not a table")
    dynamic = project.get("dynamic", [])
    if not isinstance(dynamic, list):
        raise SystemExit(f"pack_release: {named}: [project] dynamic is not a list")
    if "dependencies" in dynamic:
        raise SystemExit(
            f"pack_release: {named} lists dependencies in [project] dynamic: they are known only by"
            f" building the package; ship {requirements} or list them in [project] dependencies"
        )
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise SystemExit(f"pack_release: {named}: [project] dependencies is not a list of strings")
    need_packaging(f"reading {named}")
    lines = []
    for text in dependencies:
        try:
            lines.append(str(parse_requirement(text)))
        except ValueError as exc:
            raise SystemExit(
                f"pack_release: {named} has an invalid requirement in [project] dependencies: {text!r} ({exc})"
            ) from None
    return (PYPROJECT_HEADER + "".join(f"{line}\n" for line in lines)).encode()


def release_requirements(src: Path, requirements: str, where: str) -> tuple[bytes, dict[str, tuple[bytes, int]]]:
    """The content of the requirements file, and what to add to the tree for it ({} if it is there).

    The file itself if the tree has it; otherwise one generated from pyproject.toml, to be added
    to the release at the same place.
    """
    path = src / requirements
    if path.is_file():
        return path.read_bytes(), {}
    try:
        parts = safe_parts(requirements)
    except ValueError:
        raise SystemExit(f"pack_release: requirements file {requirements} does not exist in {where}") from None
    if os.path.lexists(path):
        raise SystemExit(f"pack_release: requirements file {requirements} in {where} is not a file")
    content = pyproject_requirements(src, requirements, where)
    if content is None:
        raise SystemExit(
            f"pack_release: {where} has no requirements file {requirements}"
            " and no [project] dependencies in pyproject.toml"
        )
    here = src
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink() or (os.path.lexists(here) and not here.is_dir()):
            raise SystemExit(
                f"pack_release: cannot add {requirements} generated from pyproject.toml to {where}:"
                f" {here.relative_to(src).as_posix()} is not a directory"
            )
    mtime = int((src / "pyproject.toml").stat().st_mtime)
    return content, {"/".join(parts): (content, mtime)}


def source_info(kind: str, commit: str | None = None, artifact: str | None = None) -> dict:
    return {"kind": kind, "commit": commit, "artifact": artifact}


def pack_tree(
    src: Path,
    outdir: Path,
    salt: str,
    extra_excludes: tuple[str, ...],
    requirements: str,
    source: dict,
    where: str,
) -> dict:
    """Pack the directory src (of any kind of source; `where` names it in errors)."""
    patterns = DEFAULT_EXCLUDES + tuple(extra_excludes)
    req_content, generated = release_requirements(src, requirements, where) if requirements else (None, {})
    raw, manifest, count = build_tar(src, patterns, generated)
    if count == 0:
        raise SystemExit(f"pack_release: {where} holds no files")
    # SHA-256 of the requirements and the salt: equal digests can share one virtualenv.
    req_digest = None
    if req_content is not None:
        req_digest = hashlib.sha256(salt.encode() + b"\0" + req_content).hexdigest()
    digest = hashlib.sha256(salt.encode() + b"\0" + manifest.encode()).hexdigest()
    outdir.mkdir(parents=True, exist_ok=True)
    archive = outdir / f"{digest}.tar.gz"
    if not archive.exists():
        tmp = archive.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
            gz.write(raw)
        os.replace(tmp, archive)
    req_file = None
    if req_digest:
        # A copy on the controller, for what needs the requirements outside the archive (a wheelhouse).
        req_file = outdir / f"{req_digest}.requirements.txt"
        if not req_file.exists():
            tmp = req_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(req_content)
            os.replace(tmp, req_file)
    return {
        "digest": digest,
        "archive": str(archive),
        "files": count,
        "requirements_digest": req_digest,
        "requirements_file": str(req_file) if req_file else None,
        "source": source,
    }


def pack(
    src: Path, outdir: Path, salt: str = "", extra_excludes: tuple[str, ...] = (), requirements: str = ""
) -> dict:
    """--src: pack the directory src."""
    if not src.is_dir():
        raise SystemExit(f"pack_release: source directory {src} does not exist")
    return pack_tree(
        src, outdir, salt, extra_excludes, requirements, source_info("dir"), f"source directory {src}"
    )


# --- unpacking archives safely -------------------------------------------------------------------


def safe_parts(name: str) -> list[str]:
    """The components of an archive member name, or ValueError if it could land outside the root."""
    if not name or "\0" in name or "\\" in name or name.startswith("/"):
        raise ValueError(name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(name)
    return parts


def make_parents(root: Path, parts: list[str]) -> Path:
    """Create the directories leading to root/parts (none of them may be a link); return the target."""
    here = root
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise ValueError("/".join(parts))
        here.mkdir(exist_ok=True)
    return here / parts[-1]


def write_file(target: Path, data: io.BufferedIOBase, executable: bool, mtime: int) -> None:
    with open(target, "xb") as fh:  # never through an existing name: duplicates are refused
        shutil.copyfileobj(data, fh)
    target.chmod(0o755 if executable else 0o644)
    os.utime(target, (mtime, mtime))


def extract_tar(tar_path: Path, dest: Path) -> None:
    """Extract a `git archive` tar: directories, regular files and symlinks (stored, never followed)."""
    dest.mkdir()
    dirs: list[tuple[Path, int]] = []
    with tarfile.open(tar_path) as tar:
        for member in tar:
            parts = safe_parts(member.name)
            target = make_parents(dest, parts)
            mtime = int(member.mtime)
            if member.isdir():
                if target.is_symlink():
                    raise ValueError(member.name)
                target.mkdir(exist_ok=True)
                dirs.append((target, mtime))
            elif member.isreg():
                source = tar.extractfile(member)
                assert source is not None
                with source:
                    write_file(target, source, bool(member.mode & 0o111), mtime)
            elif member.issym():
                os.symlink(member.linkname, target)
                if os.utime in os.supports_follow_symlinks:
                    os.utime(target, (mtime, mtime), follow_symlinks=False)
            else:
                raise ValueError(member.name)
    for path, mtime in reversed(dirs):  # children first: creating them moved the parents' times
        os.utime(path, (mtime, mtime))


# --- git -----------------------------------------------------------------------------------------

FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def git(*args: str | os.PathLike, where: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *map(str, args)],
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},  # fail, never ask for a password
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise SystemExit(f"pack_release: git is not installed on the controller (for {where})") from None


def git_ok(*args: str | os.PathLike, where: str, what: str) -> bytes:
    """Run git; exit with a one-line message naming `where` if it fails."""
    proc = git(*args, where=where)
    if proc.returncode != 0:
        message = last_line(proc.stderr.decode(errors="replace"))
        raise SystemExit(f"pack_release: {what} {where} failed: {message}")
    return proc.stdout


def mirror_path(url: str, outdir: Path) -> Path:
    return outdir.absolute().parent / "git" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.git"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One pack at a time per mirror on this controller."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def update_mirror(url: str, ref: str, mirror: Path, where: str) -> None:
    """Clone the mirror the first time, fetch into it afterwards (not for a sha it already holds)."""
    if not mirror.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=mirror.parent))
        try:
            git_ok("clone", "--mirror", "--quiet", "--", url, tmp, where=where, what="cloning")
            os.rename(tmp, mirror)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if FULL_SHA.fullmatch(ref):
        if git("-C", mirror, "cat-file", "-e", f"{ref}^{{commit}}", where=where).returncode == 0:
            return
    git_ok("-C", mirror, "fetch", "--prune", "--tags", "--quiet", "origin", where=where, what="fetching")
    if ref == "HEAD":
        # A mirror's HEAD is the remote's default branch at clone time; follow a change of it.
        proc = git("-C", mirror, "ls-remote", "--symref", "origin", "HEAD", where=where)
        found = re.match(rb"ref: (refs/heads/\S+)\tHEAD$", proc.stdout, re.MULTILINE)
        if proc.returncode == 0 and found:
            git("-C", mirror, "symbolic-ref", "HEAD", found.group(1).decode(), where=where)


def refuse_submodules(mirror: Path, sha: str, patterns: tuple[str, ...], where: str) -> None:
    listing = git_ok("-C", mirror, "ls-tree", "-r", "-z", sha, where=where, what="listing")
    for entry in listing.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        if meta.startswith(b"160000 "):
            name = path.decode(errors="replace")
            if not any(excluded(part, patterns) for part in name.split("/")):
                raise SystemExit(
                    f"pack_release: {where} has a submodule at {name}; submodules are not supported"
                    " (leave it out with --exclude)"
                )


def pack_git(
    url: str,
    outdir: Path,
    ref: str = "HEAD",
    salt: str = "",
    extra_excludes: tuple[str, ...] = (),
    requirements: str = "",
) -> dict:
    """--git: pack the tree of the commit `ref` of the repository at url."""
    where = f"{url} (ref {ref})"
    if not ref or ref.startswith("-"):
        raise SystemExit(f"pack_release: invalid ref {ref!r} for {url}")
    if "://" not in url and os.path.isdir(url):
        url = os.path.abspath(url)  # the same repository whatever the current directory
    mirror = mirror_path(url, outdir)
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pack_release.") as tmp:
        with locked(mirror.with_suffix(".lock")):
            update_mirror(url, ref, mirror, where)
            proc = git("-C", mirror, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", where=where)
            if proc.returncode != 0:
                raise SystemExit(f"pack_release: {url} has no commit named by ref {ref!r}")
            sha = proc.stdout.decode().strip()
            refuse_submodules(mirror, sha, DEFAULT_EXCLUDES + tuple(extra_excludes), where)
            tar_path = Path(tmp) / "tree.tar"
            git_ok(
                "-C", mirror, "archive", "--format=tar", f"--output={tar_path}", sha, where=where, what="exporting"
            )
        tree = Path(tmp) / "tree"
        try:
            extract_tar(tar_path, tree)
        except (ValueError, OSError, tarfile.TarError) as exc:
            raise SystemExit(f"pack_release: cannot export {where}: unsafe or unreadable entry {exc}") from None
        source = source_info("git", commit=sha)
        return pack_tree(tree, outdir, salt, extra_excludes, requirements, source, f"{where} at {sha}")


# --- artifacts -----------------------------------------------------------------------------------

REQUIREMENTS_HEADER = "# Requires-Dist of the wheel without its extras (generated by pack_release.py)\n"


def build_wheel(sdist: Path, wheel_dir: Path) -> Path:
    """Build a wheel from an sdist with pip on the controller."""
    wheel_dir.mkdir()
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "--no-input"]
    cmd += ["--wheel-dir", str(wheel_dir), str(sdist)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"pack_release: pip could not build a wheel from {sdist}: {last_line(proc.stderr or proc.stdout)}"
        )
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"pack_release: pip built {len(wheels)} wheels from {sdist}, expected one")
    return wheels[0]


def zip_time(info: zipfile.ZipInfo) -> int:
    try:
        return calendar.timegm((*info.date_time, 0, 0, 0))
    except (ValueError, OverflowError):
        return 315532800  # 1980-01-01, the earliest a zip entry can say


def unpack_wheel(wheel: Path, dest: Path) -> tuple[str, int]:
    """Unpack the wheel into dest in the layout of a source directory; its METADATA and newest time."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SystemExit(f"pack_release: {wheel} is not a wheel: {exc}") from None
    with zf:
        entries = []
        for info in zf.infolist():
            try:
                entries.append((info, safe_parts(info.filename)))
            except ValueError:
                raise SystemExit(
                    f"pack_release: {wheel} holds an unsafe path {info.filename!r}; not unpacking it"
                ) from None
        dist_infos = {parts[0] for _, parts in entries if len(parts) > 1 and parts[0].endswith(".dist-info")}
        if len(dist_infos) != 1:
            raise SystemExit(f"pack_release: {wheel} is not a wheel: {len(dist_infos)} *.dist-info directories")
        dist_info = dist_infos.pop()
        data_dir = dist_info[: -len(".dist-info")] + ".data"
        try:
            metadata = zf.read(f"{dist_info}/METADATA").decode("utf-8")
        except (KeyError, UnicodeDecodeError) as exc:
            raise SystemExit(f"pack_release: {wheel} is not a wheel: no {dist_info}/METADATA ({exc})") from None
        newest = max((zip_time(info) for info, _ in entries), default=315532800)
        dest.mkdir()
        try:
            for info, parts in entries:
                if parts[0] == data_dir:
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue  # scripts, headers, data: not part of an importable release
                    parts = parts[2:]
                target = make_parents(dest, parts)
                if info.is_dir():
                    target.mkdir(exist_ok=True)
                    continue
                with zf.open(info) as data:
                    write_file(target, data, bool((info.external_attr >> 16) & 0o111), zip_time(info))
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise SystemExit(f"pack_release: cannot unpack {wheel}: {exc}") from None
    for dirpath, _, _ in os.walk(dest):
        os.utime(dirpath, (newest, newest))
    return metadata, newest


def marker_variables(marker: Marker) -> Iterator[str]:
    """The environment names a parsed marker compares (e.g. python_version, extra)."""

    def visit(node: object) -> Iterator[str]:
        if isinstance(node, list):  # a parenthesised group
            for item in node:
                yield from visit(item)
        elif isinstance(node, tuple):  # (lhs, op, rhs): one side is a Variable, the other a Value
            for side in (node[0], node[2]):
                if type(side).__name__ == "Variable":
                    yield side.value
        # "and" / "or" strings join the comparisons

    # packaging keeps the parsed marker as a nested list; it has no public accessor for it.
    yield from visit(marker._markers)


def mentions_extra(marker: Marker | None) -> bool:
    """Whether the requirement applies only with some extra (an optional dependency)."""
    return marker is not None and "extra" in set(marker_variables(marker))


def wheel_requirements(metadata: str, wheel: str = "the wheel") -> str:
    """requirements.txt from METADATA's Requires-Dist: markers kept, requirements of extras left out."""
    need_packaging(f"reading the Requires-Dist of {wheel}")
    headers = email.parser.HeaderParser().parsestr(metadata)
    lines = set()
    for value in headers.get_all("Requires-Dist") or []:
        text = "".join(str(value).splitlines()).strip()  # unfold a header continued on several lines
        if not text:
            continue
        try:
            req = parse_requirement(text)
        except ValueError as exc:
            raise SystemExit(f"pack_release: {wheel} has an invalid Requires-Dist {text!r} ({exc})") from None
        if not mentions_extra(req.marker):
            lines.add(str(req))
    return REQUIREMENTS_HEADER + "".join(f"{line}\n" for line in sorted(lines, key=lambda s: (s.lower(), s)))


def pack_artifact(
    artifact: Path,
    outdir: Path,
    salt: str = "",
    extra_excludes: tuple[str, ...] = (),
    requirements_file: Path | None = None,
) -> dict:
    """--artifact: pack a wheel (or an sdist built into one) as a source directory."""
    if not artifact.is_file():
        raise SystemExit(f"pack_release: artifact {artifact} does not exist")
    if requirements_file is not None and not requirements_file.is_file():
        raise SystemExit(f"pack_release: requirements file {requirements_file} does not exist")
    with tempfile.TemporaryDirectory(prefix="pack_release.") as tmp:
        if artifact.name.endswith(".whl"):
            wheel = artifact
        elif artifact.name.endswith((".tar.gz", ".zip")):
            wheel = build_wheel(artifact, Path(tmp) / "wheel")
        else:
            raise SystemExit(
                f"pack_release: artifact {artifact} is neither a wheel (.whl) nor an sdist (.tar.gz, .zip)"
            )
        root = Path(tmp) / "release"
        metadata, newest = unpack_wheel(wheel, root)
        reqs = root / "requirements.txt"
        if reqs.is_symlink() or reqs.is_dir():
            raise SystemExit(f"pack_release: {wheel} has a requirements.txt that is not a file")
        if requirements_file is not None:
            content = requirements_file.read_bytes()
        else:
            content = wheel_requirements(metadata, wheel.name).encode()
        reqs.write_bytes(content)  # replaces one the wheel may ship
        reqs.chmod(0o644)
        os.utime(reqs, (newest, newest))
        os.utime(root, (newest, newest))
        source = source_info("artifact", artifact=wheel.name)
        return pack_tree(root, outdir, salt, extra_excludes, "requirements.txt", source, f"wheel {wheel.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="where the archives go (git mirrors go to OUTDIR/../git)")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--src", type=Path, metavar="DIR", help="a source directory")
    kind.add_argument("--git", metavar="URL", help="a git repository (any git URL or a local path)")
    kind.add_argument("--artifact", type=Path, metavar="FILE", help="a wheel (.whl) or sdist (.tar.gz, .zip)")
    parser.add_argument("--ref", help="with --git: branch, tag or commit (default HEAD)")
    parser.add_argument("--salt", default="")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    parser.add_argument(
        "--requirements",
        default="",
        metavar="FILE",
        help="--src/--git: requirements file (relative to the tree) to digest, generated from "
        "pyproject.toml [project] dependencies if the tree has none; "
        "--artifact: a file on the controller to use as requirements.txt instead of the generated one",
    )
    args = parser.parse_args(argv)
    if args.ref is not None and args.git is None:
        parser.error("--ref goes only with --git")
    excludes = tuple(args.exclude)
    if args.src is not None:
        result = pack(args.src.resolve(), args.outdir, args.salt, excludes, args.requirements)
    elif args.git is not None:
        result = pack_git(args.git, args.outdir, args.ref or "HEAD", args.salt, excludes, args.requirements)
    else:
        lock = Path(args.requirements) if args.requirements else None
        result = pack_artifact(args.artifact, args.outdir, args.salt, excludes, lock)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
