"""The one compiled part of ovfstore: the OVF reader's tree walk (src/ovfstore/ovf/_tree.c).

It reads lxml trees through lxml's public C API, so it builds against the headers lxml ships
(`lxml.get_include()`), with no libxml2 development package. It is optional: where no C compiler is
available the build goes on without it and the reader uses its pure-Python walk, with the same results
and about half the speed (see docs/OVF.md, "Speed").
"""

from __future__ import annotations

import lxml
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ovfstore.ovf._tree",
            sources=["src/ovfstore/ovf/_tree.c"],
            include_dirs=lxml.get_include(),
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function"],
            optional=True,
        )
    ]
)
