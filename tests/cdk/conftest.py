"""Environment for the CDK tests, set before anything imports aws_cdk (conftest loads first)."""

from __future__ import annotations

import os

# No jsii runtime type checks (they make a synth ~5x slower), no warning about Node 20.
os.environ.setdefault("CDK_VALIDATION", "false")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
