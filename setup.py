"""The optional C extension, the one thing ``pyproject.toml`` cannot declare without a warning.

``[tool.setuptools.ext-modules]`` is still experimental in setuptools and makes
every install print ``BuildBackendWarning`` (three times), so the extension is
declared here and everything else stays in ``pyproject.toml``.

``medledger.ledger._speedups`` is the accept-only C decoder of wire envelopes
(see its source for why). ``optional=True``: without a C compiler the install
still succeeds and envelope decoding runs the Python path alone.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "medledger.ledger._speedups",
            sources=["src/medledger/ledger/_speedups.c"],
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Werror=implicit-function-declaration",
            ],
            optional=True,
        )
    ]
)
