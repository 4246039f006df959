"""ceco_lite.validation: one rule per argument, errors that name the argument."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ceco_lite.validation import (
    check_device,
    check_dtype,
    check_ignore_index,
    check_imbalance_factor,
    check_int,
    check_labels,
    check_matrix,
    check_num_classes,
    check_real_array,
)


def _bad_labels_brute_force(labels, K, ignore):
    return [int(v) for v in labels.reshape(-1).tolist() if not (0 <= v < K or (ignore is not None and v == ignore))]


@pytest.mark.parametrize("ignore", [255, -1, None])
def test_check_labels_matches_a_loop(ignore):
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        labels = torch.randint(-2, 6, (3, 4, 5), generator=g)
        if trial % 3 == 0:
            labels = labels.clamp(0, 3)  # all valid
        if ignore is not None and trial % 2:
            labels[0, 0, :2] = ignore
        bad = _bad_labels_brute_force(labels, 4, ignore)
        if bad:
            with pytest.raises(ValueError, match="labels must lie in") as info:
                check_labels(labels, 4, ignore)
            assert int(str(info.value).rsplit(" ", 1)[-1]) in bad  # the example shown is a bad label
        else:
            check_labels(labels, 4, ignore)
    check_labels(torch.zeros(0, dtype=torch.long), 4, 255)  # empty passes


def test_integer_rules():
    assert check_num_classes(np.int64(5)) == 5 and type(check_num_classes(np.int64(5))) is int
    for bad, exc in ((True, TypeError), (2.0, TypeError), (1, ValueError)):
        with pytest.raises(exc, match="num_classes"):
            check_num_classes(bad)
    with pytest.raises(ValueError, match=r"dim must be >= 3, got 2 \(why\)"):
        check_int(2, "dim", minimum=3, hint="why")


def test_ignore_index_rule():
    assert check_ignore_index(None, 5) is None and check_ignore_index(255, 19) == 255 and check_ignore_index(-1, 300) == -1
    with pytest.raises(ValueError, match=r"ignore_index must lie outside \[0, num_classes\)"):
        check_ignore_index(3, 5)
    with pytest.raises(ValueError, match="choose another ignore_index"):
        check_ignore_index(255, 256)
    with pytest.raises(TypeError, match="ignore_index"):
        check_ignore_index(1.0, 5)


def test_matrix_dtype_factor_device_and_arrays():
    W = torch.randn(3, 4)
    assert check_matrix(W, "W", min_columns=2) is W
    with pytest.raises(ValueError, match=r"W must have shape \(d, K\)"):
        check_matrix(torch.randn(3), "W")
    with pytest.raises(ValueError, match="at least 5 columns"):
        check_matrix(W, "W", min_columns=5)
    with pytest.raises(ValueError, match="non-finite"):
        check_matrix(torch.tensor([[1.0, float("nan")]]), "W")
    with pytest.raises(TypeError, match="W must have a floating dtype"):
        check_matrix(W.long(), "W")
    assert check_dtype(torch.float16) is torch.float16
    with pytest.raises(TypeError, match="dtype"):
        check_dtype(torch.int32)
    assert check_imbalance_factor(10) == 10.0
    for bad in (0.5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="imbalance_factor"):
            check_imbalance_factor(bad)
    assert check_device(None) == torch.device("cpu") and check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device"):
        check_device("gpu0")
    with pytest.raises(TypeError, match="device"):
        check_device(0.5)
    a = check_real_array([1, 2.5, np.nan], "a")
    assert a.dtype == np.float64 and np.isnan(a[2])
    assert check_real_array(torch.tensor([1, 2]), "a").tolist() == [1.0, 2.0]
    for bad in ("abc", ["a", "b"], [1 + 2j], [object()]):
        with pytest.raises(TypeError, match="a must be"):
            check_real_array(bad, "a")
    with pytest.raises(ValueError, match="1 dimension"):
        check_real_array([[1.0]], "a", ndim=1)
