"""Sentences that follow the numbers: a lesson's statements about its own results, computed and checkable.

A lesson never writes "CeCo beats cross-entropy" into its text; it asks for a
:class:`Verdict` built from the measured numbers, which says what this run shows
("In this run, CeCo's tail IoU (14.0 %) is above cross-entropy's (8.1 %), by 5.9 points.")
and carries the numbers and the relation it states. :func:`show` displays the sentence
and attaches the verdict as output metadata under :data:`METADATA_KEY`, so a test that
executes the lesson can re-check every statement against its numbers (:func:`holds`).

>>> v = compare("tail IoU", {"CeCo": 14.0, "cross-entropy": 8.1}, unit=" %")
>>> v.relation, holds(v.to_dict())
('greater', True)
>>> print(v.text)
In this run, CeCo's tail IoU (14.0 %) is above cross-entropy's (8.1 %), by 5.9 points.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

__all__ = ["Verdict", "compare", "best", "holds", "show", "METADATA_KEY"]

#: Output-metadata key under which :func:`show` stores a verdict.
METADATA_KEY = "ceco_lite/verdict"


@dataclass
class Verdict:
    """A statement about measured numbers.

    Attributes
    ----------
    quantity : str
        What is compared (e.g. ``"mIoU"``).
    values : dict
        ``name -> number`` as measured.
    relation : str
        ``"greater"`` / ``"less"`` / ``"equal"`` (first name against the second, within
        ``tolerance``), or ``"best"`` (``subject`` has the largest value), or ``"worst"``.
    subject : str
        The name the statement is about.
    tolerance : float
        Differences up to this size count as equal.
    text : str
        The sentence shown.
    """

    quantity: str
    values: dict
    relation: str
    subject: str
    tolerance: float = 0.0
    text: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-data form (what :func:`show` attaches to the output)."""
        return asdict(self)


def _poss(name: str) -> str:
    """``name``'s -- or ``name``' for a plural ending in s (``the class means'``)."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _fmt(v: float, unit: str, digits: int) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}{unit}"


def compare(quantity: str, values: Mapping[str, float], *, tolerance: float = 0.0, unit: str = "",
            digits: int = 1, difference: str = "points", context: str = "In this run") -> Verdict:
    """Compare two measured values: the first name against the second.

    Parameters
    ----------
    quantity : str
        E.g. ``"mIoU"``.
    values : mapping of two names to numbers
        E.g. ``{"CeCo": 63.9, "cross-entropy": 61.0}``.
    tolerance : float, default 0
        A difference of at most this size is stated as "the same within tolerance". A larger
        difference that still prints as 0 at ``digits`` decimals is stated as "the same to the
        decimals shown" (the verdict's tolerance is then half a unit of the last digit).
    unit : str
        Appended to the numbers (e.g. ``" %"``).
    digits : int, default 1
    difference : str
        Unit of the difference in words (``"points"`` for percentages).
    context : str
        How the sentence starts.

    Returns
    -------
    Verdict

    Raises
    ------
    ValueError
        Not exactly two values.
    """
    if len(values) != 2:
        raise ValueError(f"values must hold exactly two named numbers, got {len(values)}")
    (a, va), (b, vb) = list(values.items())
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (va, vb)):
        text = f"{context}, {quantity} is not defined for both ({a}: {_fmt(va, unit, digits)}, {b}: {_fmt(vb, unit, digits)})."
        return Verdict(quantity, dict(values), "undefined", a, tolerance, text)
    d = float(va) - float(vb)
    shown = 0.5 * 10.0 ** -digits  # a smaller difference prints as 0 at ``digits`` decimals
    if abs(d) <= tolerance:
        relation = "equal"
        how = f"the same as {_poss(b)} ({_fmt(vb, unit, digits)})" + (f" within {tolerance:g}{' ' + difference if difference else ''}" if tolerance else "")
    elif abs(d) < shown:
        relation, tolerance = "equal", shown
        how = f"the same as {_poss(b)} ({_fmt(vb, unit, digits)}) to the {digits} decimal{'s' if digits != 1 else ''} shown"
    elif d > 0:
        relation = "greater"
        how = f"above {_poss(b)} ({_fmt(vb, unit, digits)}), by {abs(d):.{digits}f}{' ' + difference if difference else ''}"
    else:
        relation = "less"
        how = f"below {_poss(b)} ({_fmt(vb, unit, digits)}), by {abs(d):.{digits}f}{' ' + difference if difference else ''}"
    text = f"{context}, {_poss(a)} {quantity} ({_fmt(va, unit, digits)}) is {how}."
    return Verdict(quantity, {a: float(va), b: float(vb)}, relation, a, tolerance, text)


def best(quantity: str, values: Mapping[str, float], *, unit: str = "", digits: int = 1, largest: bool = True,
         context: str = "In this run") -> Verdict:
    """Which name has the largest (``largest=True``) or smallest value.

    Examples
    --------
    >>> print(best("mIoU", {"λ = 0": 60.0, "λ = 0.4": 62.5, "λ = 1": 61.0}).text)
    In this run, the largest mIoU is λ = 0.4's (62.5), ahead of λ = 1 (61.0).
    """
    clean = {k: float(v) for k, v in values.items() if v is not None and not math.isnan(float(v))}
    if not clean:
        return Verdict(quantity, dict(values), "undefined", "", 0.0, f"{context}, no {quantity} was measured.")
    order = sorted(clean, key=clean.get, reverse=largest)
    top = order[0]
    word = "largest" if largest else "smallest"
    text = f"{context}, the {word} {quantity} is {_poss(top)} ({_fmt(clean[top], unit, digits)})"
    if len(order) > 1:
        text += f", ahead of {order[1]} ({_fmt(clean[order[1]], unit, digits)})"
    return Verdict(quantity, clean, "best" if largest else "worst", top, 0.0, text + ".")


def holds(verdict: Mapping) -> bool:
    """Whether a verdict's stated relation holds for its own numbers (``verdict``: :meth:`Verdict.to_dict`)."""
    rel, vals, tol = verdict["relation"], verdict["values"], float(verdict.get("tolerance", 0.0))
    if rel == "undefined":
        return any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals.values()) or not vals
    if rel in ("best", "worst"):
        target = max(vals.values()) if rel == "best" else min(vals.values())
        return vals[verdict["subject"]] == target
    (a, va), (b, vb) = list(vals.items())
    d = va - vb
    return {"equal": abs(d) <= tol, "greater": d > tol, "less": d < -tol}[rel]


def show(verdict: Verdict, *, markdown: bool = True) -> Verdict:
    """Display the sentence in the notebook, with the verdict attached as output metadata; returns it."""
    from IPython.display import Markdown, display  # the notebook side of the library

    payload = verdict.to_dict()
    display(Markdown(verdict.text) if markdown else verdict.text, metadata={METADATA_KEY: payload})
    return verdict
