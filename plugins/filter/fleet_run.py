"""The summary of a run and the history of runs, as the fleet_run role prints them.

run_summary(report): the lines of the table printed at the end of every run (fleet_run's
tasks/end.yml), from the run's report (what the ledger records of the run): a heading (the run,
its playbook, who, the release, the result, the total time), one line per app host (from -> to,
drain, switch and gate seconds, result), the lbs' failed requests during the run, and why the run
failed.

run_history(entries): the lines of playbooks/history.yml's table, one per run, oldest first.
"""

from __future__ import annotations

def _seconds(value):
    if value in (None, "", "-"):
        return "-"
    try:
        return "%.1f" % float(value)
    except (TypeError, ValueError):
        return str(value)


def _short(release, width=15):
    release = str(release or "-")
    return release if len(release) <= width else release[: width - 1] + "~"


def run_summary(report):
    report = report or {}
    lines = [
        "run %s: %s by %s%s - %s in %s s" % (
            report.get("run") or "(no lock taken)", report.get("playbook", "?"), report.get("owner", "?"),
            (", release %s" % report["release"]) if report.get("release") else "",
            str(report.get("result", "?")).upper(), _seconds(report.get("seconds"))),
    ]
    if report.get("message"):
        lines.append("message: %s" % report["message"])
    if report.get("stolen_from"):
        stolen = report["stolen_from"]
        lines.append("lock taken over from %s (%s, since %s)" % (
            stolen.get("owner", "?"), stolen.get("playbook", "?"), stolen.get("started_at", "?")))
    hosts = report.get("hosts") or []
    if hosts:
        rows = [(str(host.get("host", "?")), "%s -> %s" % (_short(host.get("from")), _short(host.get("to"))),
                 "/".join(_seconds(host.get(step)) for step in ("drain_s", "switch_s", "gate_s")),
                 str(host.get("result", "?")) + ((": %s" % str(host["message"])[:300]) if host.get("message") else ""))
                for host in hosts]
        widths = [max(len(title), *(len(row[n]) for row in rows))
                  for n, title in enumerate(("host", "from -> to", "drain/switch/gate s"))]
        form = "%%-%ds  %%-%ds  %%-%ds  %%s" % tuple(widths)
        lines.append(form % ("host", "from -> to", "drain/switch/gate s", "result"))
        lines.extend(form % row for row in rows)
    else:
        lines.append("no app host switched")
    for lb in report.get("lbs") or []:
        lines.append("lb %s: %s%s" % (lb.get("host", "?"), lb.get("result", "?"),
                                       (": %s" % lb["message"]) if lb.get("message") else ""))
    if report.get("event"):
        lines.append("event: %s" % report["event"])
    lines.append("requests the lbs answered as failed (5xx) for the app during the run: %s"
                 % report.get("failed_requests", 0))
    if report.get("failure"):
        lines.append("failed: %s" % str(report["failure"])[:1000])
    return lines


def run_history(entries):
    entries = [e for e in entries or [] if isinstance(e, dict) and e.get("kind") in ("run", "lock")]
    if not entries:
        return ["no run recorded yet"]
    form = "%-20s %-8s %-14s %-22s %-16s %5s %7s %4s  %s"
    lines = [form % ("ended (UTC)", "result", "playbook", "who", "release", "hosts", "seconds", "5xx", "message")]
    for entry in entries:
        if entry.get("kind") == "lock":
            what = entry.get("from") or {}
            detail = ("from %s (%s, since %s)" % (what.get("owner", "?"), what.get("playbook", "?"),
                                                  what.get("started_at", "?"))) if what else ""
            lines.append(form % (entry.get("at", "?"), "lock " + str(entry.get("event", "?")), "-", entry.get("by", "?"),
                                 "-", "-", "-", "-", " ".join(x for x in (detail, entry.get("message", "")) if x)))
            continue
        hosts = entry.get("hosts") or []
        moved = sum(1 for h in hosts if h.get("result") not in ("current", "pending"))
        lines.append(form % (
            entry.get("ended_at", "?"), entry.get("result", "?"), entry.get("playbook", "?"), entry.get("owner", "?"),
            _short(entry.get("release"), 16), "%d/%d" % (moved, len(hosts)), _seconds(entry.get("seconds")),
            entry.get("failed_requests", 0),
            " ".join(x for x in (entry.get("event", ""), entry.get("message", ""),
                                 ("failed: " + str(entry["failure"])[:120]) if entry.get("failure") else "") if x)))
    return lines


class FilterModule:
    def filters(self):
        return {"run_summary": run_summary, "run_history": run_history}
