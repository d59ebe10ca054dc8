"""The one thing pyproject.toml cannot declare stably yet: exact_match's compiled kernel.

Optional: without a C compiler the install still succeeds (setuptools warns) and exact_match
takes its numpy/Arrow path, with the same values and ~3× slower (docs/metrics.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vlmhyperbench.metrics._kernels",
            sources=["src/vlmhyperbench/metrics/_kernels.c"],
            optional=True,
        )
    ]
)
