#!/usr/bin/env python3
"""Build a wheelhouse on the controller for one kind of target host.

    build_wheelhouse.py DEST --python-version 3.11 --machine x86_64 --glibc 2.36
                        [--requirement FILE] [PACKAGE ...] [--pip-arg ARG ...]

Downloads binary wheels only (`pip download --only-binary=:all:`) of the requirements file and the
packages, for CPython X.Y on <machine> Linux with glibc >= 2.17 up to the given version (manylinux
tags) or pure Python. The target's own interpreter is never needed, so one controller serves
hosts of several Python versions. DEST is filled atomically: a complete wheelhouse (marked by
.complete) is reused as it is. Prints one JSON object: {"wheelhouse", "wheels", "built"}.
A requirement published only as an sdist fails the build with pip's message: build that wheel
yourself and pass it with --pip-arg=--find-links=DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def platforms(machine: str, glibc: str) -> list[str]:
    """manylinux platform tags a host with this glibc accepts, newest first."""
    try:
        major, minor = (int(x) for x in glibc.split(".")[:2])
    except ValueError:
        raise SystemExit(f"build_wheelhouse: glibc version {glibc!r} is not X.Y") from None
    if major != 2 or minor < 17:
        raise SystemExit(f"build_wheelhouse: glibc {glibc} is older than 2.17 (manylinux2014); not supported")
    tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, 16, -1)]
    return tags + [f"manylinux2014_{machine}"]


def pip_download_argv(dest: Path, python_version: str, machine: str, glibc: str, requirement: str | None,
                      packages: list[str], pip_args: list[str]) -> list[str]:
    nodot = python_version.replace(".", "")
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--only-binary=:all:", "--dest", str(dest), "--python-version", python_version,
            "--implementation", "cp", "--abi", f"cp{nodot}"]
    for tag in platforms(machine, glibc):
        argv += ["--platform", tag]
    if requirement:
        argv += ["--requirement", requirement]
    return argv + list(packages) + list(pip_args)


def build(dest: Path, python_version: str, machine: str, glibc: str, requirement: str | None,
          packages: list[str], pip_args: list[str]) -> dict:
    if (dest / ".complete").exists():
        wheels = sorted(p.name for p in dest.glob("*.whl"))
        return {"wheelhouse": str(dest), "wheels": len(wheels), "built": False}
    if not requirement and not packages:
        raise SystemExit("build_wheelhouse: nothing to download (no --requirement, no packages)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp", dir=dest.parent))
    try:
        res = subprocess.run(pip_download_argv(tmp, python_version, machine, glibc, requirement, packages, pip_args),
                             capture_output=True, text=True, check=False)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
            raise SystemExit("build_wheelhouse: pip download failed for CPython "
                             f"{python_version} {machine} glibc {glibc}: " + " | ".join(tail))
        wheels = sorted(p.name for p in tmp.glob("*.whl"))
        not_wheels = sorted(p.name for p in tmp.iterdir() if p.suffix != ".whl")
        if not_wheels:
            raise SystemExit(f"build_wheelhouse: pip left files that are not wheels: {not_wheels}")
        (tmp / ".complete").write_text("\n".join(wheels) + "\n")
        tmp.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)  # an interrupted earlier build
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return {"wheelhouse": str(dest), "wheels": len(wheels), "built": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--python-version", required=True, help="X.Y of the target's CPython")
    parser.add_argument("--machine", required=True, help="platform.machine() of the target, e.g. x86_64")
    parser.add_argument("--glibc", required=True, help="glibc version of the target, e.g. 2.36")
    parser.add_argument("--requirement", help="requirements file on the controller")
    parser.add_argument("--pip-arg", action="append", default=[], help="extra argument for pip download")
    parser.add_argument("packages", nargs="*")
    args = parser.parse_intermixed_args(argv)
    print(json.dumps(build(args.dest, args.python_version, args.machine, args.glibc, args.requirement,
                           args.packages, args.pip_arg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
