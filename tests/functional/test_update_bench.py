"""The update benchmark stops with the engine's error when the engine process dies, instead of waiting
for figures that will never come."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"

# The engine process of the benchmark, pointed at a database it cannot open: it fails on its first query.
DYING_ENGINE = """
import sys, uuid
from pathlib import Path
sys.path.insert(0, {bench!r})
import update_bench
work = Path({work!r})
setup = update_bench.Setup(
    db_url="sqlite:///" + str(work / "no-such-directory" / "engine.db"), agent_url="http://127.0.0.1:9",
    secret="x", vm_ids=[uuid.uuid4()], stderr_path=work / "engine.stderr", agent_pid=0,
)
if __name__ == "__main__":
    update_bench.run_engine(setup)
"""


def test_the_benchmark_fails_with_the_engine_error_when_the_engine_dies(tmp_path: Path) -> None:
    script = tmp_path / "dying.py"
    script.write_text(DYING_ENGINE.format(bench=str(BENCH), work=str(tmp_path)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "the engine process ended with status 1 before reporting" in done.stderr
    assert "unable to open database file" in done.stderr  # the engine's own error, from its stderr
