"""Coverage-guided fuzzing of one target with atheris (libFuzzer), for a bounded time or run count.

    python -m tests.fuzz.run TARGET [CORPUS_DIR] [libFuzzer flags, e.g. -max_total_time=600 -runs=100000]

The corpus directory (created and seeded when missing) keeps the inputs that found new coverage, so a
later run goes on where this one stopped. A contract broken by an input ends the run with the input
saved as `crash-*` in the working directory and a non-zero exit status. `make fuzz` runs every target.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from tests.fuzz.targets import SEEDS, TARGETS


def _seed(corpus: Path, target: str) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for i, seed in enumerate(SEEDS[target]):
            (corpus / f"seed-{i}").write_bytes(seed)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(
            f"usage: python -m tests.fuzz.run TARGET [CORPUS_DIR] [libFuzzer flags]; targets: {', '.join(TARGETS)}"
        )
    target = argv[1]
    rest = argv[2:]
    if rest and not rest[0].startswith("-"):
        corpus = Path(rest.pop(0))
    else:
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    _seed(corpus, target)
    atheris.Setup([argv[0], *rest, str(corpus)], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
