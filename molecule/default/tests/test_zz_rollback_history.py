"""The activation history: a second rollback steps further back, and pruning keeps what a
rollback needs. Runs last (file order), after the earlier modules' deploys filled the history."""

from __future__ import annotations

import json
import os

from wsgideploy_testlib import playbook


def history(host) -> list[str]:
    return json.loads(host.check_output("cat /srv/hello/releases.json"))["stack"]


def active(host) -> str:
    return os.path.basename(host.check_output("readlink /srv/hello/current"))


def serving(host) -> set[str]:
    return {json.loads(host.check_output("curl -s localhost/healthz"))["release"] for _ in range(6)}


def test_a_second_rollback_steps_further_back_and_a_deploy_prunes_after_the_gate(host):
    stack = history(host)
    assert len(stack) >= 3, stack
    assert stack[-1] == active(host)

    playbook("playbooks/rollback.yml")
    assert active(host) == stack[-2] and serving(host) == {stack[-2]}
    assert history(host) == stack[:-1]

    playbook("playbooks/rollback.yml")
    assert active(host) == stack[-3] and serving(host) == {stack[-3]}
    assert history(host) == stack[:-2]

    # A deploy (the project's app/ again) keeping one release: besides the new one, only the one
    # active before it and the one a rollback would now pick survive.
    playbook("playbooks/deploy.yml", "-e", "app_keep_releases=1")
    new = active(host)
    now = history(host)
    assert now == [r for r in stack[:-2] if r != new] + [new]
    expected = {new, stack[-3]} | ({now[-2]} if len(now) > 1 else set())
    assert set(host.check_output("ls /srv/hello/releases").split()) == expected
    assert len(stack) - len(expected) >= 1  # something was pruned
