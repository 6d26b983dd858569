"""Lookup plugin: what this ansible-playbook run is (who, where, which playbook, tags, limit)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: run_info
short_description: Describe the current ansible-playbook run, for the fleet's lock and ledger
description:
  - Returns one dict about the run that evaluates it, from the controller's command line
    and environment - C(user) (the controller's login name, or C(WSGIDEPLOY_USER)), C(controller)
    (its host name), C(owner) (C(user@controller)), C(playbooks) (the playbook files given,
    their base names), C(tags), C(skip_tags), C(limit), C(check) and C(diff).
  - It reads the run's own arguments only; it changes nothing.
options: {}
"""

EXAMPLES = r"""
- name: Who runs this
  ansible.builtin.debug:
    msg: "{{ lookup('wsgideploy.fleet.run_info').owner }}"
"""

RETURN = r"""
_raw:
  description: One dict describing the run.
  type: list
  elements: dict
"""

import getpass
import os
import socket

from ansible import context
from ansible.plugins.lookup import LookupBase


def _user():
    for name in ("WSGIDEPLOY_USER", "LOGNAME", "USER"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "uid%d" % os.getuid()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        args = context.CLIARGS
        user = _user()
        controller = socket.gethostname().split(".")[0] or "controller"
        limit = args.get("subset") or ""
        return [{
            "user": user,
            "controller": controller,
            "owner": "%s@%s" % (user, controller),
            "playbooks": [os.path.basename(p) for p in args.get("args", ()) or ()],
            "tags": sorted(args.get("tags", ()) or ()),
            "skip_tags": sorted(args.get("skip_tags", ()) or ()),
            "limit": limit if isinstance(limit, str) else ",".join(limit),
            "check": bool(args.get("check", False)),
            "diff": bool(args.get("diff", False)),
        }]
