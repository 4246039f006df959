"""ceco_lite.verdicts: sentences computed from numbers, and the check that they hold."""
from __future__ import annotations

import math

import pytest

from ceco_lite.verdicts import METADATA_KEY, best, compare, holds, show


@pytest.mark.parametrize("a, b, tol, relation, word", [
    (63.9, 61.0, 0.0, "greater", "above"), (60.0, 61.0, 0.0, "less", "below"), (61.2, 61.0, 0.5, "equal", "same"),
])
def test_compare_states_the_relation_of_its_numbers(a, b, tol, relation, word):
    v = compare("mIoU", {"CeCo": a, "CE": b}, tolerance=tol)
    assert v.relation == relation and word in v.text and holds(v.to_dict())
    assert f"{a:.1f}" in v.text and f"{b:.1f}" in v.text
    # the check fails when the numbers contradict the stated relation
    wrong = dict(v.to_dict(), values={"CeCo": b - 10, "CE": b}) if relation != "less" else \
        dict(v.to_dict(), values={"CeCo": b + 10, "CE": b})
    assert not holds(wrong)


def test_a_difference_that_prints_as_zero_is_stated_as_the_same():
    # 0.0352 vs 0.0349 s print as 0.035 and 0.035: "below ... by 0.000 s" would contradict its own numbers
    v = compare("time per step", {"CeCo": 0.0349, "CE": 0.0352}, unit=" s", digits=3, difference="s")
    assert v.relation == "equal" and "the same as CE's (0.035 s) to the 3 decimals shown" in v.text
    assert "by 0.000" not in v.text and holds(v.to_dict()) and v.tolerance == pytest.approx(5e-4)
    # one unit of the last digit apart is a difference again
    assert compare("time per step", {"CeCo": 0.0340, "CE": 0.0352}, digits=3).relation == "less"
    assert compare("mIoU", {"CeCo": 61.04, "CE": 61.0}).text.endswith("to the 1 decimal shown.")


def test_best_and_undefined():
    v = best("mIoU", {"0": 60.0, "0.4": 62.5, "1": float("nan")})
    assert v.subject == "0.4" and holds(v.to_dict())
    assert not holds(dict(v.to_dict(), subject="0"))
    u = compare("tail IoU", {"CeCo": float("nan"), "CE": 3.0})
    assert u.relation == "undefined" and "not defined" in u.text and holds(u.to_dict())
    with pytest.raises(ValueError, match="exactly two"):
        compare("x", {"a": 1.0})


def test_show_attaches_the_verdict_as_metadata(monkeypatch):
    seen = []
    monkeypatch.setattr("IPython.display.display", lambda obj, metadata=None: seen.append(metadata))
    v = show(compare("mIoU", {"a": 2.0, "b": 1.0}))
    assert seen == [{METADATA_KEY: v.to_dict()}] and math.isclose(seen[0][METADATA_KEY]["values"]["a"], 2.0)
