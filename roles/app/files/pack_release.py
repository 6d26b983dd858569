#!/usr/bin/env python3
"""Pack an app source directory into a reproducible release archive and name it by its content.

    pack_release.py SRC OUTDIR [--salt TEXT] [--exclude GLOB ...] [--requirements FILE]

Prints one JSON object: {"digest": <sha256 hex>, "archive": <path>, "files": <count>,
"requirements_digest": <sha256 hex of --requirements and the salt, or null>}.

The digest covers what the release is made of and nothing else: each entry's path, type,
normalised mode (0644/0755) and content (or link target), in sorted order, plus the salt. Touching
a file without changing it keeps the digest; changing one byte changes it. The digest doubles as
the release id, so a deploy of unchanged code finds its release already on the host. The salt
lets the caller fold in what else defines a release (e.g. the app server packages).

The archive keeps the files' real modification times (nginx derives Last-Modified and ETag from
them, so caches notice a changed static file even when its size stays the same); owners are root.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

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


def build_tar(src: Path, patterns: tuple[str, ...]) -> tuple[bytes, str, int]:
    """The tar archive of src, the SHA-256 of its manifest (without salt) and its file count."""
    buf = io.BytesIO()
    manifest = hashlib.sha256()
    count = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in walk(src, patterns):
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


def requirements_digest(src: Path, requirements: str, salt: str) -> str | None:
    """SHA-256 of the requirements file and the salt: equal digests can share one virtualenv."""
    if not requirements:
        return None
    path = src / requirements
    if not path.is_file():
        raise SystemExit(f"pack_release: requirements file {path} does not exist")
    return hashlib.sha256(salt.encode() + b"\0" + path.read_bytes()).hexdigest()


def pack(
    src: Path, outdir: Path, salt: str = "", extra_excludes: tuple[str, ...] = (), requirements: str = ""
) -> dict:
    if not src.is_dir():
        raise SystemExit(f"pack_release: source directory {src} does not exist")
    patterns = DEFAULT_EXCLUDES + tuple(extra_excludes)
    raw, manifest, count = build_tar(src, patterns)
    if count == 0:
        raise SystemExit(f"pack_release: source directory {src} holds no files")
    digest = hashlib.sha256(salt.encode() + b"\0" + manifest.encode()).hexdigest()
    outdir.mkdir(parents=True, exist_ok=True)
    archive = outdir / f"{digest}.tar.gz"
    if not archive.exists():
        tmp = archive.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
            gz.write(raw)
        os.replace(tmp, archive)
    return {
        "digest": digest,
        "archive": str(archive),
        "files": count,
        "requirements_digest": requirements_digest(src, requirements, salt),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--salt", default="")
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--requirements", default="", help="requirements file (relative to SRC) to digest")
    args = parser.parse_args(argv)
    print(json.dumps(pack(args.src.resolve(), args.outdir, args.salt, tuple(args.exclude), args.requirements)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
