"""Environment for the CDK tests, set before any test module imports aws_cdk (conftest loads first)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# No jsii runtime type checks (they make a synth ~5x slower), no warning about Node 20.
os.environ.setdefault("CDK_VALIDATION", "false")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# cdk/ holds the app (app.py) and its package (devops_metrics_cdk), as `cdk synth` sees them.
CDK_DIR = Path(__file__).resolve().parents[2] / "cdk"
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))
