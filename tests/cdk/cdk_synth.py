"""CDK test helpers: synthesize the real app (cdk/app.py) once per test module, offline."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CDK_DIR = Path(__file__).resolve().parents[2] / "cdk"
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))


@dataclass
class Synthesized:
    outdir: Path
    stack_name: str
    template: Any  # aws_cdk.assertions.Template
    app: Any

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{self.stack_name}.template.json"

    def template_json(self) -> dict[str, Any]:
        return json.loads(self.template_path.read_text())

    def validation_report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())


def synthesize(outdir: Path, context: dict[str, str]) -> Synthesized:
    """Build the app exactly as `cdk synth` would (app.build_app), with cdk-nag as a validation plugin."""
    import aws_cdk as cdk
    from app import build_app
    from aws_cdk.assertions import Template

    # cdk.json's context (stage default, feature flags) as the CLI would pass it, then the overrides.
    defaults = json.loads((CDK_DIR / "cdk.json").read_text())["context"]
    app = cdk.App(outdir=str(outdir), context={**defaults, **context})
    stack = build_app(app)
    assembly = app.synth()  # raises if cdk-nag reports an unacknowledged finding
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    return Synthesized(outdir, stack.stack_name, Template.from_json(artifact.template), app)
