#!/usr/bin/python
"""Ansible module: an app's fleet lock, a directory created atomically on one host of the fleet."""

from __future__ import annotations

DOCUMENTATION = r"""
module: wsgideploy_lock
short_description: Take, release or read an app's deploy lock, kept on one host of its fleet
description:
  - The lock is a directory, created with one C(mkdir) (atomic - of two runs that try at once,
    exactly one creates it). A file in it, C(holder.json), says who holds it - the owner, the
    playbook, the target release, a message, when it was taken - and the run that holds it.
  - C(state=acquired) takes it. When another run holds it, the module fails at once naming the
    holder, what it does and the lock's age, unless I(wait) is given (it then polls until the lock
    is free, or fails when the wait is over) or I(steal) (it then takes the lock over and returns
    the holder it replaced, for the ledger). Taken already by I(run) - nothing to do.
  - C(state=released) removes it, when I(run) holds it (or with I(force)); when another run holds
    it (this run's lock was stolen), it leaves it and says so.
  - C(state=read) changes nothing and returns the holder, if any.
  - In check mode nothing is created or removed; a lock another run holds is returned (I(held)).
options:
  path: {description: The lock directory (its parent is created when missing)., type: path, required: true}
  state: {description: acquired, released or read., type: str, choices: [acquired, released, read], default: acquired}
  run: {description: The id of this run (acquired and released)., type: str, default: ""}
  holder:
    description: What to record of this run (owner, playbook, release, message, ...); the module adds run, started and started_at.
    type: dict
    default: {}
  wait: {description: Seconds to wait for a lock another run holds (0 - refuse at once)., type: int, default: 0}
  steal: {description: Take the lock over from the run that holds it., type: bool, default: false}
  force: {description: Release the lock whichever run holds it (released)., type: bool, default: false}
  hint: {description: Appended to the message of a refusal (how to wait or steal)., type: str, default: ""}
"""

EXAMPLES = r"""
- name: Take the lock
  wsgideploy.fleet.wsgideploy_lock:
    path: /var/lib/wsgideploy/hello/lock
    run: "{{ run_id }}"
    holder: {owner: "alice@ci", playbook: deploy.yml, release: "20261207", message: "hotfix"}
    wait: 120
"""

RETURN = r"""
held: {description: Whether a run holds the lock now (after the action)., type: bool}
holder: {description: The holder after the action (this run's after a take), or the other run's on a refusal., type: dict}
previous: {description: The holder replaced by a steal, or found by a release that left the lock to another run., type: dict}
stolen: {description: Whether this take was a steal., type: bool}
waited: {description: Seconds spent waiting for the lock., type: float}
age: {description: Seconds since the holder took the lock., type: float}
released: {description: Whether this call removed the lock., type: bool}
"""

import json
import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

HOLDER = "holder.json"


def _read(path):
    """The holder of the lock at path, {} when it is free; a lock without a readable holder file
    (a run killed between the mkdir and the write) is described from the directory itself."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    try:
        with open(os.path.join(path, HOLDER), encoding="utf-8") as fh:
            holder = json.load(fh)
        if isinstance(holder, dict):
            return holder
    except (OSError, ValueError):
        pass
    return {"run": "?", "owner": "unknown (no holder file)", "started": st.st_mtime,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))}


def _write(path, holder):
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".holder.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(holder, fh, sort_keys=True)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, os.path.join(path, HOLDER))


def _age(holder, now):
    try:
        return max(0.0, now - float(holder.get("started", now)))
    except (TypeError, ValueError):
        return 0.0


def _duration(seconds):
    seconds = int(seconds)
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %d s" % divmod(seconds, 60)
    hours, rest = divmod(seconds, 3600)
    if hours < 48:
        return "%d h %d min" % (hours, rest // 60)
    return "%d days %d h" % (hours // 24, hours % 24)


def describe(holder, now):
    """One line: who holds the lock, what for, since when."""
    what = [holder.get("playbook") or "a run"]
    if holder.get("release"):
        what.append("release %s" % holder["release"])
    if holder.get("limit"):
        what.append("limit %s" % holder["limit"])
    text = "%s (%s), taken %s, %s ago" % (
        holder.get("owner", "unknown"), ", ".join(what), holder.get("started_at", "?"), _duration(_age(holder, now)))
    if holder.get("message"):
        text += ": %s" % json.dumps(holder["message"])
    return text


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released", "read"], default="acquired"),
            run=dict(type="str", default=""),
            holder=dict(type="dict", default={}),
            wait=dict(type="int", default=0),
            steal=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            hint=dict(type="str", default=""),
        ),
        required_if=[("state", "acquired", ["run"])],
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"].rstrip("/")
    now = time.time()
    current = _read(path)

    if p["state"] == "read":
        module.exit_json(changed=False, held=bool(current), holder=current, age=_age(current, now) if current else 0.0,
                         description=describe(current, now) if current else "free")

    if p["state"] == "released":
        if not current:
            module.exit_json(changed=False, held=False, released=False, holder={})
        if current.get("run") != p["run"] and not p["force"]:
            module.exit_json(changed=False, held=True, released=False, holder=current, previous=current,
                             msg="the lock is held by another run now: %s" % describe(current, now))
        if not module.check_mode:
            shutil.rmtree(path)
        module.exit_json(changed=True, held=False, released=True, holder={}, previous=current)

    # acquired
    if current and current.get("run") == p["run"]:
        module.exit_json(changed=False, held=True, holder=current, stolen=False, waited=0.0, age=_age(current, now))
    if module.check_mode:
        module.exit_json(changed=False, held=bool(current), holder=current, stolen=False, waited=0.0,
                         age=_age(current, now) if current else 0.0,
                         msg=("held by %s" % describe(current, now)) if current else "free")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755)
    holder = dict(p["holder"], run=p["run"])
    start = time.monotonic()
    previous = {}
    stolen = False
    while True:
        try:
            os.mkdir(path, 0o755)
            break
        except FileExistsError:
            pass
        current = _read(path)
        if not current:
            continue  # released between the mkdir and the read: try again
        waited = time.monotonic() - start
        if p["steal"]:
            previous, stolen = current, True
            break
        if waited >= p["wait"]:
            now = time.time()
            module.fail_json(
                msg="The deploy lock (%s) is held by %s.%s%s" % (
                    path, describe(current, now),
                    " Waited %d s for it." % waited if p["wait"] else "", (" " + p["hint"]) if p["hint"] else ""),
                held=True, holder=current, age=_age(current, now), waited=waited)
        time.sleep(min(1.0, max(0.1, p["wait"] - waited)))
    now = time.time()
    holder.update(started=now, started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    if stolen:
        holder["stolen_from"] = previous
    _write(path, holder)
    module.exit_json(changed=True, held=True, holder=holder, previous=previous, stolen=stolen,
                     waited=round(time.monotonic() - start, 1), age=0.0)


if __name__ == "__main__":
    main()
