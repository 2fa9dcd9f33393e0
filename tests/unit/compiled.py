"""The one rule for tests of the OVF reader's compiled modules: required in CI, skipped elsewhere."""

from __future__ import annotations

import os

import pytest


def require_compiled(available: bool, module: str) -> None:
    """Fail the test module under `CI=true` if `module` is not in use, else skip it with the reason.

    CI builds the modules (gcc and lxml's headers are there): a silent fallback would hide a broken
    build behind a reader that runs at a third of the speed.
    """
    if available:
        return
    reason = (
        f"{module} is not in use (not built, for want of a C compiler or Cython, or built against another "
        "lxml): run `pip install -e .` to build it"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)
