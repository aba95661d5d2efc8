"""Fixtures of the interop suite: build `dp-replay` once per session, give each test a `replay`."""
import functools
import os
import subprocess
from pathlib import Path

import pytest

import dmvpn

SOURCE = dmvpn.ROOT / "dataplane/src/bin/dp-replay.rs"


@pytest.fixture(scope="session")
def dp_replay() -> Path:
    """The tool under test: $DP_REPLAY if set, else built here once per session."""
    if os.environ.get("DP_REPLAY"):
        return Path(os.environ["DP_REPLAY"])
    if not SOURCE.exists():
        pytest.skip("dp-replay is not in this tree yet (dataplane/src/bin/dp-replay.rs)")
    subprocess.run(["cargo", "build", "--release", "-p", "dataplane", "--bin", "dp-replay"], cwd=dmvpn.ROOT,
                   check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", dmvpn.ROOT / "target"))
    return target / "release/dp-replay"


@pytest.fixture
def replay(dp_replay, tmp_path):
    """`replay(hub, [(port, frame), ...], burst=None, dissect=True)` → `dmvpn.Result`."""
    return functools.partial(dmvpn.replay, dp_replay, tmp_path)
