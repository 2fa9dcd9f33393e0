"""The fuzz targets in the suite: hypothesis mutations of real inputs, then a short atheris run each.

The long, coverage-guided run is `make fuzz` (docs/RECOVERY.md); here each target gets a few seconds so
that a regression in a parser's contract fails the suite.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import IN_CI
from tests.fuzz.targets import HOSTILE, SEEDS, TARGETS

ROOT = Path(__file__).resolve().parents[2]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real input, cut, with bytes overwritten, inserted or deleted here and there."""
    data = bytearray(draw(st.sampled_from(seeds)))
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    for _ in range(draw(st.integers(0, 8))):
        where = draw(st.integers(0, len(data)))
        what = draw(st.sampled_from(["set", "insert", "delete"]))
        chunk = draw(st.binary(min_size=1, max_size=16))
        if what == "set":
            data[where : where + len(chunk)] = chunk
        elif what == "insert":
            data[where:where] = chunk
        else:
            del data[where : where + len(chunk)]
    return bytes(data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutated_real_inputs_keep_the_contract(target: str) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(SEEDS[target]))
    def check(data: bytes) -> None:
        TARGETS[target](data)

    check()


@pytest.mark.parametrize(("target", "data"), HOSTILE, ids=[f"{t}-{i}" for i, (t, _) in enumerate(HOSTILE)])
def test_hostile_inputs_keep_the_contract(target: str, data: bytes) -> None:
    TARGETS[target](data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_random_bytes_keep_the_contract(target: str) -> None:
    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=4096))
    def check(data: bytes) -> None:
        TARGETS[target](data)

    check()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_atheris_short_run(target: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        if IN_CI:
            pytest.fail("atheris is required under CI=true (pip install -e '.[dev]' installs it)")
        pytest.skip("atheris is not installed")
    runs = os.environ.get("OVFSTORE_FUZZ_RUNS", "2000")
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", target, str(tmp_path / "corpus"), f"-runs={runs}",
         "-max_total_time=60", f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done" in result.stderr, result.stderr[-2000:]
