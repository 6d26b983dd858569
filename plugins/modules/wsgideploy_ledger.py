#!/usr/bin/python
"""Ansible module: an app's ledger, JSON lines appended on the fleet, rotated by size."""

from __future__ import annotations

DOCUMENTATION = r"""
module: wsgideploy_ledger
short_description: Append to an app's ledger of runs (JSON lines, rotated), or read its last entries
description:
  - C(state=appended) appends each of I(entries) as one JSON line to I(path) (created mode 0640,
    its directory 0755). When the file would grow past I(max_bytes), it is rotated first, to
    C(path.1) ... C(path.<keep>), the oldest dropped, so the ledger never grows without bound.
    The append is one C(write) on a file opened for appending.
  - C(state=read) changes nothing and returns the last I(count) entries that match I(kind)
    (all kinds when empty), oldest first, from the file and its rotations.
  - In check mode nothing is written.
options:
  path: {description: The ledger file., type: path, required: true}
  state: {description: appended or read., type: str, choices: [appended, read], default: appended}
  entries: {description: The entries to append (dicts)., type: list, elements: dict, default: []}
  max_bytes: {description: Rotate once the file would pass this size., type: int, default: 1048576}
  keep: {description: Rotated files to keep., type: int, default: 3}
  count: {description: How many entries to return (read)., type: int, default: 20}
  kind: {description: Only entries whose C(kind) is one of these (read)., type: list, elements: str, default: []}
"""

EXAMPLES = r"""
- name: Record the run
  wsgideploy.fleet.wsgideploy_ledger:
    path: /var/lib/wsgideploy/hello/ledger.jsonl
    entries:
      - {kind: run, run: "{{ run_id }}", result: ok}
"""

RETURN = r"""
entries: {description: The entries read (read)., type: list}
appended: {description: How many entries were appended., type: int}
rotated: {description: Whether the file was rotated first., type: bool}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def _rotate(path, keep):
    for n in range(keep, 0, -1):
        older = "%s.%d" % (path, n)
        newer = path if n == 1 else "%s.%d" % (path, n - 1)
        if os.path.exists(newer):
            os.replace(newer, older)
    if keep < 1 and os.path.exists(path):
        os.unlink(path)


def _read_lines(name):
    try:
        with open(name, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["appended", "read"], default="appended"),
            entries=dict(type="list", elements="dict", default=[]),
            max_bytes=dict(type="int", default=1048576),
            keep=dict(type="int", default=3),
            count=dict(type="int", default=20),
            kind=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    if p["state"] == "read":
        found = []
        for name in [path] + ["%s.%d" % (path, n) for n in range(1, p["keep"] + 1)]:
            entries = []
            for line in _read_lines(name):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short (a full disk): skipped
                if isinstance(entry, dict) and (not p["kind"] or entry.get("kind") in p["kind"]):
                    entries.append(entry)
            found = entries + found
            if len(found) >= p["count"]:
                break
        module.exit_json(changed=False, entries=found[-p["count"]:] if p["count"] > 0 else [])

    data = "".join(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n" for entry in p["entries"])
    if not data:
        module.exit_json(changed=False, appended=0, rotated=False)
    if module.check_mode:
        module.exit_json(changed=True, appended=len(p["entries"]), rotated=False)
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        size = 0
    rotated = size > 0 and size + len(data.encode("utf-8")) > p["max_bytes"]
    if rotated:
        _rotate(path, p["keep"])
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data.encode("utf-8"))
    finally:
        os.close(fd)
    module.exit_json(changed=True, appended=len(p["entries"]), rotated=rotated)


if __name__ == "__main__":
    main()
