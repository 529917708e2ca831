"""Session-wide set-up for every test directory."""

from __future__ import annotations

import os
import tempfile

# Importing parlant.bin.server (the SDK does) creates PARLANT_HOME, by default ./parlant-data, and
# logs into it: keep the working tree clean. Tests that run a server give it its own home.
os.environ.setdefault("PARLANT_HOME", tempfile.mkdtemp(prefix="pss-parlant-home-"))
