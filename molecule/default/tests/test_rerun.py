"""Re-running the playbook against the converged host: check mode, reloads, secret stability.

These run ansible-playbook with molecule's own inventory and environment.
"""

from __future__ import annotations

import json

import pytest
from wsgideploy_testlib import app_copy, assert_check_diff_clean, converge, playbook, recap

APP = "hello"
SECRET = f"/srv/{APP}/shared/secret_key"


def secret_digest(host) -> str:
    return host.check_output(f"sha256sum {SECRET}").split()[0]


def test_check_diff_reports_no_changes(host, molecule_env):
    assert_check_diff_clean()


def test_settings_change_reloads_gracefully_and_keeps_the_secret(host, molecule_env):
    # A second run with nothing to change reports changed=0: molecule's idempotence step asserts
    # it. These runs change the settings and put them back: the secret survives both and never
    # reaches their output.
    secret_before = secret_digest(host)
    main_pid = host.check_output(f"systemctl show -p MainPID --value {APP}-0.service")
    greeting = "Settings changed by a test"
    settings = {"app_settings": {"GREETING": greeting, "PROXY_FIX_X_FOR": 1, "PROXY_FIX_X_PROTO": 1}}
    outputs = []
    try:
        outputs.append(converge("-e", json.dumps(settings)))
        # A graceful reload keeps the master (same PID) and loads the new settings.
        page = host.check_output("curl -sS -m 10 http://127.0.0.1/")
        assert greeting in page
        assert host.check_output(f"systemctl show -p MainPID --value {APP}-0.service") == main_pid
    finally:
        outputs.append(converge())
    assert greeting not in host.check_output("curl -sS -m 10 http://127.0.0.1/")
    assert secret_digest(host) == secret_before
    secret = host.check_output(f"cat {SECRET}")
    assert all(secret not in out for out in outputs)


def test_nginx_setting_on_a_running_host_goes_through_the_gated_switch(host, molecule_env):
    """A change to nginx itself (not the site) is a pending change of the running host: it is
    applied, through the switch (and its gate), and reverted the same way."""
    def body_limit() -> str:
        return host.check_output("nginx -T 2>/dev/null | grep -E '^\\s*client_max_body_size' | head -1")

    assert "10m" in body_limit()
    try:
        out = converge("-e", "nginx_client_max_body_size=3m")
        assert "3m" in body_limit(), out[-3000:]
        assert "Health gate - every instance answers on the new state" in out, out[-3000:]
        assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/healthz") == "200"
    finally:
        out = converge()
    assert "10m" in body_limit(), out[-3000:]


STAMP_CHECK = "Is the host as the last successful run left it"
# A task that runs (the header of a skipped include names the include, not the role's tasks).
FULL_PATH = "TASK [base : "


def test_a_rerun_with_nothing_to_change_is_one_check(host, molecule_env):
    out = converge()
    assert all(counts["changed"] == 0 for counts in recap(out).values()), out[-3000:]
    assert STAMP_CHECK in out and FULL_PATH not in out, out[-3000:]
    assert "TASK [app : Compare the settings candidate" not in out, out[-3000:]


@pytest.mark.parametrize(
    "drift, repaired",
    [
        (f"echo '; edited by hand' >> /etc/uwsgi/{APP}/{APP}-0.ini", f"! grep -q 'edited by hand' /etc/uwsgi/{APP}/{APP}-0.ini"),
        (f"systemctl stop {APP}-1.service", f"systemctl is-active --quiet {APP}-1.service"),
        ("rm -f /usr/local/lib/wsgideploy/wsgi-health", "test -x /usr/local/lib/wsgideploy/wsgi-health"),
    ],
    ids=["edited-ini", "stopped-instance", "removed-helper"],
)
def test_what_the_stamp_cannot_vouch_for_takes_the_whole_run(host, molecule_env, drift, repaired):
    host.run_test(drift)
    out = converge()
    assert FULL_PATH in out, out[-3000:]
    assert host.run(repaired).rc == 0, out[-3000:]
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/healthz") == "200"
    # Repaired and stamped again: the next run is one check.
    again = converge()
    assert FULL_PATH not in again, again[-3000:]
    assert all(counts["changed"] == 0 for counts in recap(again).values()), again[-3000:]


# Tasks of the roles a deploy skips when the stamp vouches for all but the release.
SKIPPED_BY_A_DEPLOY = ("TASK [base : ", "TASK [uwsgi : ", "TASK [app_proxy : ", "TASK [nginx : ",
                       "TASK [rollout : Install the instance health checker")


def _release(host) -> str:
    return host.check_output("readlink /srv/hello/current").rsplit("/", 1)[-1]


def test_a_new_release_redoes_only_the_release_unless_something_else_drifted(host, molecule_env, tmp_path):
    src = app_copy(tmp_path, "test_rerun")
    # The release ships a link out of its static directory: nginx must not follow it.
    (src / "hello" / "static" / "passwd").symlink_to("/etc/passwd")
    ini = f"/etc/uwsgi/{APP}/{APP}-0.ini"
    before = _release(host)
    # A new release onto a host whose config was edited by hand: the stamp vouches for nothing,
    # the whole run goes through and puts the ini back.
    host.run_test(f"echo '; edited by hand' >> {ini}")
    out = playbook("playbooks/deploy.yml", "-e", f"wsgi_app_src={src}")
    assert "TASK [base : " in out and "TASK [uwsgi : " in out, out[-3000:]
    assert host.run(f"grep -q 'edited by hand' {ini}").rc == 1, out[-3000:]
    new = _release(host)
    assert new != before
    assert "a release of test_rerun" in host.check_output("curl -s localhost/static/style.css")
    linked = host.run("curl -s -w '\\n%{http_code}' localhost/static/passwd")
    assert "root:" not in linked.stdout and linked.stdout.rsplit("\n", 1)[-1] in ("403", "404"), linked.stdout
    # Back to the project's app/: a new release alone, on a host as the last run left it. Only
    # the release is redone (and gated): no other role's task runs, and the host is stamped.
    back = converge()
    assert "a new release (all else is as the last run left it)" in back, back[-3000:]
    assert not [task for task in SKIPPED_BY_A_DEPLOY if task in back], back[-3000:]
    assert "Health gate - every instance answers on the new state" in back, back[-3000:]
    assert _release(host) == before
    assert host.check_output("curl -s localhost/healthz | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"release\"])'") == before
    again = converge()
    assert FULL_PATH not in again and "TASK [app : Unpack" not in again, again[-3000:]
    assert all(counts["changed"] == 0 for counts in recap(again).values()), again[-3000:]
