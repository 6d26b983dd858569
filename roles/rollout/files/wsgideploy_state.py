#!/usr/bin/env python3
"""Save the live state of an app on its host before a change, and put it back after a failed one.

    wsgideploy-state save FILE PATH...    record PATH (a file, directory, symlink, or a glob) in FILE
    wsgideploy-state restore FILE         make every recorded path exactly as it was

What is recorded: the content, mode, owner and group of files, the target of symlinks (not
followed), directories with everything below them, and paths that did not exist. A glob also
records that nothing else matched it: a file that matches it at restore time and was not there
before is removed (a unit or ini file the failed change added). FILE is written 0600 (it may hold
settings with secrets) by an atomic rename.

Prints one JSON line: {"changed": bool, "paths": [...]} -- for save, whether FILE's record
differs from the one it replaces; for restore, the paths that were put back or removed.
Exit 0 done, 1 error, 2 usage.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import stat
import sys
import tempfile

MAGIC = "wsgideploy-state/1"


def _entry(path: str) -> dict:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"type": "absent"}
    meta = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISLNK(st.st_mode):
        return {"type": "link", "target": os.readlink(path), "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISDIR(st.st_mode):
        return {"type": "dir", **meta}
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as fh:
            data = base64.b64encode(fh.read()).decode()
        return {"type": "file", "data": data, **meta}
    raise ValueError(f"{path}: not a file, directory or symlink")


def _walk(path: str) -> list[str]:
    """path and, for a real directory, everything below it (links are not followed)."""
    found = [path]
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            found += [os.path.join(root, n) for n in sorted(dirs + files)]
    return found


def _matches(spec: str) -> list[str]:
    names = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
    return [p for name in names for p in _walk(name) if os.path.lexists(p) or not glob.has_magic(spec)]


def record(specs: list[str]) -> dict:
    for spec in specs:
        if not os.path.isabs(spec):
            raise ValueError(f"{spec}: paths must be absolute")
    return {"format": MAGIC, "specs": {spec: {p: _entry(p) for p in _matches(spec)} for spec in specs}}


def _atomic_write(path: str, data: bytes, mode: int, uid: int, gid: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".wsgideploy-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path, topdown=False):
            for n in files:
                os.unlink(os.path.join(root, n))
            for n in dirs:
                p = os.path.join(root, n)
                os.unlink(p) if os.path.islink(p) else os.rmdir(p)
        os.rmdir(path)
    else:
        os.unlink(path)


def _put_back(path: str, want: dict) -> bool:
    """Make path as recorded; whether anything changed."""
    if _entry(path) == want:
        return False
    kind = want["type"]
    if kind == "absent":
        _remove(path)
        return True
    # Another kind of thing stands there (a directory where a file was, ...): it goes first.
    if os.path.lexists(path) and _entry(path)["type"] != kind:
        _remove(path)
    if kind == "dir":
        os.makedirs(path, exist_ok=True)
        os.chown(path, want["uid"], want["gid"])
        os.chmod(path, want["mode"])
    elif kind == "file":
        _atomic_write(path, base64.b64decode(want["data"]), want["mode"], want["uid"], want["gid"])
    elif kind == "link":
        tmp = os.path.join(os.path.dirname(path), f".wsgideploy-link-{os.getpid()}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(want["target"], tmp)
        os.lchown(tmp, want["uid"], want["gid"])
        os.rename(tmp, path)
    return True


def restore(saved: dict) -> list[str]:
    if saved.get("format") != MAGIC:
        raise ValueError("not a wsgideploy-state record")
    changed: list[str] = []
    for spec, entries in saved["specs"].items():
        # What the change added: matches of the spec that were not there before, deepest first.
        for path in sorted(set(_matches(spec)) - set(entries), key=lambda p: p.count("/"), reverse=True):
            if os.path.lexists(path):
                _remove(path)
                changed.append(path)
        for path in sorted(entries, key=lambda p: p.count("/")):
            if _put_back(path, entries[path]):
                changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("save", "restore") or (argv[0] == "save" and len(argv) < 3):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: wsgideploy-state save FILE PATH... | restore FILE", file=sys.stderr)
        return 2
    action, path = argv[0], argv[1]
    try:
        if action == "save":
            new = record(argv[2:])
            try:
                with open(path) as fh:
                    old = json.load(fh)
            except (OSError, ValueError):
                old = None
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            if new != old:
                _atomic_write(path, json.dumps(new, sort_keys=True).encode(), 0o600, 0, 0)
            print(json.dumps({"changed": new != old, "paths": sorted(p for e in new["specs"].values() for p in e)}))
        else:
            with open(path) as fh:
                saved = json.load(fh)
            changed = restore(saved)
            print(json.dumps({"changed": bool(changed), "paths": changed}))
    except (OSError, ValueError) as exc:
        print(f"wsgideploy-state: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
