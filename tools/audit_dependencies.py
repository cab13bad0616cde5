"""Run pip-audit on the project's virtualenv and say plainly what was and was not checked.

pip-audit skips (with only a warning) every package its vulnerability service cannot answer for;
on a machine whose PyPI mirror lacks the JSON API that is every package, and a bare run would read
"No known vulnerabilities found". This wrapper fails on any finding, reports the skipped count on
its summary line, and with ``--strict`` also fails when anything was skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Findings we have looked at and accept, with the reason: {"VULN-ID": "why"}. None so far.
IGNORED: dict[str, str] = {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strict", action="store_true", help="fail when any package could not be audited")
    args = parser.parse_args(argv)
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [str(pip_audit), "--skip-editable", "--progress-spinner", "off", "--format", "json"]
    for vuln_id in IGNORED:
        command += ["--ignore-vuln", vuln_id]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(result.stderr, file=sys.stderr)
        print("audit: pip-audit produced no report", file=sys.stderr)
        return 1
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    findings = [(d["name"], d["version"], v["id"]) for d in dependencies for v in d.get("vulns", [])]
    for name, version, vuln_id in findings:
        print(f"audit: {name} {version} is affected by {vuln_id}", file=sys.stderr)
    audited = len(dependencies) - len(skipped)
    print(
        f"audit: {audited} packages audited, {len(findings)} known vulnerabilities, "
        f"{len(skipped)} packages NOT audited (vulnerability service unreachable for them)"
    )
    if findings:
        return 1
    if skipped and args.strict:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
