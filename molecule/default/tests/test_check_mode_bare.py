"""`site.yml --check --diff` on a bare host (the README's first step for your own servers): it
completes, reports what it would change, and changes nothing."""

from __future__ import annotations

from wsgideploy_testlib import recap, run_playbook, scenario_host

# The scenario's tests run against the app host (verifier option `hosts: app`); this one asks
# the bare host itself, so it takes no `host` fixture.
BARE = "wsgideploy-default-bare"

STATE = (
    "find /srv /etc/nginx /etc/uwsgi /etc/systemd/system /usr/local/lib/wsgideploy /var/lib/wsgideploy"
    " -maxdepth 3 2>/dev/null | sort; getent passwd hello; getent group hello; dpkg -l | wc -l; true"
)


def test_check_diff_on_a_bare_host_completes_and_changes_nothing():
    host = scenario_host(BARE)
    before = host.check_output(STATE)
    rc, out = run_playbook("site.yml", "--check", "--diff", "-e", "wsgideploy_app_group=bare")
    assert rc == 0, out[-4000:]
    counts = recap(out)[BARE]
    assert counts["failed"] == 0 and counts["changed"] > 0, counts
    # It says what it would do: packages, the app user, the release, the units.
    assert "Would install" in out, out[-3000:]
    assert "Create the app user" in out and "Write the instance units" in out
    assert host.check_output(STATE) == before
    assert not host.file("/srv/hello").exists
