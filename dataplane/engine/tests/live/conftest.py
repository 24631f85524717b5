"""Shared fixtures: the esprit-dataplane binary and a scratch directory."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[4]


@pytest.fixture(scope="session")
def dataplane_bin():
    """The esprit-dataplane binary: $ESPRIT_DATAPLANE, or built here in release mode."""
    env = os.environ.get("ESPRIT_DATAPLANE")
    if env:
        return env
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "esprit-engine"], cwd=ROOT, check=True)
    return str(ROOT / "target" / "release" / "esprit-dataplane")
