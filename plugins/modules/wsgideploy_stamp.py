#!/usr/bin/python
"""Ansible module: a host's stamp, the record of what the last successful run left on it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: wsgideploy_stamp
short_description: Record what a successful run left on a host, and tell later whether it is still so
description:
  - C(state=write) records, in one root-only JSON file, the inputs digest of the run (see the
    C(wsgi_stamp_digest) filter), the type, mode, owner, group and content digest (or link
    target) of every file, directory and symlink under I(paths) (a path that does not exist is
    recorded as absent), and how to tell that the app runs (I(pidfiles), I(probe)).
  - C(state=check) changes nothing. The host is current when the stamp exists, its digest equals
    I(digest), every recorded path is still exactly as recorded (and a glob matches nothing new),
    every recorded pid file's process runs, and the recorded probe command exits 0.
  - Its base is current when all of that holds except that only I(base_digest) is equal, not
    I(digest), so the inputs differ in the release alone. The check then returns the I(facts) the
    last run recorded (what its roles said of the host), for a run that redoes only the release.
options:
  path: {description: The stamp file., type: path, required: true}
  state: {description: check or write., type: str, choices: [check, write], default: check}
  digest: {description: The inputs digest of this run., type: str, required: true}
  base_digest: {description: The digest of every input but the release (empty - none)., type: str, default: ""}
  facts: {description: "What the run's roles said of the host, returned by a later check whose base is current (write).", type: dict, default: {}}
  paths: {description: Files, directories, symlinks or globs to record (write)., type: list, elements: str, default: []}
  pidfiles: {description: Pid files whose process must run (recorded by write)., type: list, elements: path, default: []}
  probe: {description: A command (argv) that must exit 0 (recorded by write)., type: list, elements: str, default: []}
"""

RETURN = r"""
current: {description: Whether the host is as the stamp says (check)., type: bool}
reason: {description: Why the host is not current (check)., type: str}
base_current: {description: Whether all but the release is as the stamp says (check; true when current)., type: bool}
facts: {description: The facts recorded, when the base is current (check)., type: dict}
digest: {description: The digest given., type: str}
base_digest: {description: The base digest given., type: str}
"""

import glob
import hashlib
import json
import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

MAGIC = "wsgideploy-stamp/1"


def _entry(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"type": "absent"}
    meta = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISLNK(st.st_mode):
        return {"type": "link", "target": os.readlink(path), "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISDIR(st.st_mode):
        return dict(type="dir", **meta)
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return dict(type="file", sha256=digest.hexdigest(), **meta)
    return dict(type="other", **meta)


def _entries(specs):
    """Every path under specs (globs expanded, real directories walked, links not followed)."""
    found = {}
    for spec in specs:
        names = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
        for name in names:
            found[name] = _entry(name)
            if os.path.isdir(name) and not os.path.islink(name):
                for root, dirs, files in os.walk(name):
                    dirs.sort()
                    for child in sorted(dirs + files):
                        found[os.path.join(root, child)] = _entry(os.path.join(root, child))
    return found


def _pid_runs(pidfile):
    try:
        with open(pidfile, encoding="ascii") as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _drift(module, stamp):
    """Why the host is not as the stamp recorded it (files, processes, probe), or ""."""
    now = _entries(stamp.get("paths", []))
    for path in sorted(set(now) | set(stamp.get("entries", {}))):
        if now.get(path) != stamp.get("entries", {}).get(path):
            return f"{path} is not as the last run left it"
    for pidfile in stamp.get("pidfiles", []):
        if not _pid_runs(pidfile):
            return f"the process of {pidfile} does not run"
    probe = stamp.get("probe", [])
    if probe:
        if not os.path.exists(probe[0]):
            return f"{probe[0]} is missing"
        rc, out, err = module.run_command(probe)
        if rc != 0:
            return "the probe failed: " + " ".join((out + err).split())[:300]
    return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["check", "write"], default="check"),
            digest=dict(type="str", required=True),
            base_digest=dict(type="str", default=""),
            facts=dict(type="dict", default={}),
            paths=dict(type="list", elements="str", default=[]),
            pidfiles=dict(type="list", elements="path", default=[]),
            probe=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        with open(p["path"], encoding="utf-8") as fh:
            stamp = json.load(fh)
        if stamp.get("magic") != MAGIC:
            stamp = None
    except (OSError, ValueError):
        stamp = None

    if p["state"] == "check":
        same = stamp is not None and stamp.get("digest") == p["digest"]
        same_base = stamp is not None and bool(p["base_digest"]) and stamp.get("base_digest") == p["base_digest"]
        if stamp is None:
            reason = "no stamp (no successful run recorded here yet)"
        elif not (same or same_base):
            reason = "the inputs changed (code, variables or controller files)"
        else:
            reason = _drift(module, stamp)
        base_current = not reason
        if base_current and not same:
            reason = "a new release (all else is as the last run left it)"
        module.exit_json(
            changed=False,
            current=base_current and same,
            base_current=base_current,
            reason=reason,
            facts=stamp.get("facts", {}) if base_current else {},
            digest=p["digest"],
            base_digest=p["base_digest"],
        )

    record = {
        "magic": MAGIC,
        "digest": p["digest"],
        "base_digest": p["base_digest"],
        "facts": p["facts"],
        "paths": p["paths"],
        "entries": _entries(p["paths"]),
        "pidfiles": p["pidfiles"],
        "probe": p["probe"],
    }
    changed = record != stamp
    if changed and not module.check_mode:
        directory = os.path.dirname(p["path"])
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".stamp.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, p["path"])
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    module.exit_json(changed=changed, current=True, base_current=True, reason="", facts=p["facts"],
                     digest=p["digest"], base_digest=p["base_digest"])


if __name__ == "__main__":
    main()
