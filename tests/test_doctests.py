"""Every docstring ``Examples`` section of ``ceco_lite`` and ``data_utils`` runs as a doctest.

Each module of the two packages is imported (``pkgutil.walk_packages``); a module
whose optional dependency is missing is skipped with the reason. Examples are run
with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``; a module with a failing example
fails its test, unless it is listed in :data:`KNOWN_FAILURES`.
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ceco_lite
import data_utils

PACKAGES = (ceco_lite, data_utils)

#: Modules whose examples are known to fail, with the reason (to be fixed, then removed here).
KNOWN_FAILURES: dict[str, str] = {}


def _module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def test_both_packages_are_walked():
    assert {"ceco_lite.etf", "ceco_lite.models.base", "data_utils.synthetic"} <= set(MODULES)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_FAILURES[n], strict=True)) if n in KNOWN_FAILURES else n
    for n in MODULES
])
def test_docstring_examples(name):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional dependency of this module is missing
        pytest.skip(f"{name} cannot be imported: {exc}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    failures = []
    for test in tests:
        out: list[str] = []
        result = runner.run(test, out=out.append, clear_globs=True)
        if result.failed:
            failures.append("".join(out))
    assert not failures, f"{len(failures)} failing docstring example(s) in {name}:\n" + "\n".join(failures)
