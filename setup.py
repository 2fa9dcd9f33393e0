"""The compiled parts of ovfstore, both in the OVF reader (docs/OVF.md, "Speed"):

- `ovfstore.ovf._tree` (C): an lxml tree as plain tuples, what the lenient reader walks.
- `ovfstore.ovf._fastread` (Cython): the fast path for documents in the canonical dialect.

Both read lxml trees through lxml's public C API, so they build against the headers and `.pxd` files
lxml ships (`lxml.get_include()`), with no libxml2 development package. Both are optional: without a
C compiler (or Cython) the build goes on without them and the reader runs in Python alone, with the
same results and a third of the speed. CI requires them (tests/unit/test_ovf_fastread.py).
"""

from __future__ import annotations

import lxml
from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wno-unused-parameter", "-Wno-unused-function"]

extensions = [
    Extension(
        "ovfstore.ovf._tree",
        sources=["src/ovfstore/ovf/_tree.c"],
        include_dirs=lxml.get_include(),
        extra_compile_args=[*FLAGS, "-Wextra"],
        optional=True,
    )
]
try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - Cython is a build requirement (pyproject.toml)
    pass
else:
    extensions += cythonize(
        [
            Extension(
                "ovfstore.ovf._fastread",
                sources=["src/ovfstore/ovf/_fastread.pyx"],
                include_dirs=lxml.get_include(),
                extra_compile_args=FLAGS,
                optional=True,
            )
        ],
        build_dir="build/cython",  # the generated C stays out of the source tree
        include_path=lxml.get_include(),
        language_level=3,
        quiet=True,
    )

setup(ext_modules=extensions)
