#!/usr/bin/env python3
"""Structural figures of the two packages (``ceco_lite``, ``data_utils``).

Usage::

    python3 scripts/code_stats.py            # the table
    python3 scripts/code_stats.py --list     # also name the offending lines

Prints, for the first-party packages only (standard library, no imports of the code):

* the longest function or method, by lines from ``def`` to its last line and by lines of code
  (the same without its docstring, blank lines and comments);
* imports of private names (``from a.b import _x``) across modules;
* imports inside functions (``import`` / ``from ... import`` below a ``def``);
* lines of code (non-blank, non-comment lines, docstrings included).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ceco_lite", "data_utils")


def _files():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def _lines_of_code(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def _stats(path: Path):
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    rel = path.relative_to(ROOT).as_posix()
    functions, private, inner = [], [], []

    def visit(node, depth_in_function: int):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((child.end_lineno - child.lineno + 1, _code_lines(child, lines),
                                  f"{rel}:{child.lineno} {child.name}"))
                visit(child, depth_in_function + 1)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if depth_in_function and not _is_typing_only(child):
                    inner.append(f"{rel}:{child.lineno}")
                if isinstance(child, ast.ImportFrom) and _first_party(child):
                    for alias in child.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            private.append(f"{rel}:{child.lineno} {alias.name}")
            visit(child, depth_in_function)

    visit(tree, 0)
    return functions, private, inner, _lines_of_code(text)


def _code_lines(func, lines) -> int:
    """Non-blank, non-comment lines of ``func`` outside its docstring."""
    skip = set()
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for n in range(func.lineno, func.end_lineno + 1)
               if n not in skip and lines[n - 1].strip() and not lines[n - 1].lstrip().startswith("#"))


def _first_party(node: ast.ImportFrom) -> bool:
    if node.level:  # relative import
        return True
    return (node.module or "").split(".")[0] in PACKAGES


def _is_typing_only(node) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module in ("typing", "__future__")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="name every private and in-function import")
    args = parser.parse_args(argv)
    functions, private, inner, loc, files = [], [], [], 0, 0
    for path in _files():
        f, p, i, n = _stats(path)
        functions += f
        private += p
        inner += i
        loc += n
        files += 1
    functions.sort(reverse=True)
    by_code = sorted(functions, key=lambda f: f[1], reverse=True)
    print(f"files                         {files}")
    print(f"lines of code                 {loc}")
    print(f"longest function              {functions[0][0]} lines ({functions[0][2]})")
    print(f"longest function, code only   {by_code[0][1]} lines ({by_code[0][2]})")
    print(f"functions over 60 lines       {sum(1 for n, _, _ in functions if n > 60)}")
    print(f"functions over 60 code lines  {sum(1 for _, c, _ in functions if c > 60)}")
    print(f"private cross-module imports  {len(private)}")
    print(f"imports inside functions      {len(inner)}")
    if args.list:
        print("\nlongest functions (lines, code lines):\n  "
              + "\n  ".join(f"{n:4d} {c:4d} {where}" for n, c, where in functions[:10]))
        print("\nlongest functions by code lines:\n  "
              + "\n  ".join(f"{n:4d} {c:4d} {where}" for n, c, where in by_code[:10]))
        print("\nprivate imports:\n  " + "\n  ".join(private or ["(none)"]))
        print("\nin-function imports:\n  " + "\n  ".join(inner or ["(none)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
