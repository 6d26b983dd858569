"""`--tags` per concern (install, config, release; lb in the cluster scenario): a run applies its
concern alone, still through the gated switch, and a whole run afterwards brings the rest.

These run ansible-playbook with molecule's own inventory and environment.
"""

from __future__ import annotations

import json

from wsgideploy_testlib import app_copy, converge, recap, run_playbook, scenario_host

APP = "hello"
INI = f"/etc/uwsgi/{APP}/{APP}-0.ini"
GATE = "Health gate - every instance answers on the new state"
GREETING = "Settings from a run tagged config"
# A package from Debian main that neither the image nor the roles install.
PACKAGE = "tree"


def served_release(host) -> str:
    return host.check_output(
        "curl -sS -m 10 http://127.0.0.1/healthz | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"release\"])'"
    )


def state(host) -> dict[str, str]:
    """What each concern changes, seen from outside: the release served, the page's greeting (settings), the
    ini (the app server's config) and a package (install)."""
    return {
        "release": served_release(host),
        "current": host.check_output(f"readlink /srv/{APP}/current"),
        "greeting": str(GREETING in host.check_output("curl -sS -m 10 http://127.0.0.1/")),
        "ini": host.check_output(f"sha256sum {INI}").split()[0],
        "harakiri": host.check_output(f"grep -E '^harakiri' {INI}"),
        "package": str(host.run(f"dpkg -s {PACKAGE} >/dev/null 2>&1").rc == 0),
    }


def test_each_tag_applies_its_concern_alone_through_the_gate(host, molecule_env, tmp_path):
    src = app_copy(tmp_path, "test_tags")
    # One set of changes to every concern; each run below applies its own part of it.
    changes = (
        "-e", f"wsgi_app_src={src}",
        "-e", json.dumps({"app_settings": {"GREETING": GREETING, "PROXY_FIX_X_FOR": 1, "PROXY_FIX_X_PROTO": 1},
                          "uwsgi_harakiri": 31, "base_extra_packages": [PACKAGE]}),
    )
    # The scenario's own state first (a test before may have left another source's release): the
    # whole run at the end must bring back exactly this.
    converge()
    host.run(f"apt-get purge -y -q {PACKAGE}")
    before = state(host)
    assert before["package"] == "False" and before["greeting"] == "False", before
    try:
        # release: the new release is served (gated); settings, ini and packages stay.
        out = converge("--tags", "release", *changes)
        after_release = state(host)
        assert after_release["release"] != before["release"], out[-3000:]
        assert after_release["current"].endswith(after_release["release"])
        assert {k: after_release[k] for k in ("greeting", "ini", "package")} == {k: before[k] for k in ("greeting", "ini", "package")}, out[-3000:]
        assert GATE in out, out[-3000:]

        # config: settings and the ini change (gated, a graceful reload); the release stays the
        # one just deployed although the source given is the project's app again.
        out = converge("--tags", "config", "-e", changes[3])
        after_config = state(host)
        assert after_config["greeting"] == "True", out[-3000:]
        assert "31" in after_config["harakiri"] and after_config["ini"] != before["ini"], out[-3000:]
        assert after_config["release"] == after_release["release"], out[-3000:]
        assert after_config["package"] == "False", out[-3000:]
        assert GATE in out, out[-3000:]

        # install: the package, nothing the running app sees (no switch, no gate). The host is
        # made like one from an image cleaned at build time: python3-apt in it, apt's package lists
        # emptied less than an hour ago. The apt module judges the lists' age by their directory's
        # mtime, so with cache_valid_time alone it would skip the update and find no package.
        host.run_test("rm -rf /var/lib/apt/lists/*_* /var/lib/apt/periodic/update-success-stamp /var/cache/apt/*.bin"
                      " && touch /var/lib/apt/lists")
        out = converge("--tags", "install", *changes)
        after_install = state(host)
        assert after_install["package"] == "True", out[-3000:]
        assert {k: after_install[k] for k in ("release", "greeting", "ini")} == {k: after_config[k] for k in ("release", "greeting", "ini")}
        assert GATE not in out, out[-3000:]
    finally:
        host.run(f"apt-get purge -y -q {PACKAGE}")
        # A whole run puts every concern back; the partial runs wrote no stamp that could vouch
        # for what they left out.
        back = converge()
    final = state(host)
    assert final == before, back[-3000:]
    again = converge()
    assert all(counts["changed"] == 0 for counts in recap(again).values()), again[-3000:]


def test_a_tagged_run_is_refused_on_a_host_with_no_release_yet(molecule_env):
    bare = scenario_host("wsgideploy-default-bare")
    probe = "find /srv /etc/nginx /etc/uwsgi /usr/local/lib/wsgideploy -maxdepth 2 2>/dev/null | sort; dpkg -l | wc -l; true"
    before = bare.check_output(probe)
    rc, out = run_playbook("site.yml", "--tags", "release", "-e", "wsgideploy_app_group=bare")
    assert rc != 0, out[-3000:]
    assert "wsgideploy-default-bare has no release yet" in out and "--tags release" in out, out[-3000:]
    assert bare.check_output(probe) == before
