"""Tests for ceco_lite.nc: neural-collapse statistics (docs/conventions.md)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ceco_lite.nc import NCAccumulator, delta_inter, delta_intra, nc_metrics

CLASSIFIER_KEYS = {
    "equinorm_classifiers",
    "equiangularity_classifiers",
    "max_angle_classifiers",
    "etf_error_classifiers",
    "self_duality",
    "self_duality_error",
    "ncc_mismatch",
}
UNIFORMITY_KEYS = [f"uniformity_{k}_{s}" for k in ("distance", "log", "riesz") for s in ("mean", "var")]
# statistics that are exactly 0 for a collapsed simplex ETF aligned with its classifier
FLOAT_KEYS = [
    "nc1",
    "nc1_quotient",
    "cdnv",
    "equinorm_centers",
    "equiangularity_centers",
    "max_angle_centers",
    "etf_error_centers",
    "uniformity_distance_var",
    "uniformity_log_var",
    "uniformity_riesz_var",
    "delta_inter",
    "delta_intra",
    "equinorm_classifiers",
    "equiangularity_classifiers",
    "max_angle_classifiers",
    "etf_error_classifiers",
    "self_duality",
    "self_duality_error",
    "ncc_mismatch",
]


# --------------------------------------------------------------------------- #
# independent references (numpy, float64, explicit loops)
# --------------------------------------------------------------------------- #
def brute_force(z, y, num_classes, W=None, ignore_index=255, global_mean="samples", b=None):
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y)
    keep = y != ignore_index
    z, y = z[keep], y[keep]
    n_samples, d = z.shape
    present = [k for k in range(num_classes) if np.sum(y == k) > 0]
    K = len(present)
    means = {}
    for k in present:
        acc = np.zeros(d)
        cnt = 0
        for i in range(n_samples):
            if y[i] == k:
                acc += z[i]
                cnt += 1
        means[k] = acc / cnt
    if global_mean == "samples":
        z_g = z.sum(axis=0) / n_samples
    else:
        z_g = sum(means[k] for k in present) / K
    sigma_w = np.zeros((d, d))
    intra = 0.0
    for i in range(n_samples):
        v = z[i] - means[y[i]]
        sigma_w += np.outer(v, v)
        intra += v @ v
    sigma_w /= n_samples
    intra /= n_samples
    sigma_b = np.zeros((d, d))
    for k in present:
        v = means[k] - z_g
        sigma_b += np.outer(v, v)
    sigma_b /= K
    nc1 = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / K

    def cos_stats(vecs):
        cos = []
        for a in range(K):
            for b in range(a + 1, K):
                cos.append(vecs[a] @ vecs[b] / (np.linalg.norm(vecs[a]) * np.linalg.norm(vecs[b])))
        cos = np.array(cos)
        std = np.std(cos, ddof=1) if len(cos) > 1 else 0.0
        return std, np.mean(np.abs(cos + 1.0 / (K - 1)))

    def equinorm(vecs):
        norms = np.array([np.linalg.norm(v) for v in vecs])
        return np.std(norms, ddof=1) / np.mean(norms)

    centred = [means[k] - z_g for k in present]
    eq, ang = cos_stats(centred)

    # NC1 as a trace quotient (Tirer et al. 2023)
    nc1_quotient = np.trace(sigma_w) / np.trace(sigma_b)
    # CDNV (Galanti et al. 2022): per-class variance, pair average
    var = {}
    for k in present:
        members = [z[i] for i in range(n_samples) if y[i] == k]
        var[k] = sum(float((v - means[k]) @ (v - means[k])) for v in members) / len(members)
    cdnv_terms = []
    for a in range(K):
        for b_ in range(a + 1, K):
            ka, kb = present[a], present[b_]
            dist2 = float(np.sum((means[ka] - means[kb]) ** 2))
            cdnv_terms.append((var[ka] + var[kb]) / (2.0 * dist2))

    def structure_error(A, B):
        # A, B: lists of K vectors; C[a, b] = A_a . B_b; ||C/||C||_F - (I - 11^T/K)/sqrt(K-1)||_F
        C = np.array([[float(np.dot(A[a], B[c])) for c in range(K)] for a in range(K)])
        ideal = (np.eye(K) - np.ones((K, K)) / K) / math.sqrt(K - 1)
        return float(np.sqrt(np.sum((C / np.sqrt(np.sum(C**2)) - ideal) ** 2)))

    # hyperspherical uniformity of the normalised centred means (pairs a < b)
    unit = [v / np.linalg.norm(v) for v in centred]
    s_riesz = d - 2
    kern = {"distance": [], "log": [], "riesz": []}
    for a in range(K):
        for b_ in range(a + 1, K):
            r = float(np.linalg.norm(unit[a] - unit[b_]))
            kern["distance"].append(r)
            kern["log"].append(math.log(1.0 / r))
            kern["riesz"].append(math.copysign(1.0, s_riesz) * r ** (-s_riesz))
    out = {
        "nc1": nc1,
        "nc1_quotient": nc1_quotient,
        "cdnv": float(np.mean(cdnv_terms)),
        "etf_error_centers": structure_error(centred, centred),
        **{f"uniformity_{name}_mean": float(np.mean(v)) for name, v in kern.items()},
        **{f"uniformity_{name}_var": float(np.var(v)) for name, v in kern.items()},
        "equinorm_centers": equinorm(centred),
        "equiangularity_centers": eq,
        "max_angle_centers": ang,
        "delta_inter": ang,
        "delta_intra": intra,
        "num_present": K,
        "present": present,
        "num_samples": n_samples,
    }
    if W is not None:
        W = np.asarray(W, dtype=np.float64)
        cols = [W[:, k] for k in present]
        eq_w, ang_w = cos_stats(cols)
        out["equinorm_classifiers"] = equinorm(cols)
        out["equiangularity_classifiers"] = eq_w
        out["max_angle_classifiers"] = ang_w
        out["etf_error_classifiers"] = structure_error(cols, cols)
        out["self_duality_error"] = structure_error(cols, centred)
        Wp = np.stack(cols, axis=1)
        Mt = np.stack(centred, axis=1)
        out["self_duality"] = np.sum((Wp / np.linalg.norm(Wp) - Mt / np.linalg.norm(Mt)) ** 2)
        bias = np.zeros(num_classes) if b is None else np.asarray(b, dtype=np.float64)
        if b is not None:
            out["bias_residual"] = math.sqrt(sum((float(z_g @ W[:, k]) + bias[k]) ** 2 for k in present))
        mismatch = 0
        for i in range(n_samples):
            scores = [z[i] @ W[:, k] + bias[k] for k in present]
            dists = [np.sum((z[i] - means[k]) ** 2) for k in present]
            mismatch += int(np.argmax(scores) != np.argmin(dists))
        out["ncc_mismatch"] = mismatch / n_samples
    return out


def simplex_etf_np(K, d, scale=1.0, seed=0):
    """Simplex ETF (d, K) for d >= K-1, Gram = scale² (K I - 11^T)/(K-1) (CeCo Eq. 1-2).

    M = sqrt(K/(K-1)) R V^T with V (K, K-1) an orthonormal basis of 1^⊥ and R (d, K-1)
    orthonormal; returns M and the full
    orthonormal basis Q (d, d) whose first K-1 columns span the ETF.
    """
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    centring = np.eye(K) - np.ones((K, K)) / K
    evals, evecs = np.linalg.eigh(centring)
    V = evecs[:, evals > 0.5]  # (K, K-1)
    M = scale * math.sqrt(K / (K - 1)) * Q[:, : K - 1] @ V.T
    gram = M.T @ M
    np.testing.assert_allclose(gram, scale**2 * (K * np.eye(K) - 1) / (K - 1), atol=1e-12)
    return M, Q


def random_data(seed, n=240, d=7, num_classes=6, absent=(4,), ignore_frac=0.1, offset=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=n)
    for k in absent:
        y[y == k] = (k + 1) % num_classes
    y[rng.random(n) < ignore_frac] = 255
    centres = rng.standard_normal((num_classes, d)) * 2.0
    z = centres[np.where(y == 255, 0, y)] + rng.standard_normal((n, d)) + offset
    W = rng.standard_normal((d, num_classes))
    return z, y, W


def assert_stats_close(got, want, rel=1e-9, abs_=1e-12):
    assert set(got) == set(want)
    for key in want:
        if key in ("present", "num_present", "num_samples"):
            assert got[key] == want[key], key
        else:
            assert isinstance(got[key], float), key
            assert got[key] == pytest.approx(want[key], rel=rel, abs=abs_), key


# --------------------------------------------------------------------------- #
# exact simplex ETF: every collapse statistic is zero
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("K,d", [(5, 8), (4, 3)])
def test_exact_etf_gives_zero(K, d):
    M, U = simplex_etf_np(K, d, scale=3.0)
    offset = U[:, -1] * 4.0 if d > K - 1 else np.zeros(d)  # outside span(M) when room
    y = np.repeat(np.arange(K), 20)
    z = M.T[y] + offset
    stats = nc_metrics(torch.from_numpy(z), torch.from_numpy(y), K, classifier=torch.from_numpy(M))
    for key in FLOAT_KEYS:
        assert abs(stats[key]) < 1e-10, (key, stats[key])
    assert stats["num_present"] == K and stats["num_samples"] == K * 20


def test_global_mean_option_on_imbalanced_etf():
    """With unequal counts only the unweighted global mean recovers the ETF."""
    K, d = 5, 8
    M, _ = simplex_etf_np(K, d, seed=1)
    y = np.repeat(np.arange(K), [50, 20, 10, 5, 2])
    z = torch.from_numpy(M.T[y])
    labels = torch.from_numpy(y)
    by_classes = nc_metrics(z, labels, K, global_mean="classes")
    by_samples = nc_metrics(z, labels, K, global_mean="samples")
    for key in ("max_angle_centers", "equiangularity_centers", "equinorm_centers", "nc1"):
        assert abs(by_classes[key]) < 1e-10, key
    assert by_samples["max_angle_centers"] > 0.05
    assert by_samples["equinorm_centers"] > 0.05


def test_classifier_not_aligned_gives_positive_self_duality_and_ncc():
    K, d = 4, 6
    M, _ = simplex_etf_np(K, d, seed=2)
    y = np.repeat(np.arange(K), 10)
    z = torch.from_numpy(M.T[y])
    W = torch.from_numpy(M[:, [1, 0, 2, 3]].copy())  # two classes swapped
    stats = nc_metrics(z, torch.from_numpy(y), K, classifier=W)
    assert stats["ncc_mismatch"] == pytest.approx(0.5)
    assert stats["self_duality"] > 0.5
    assert abs(stats["equiangularity_classifiers"]) < 1e-12  # W is still an ETF


# --------------------------------------------------------------------------- #
# agreement with the brute-force reference
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("global_mean", ["samples", "classes"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed, global_mean):
    z, y, W = random_data(seed)
    got = nc_metrics(torch.from_numpy(z), torch.from_numpy(y), 6, classifier=W, global_mean=global_mean)
    want = brute_force(z, y, 6, W, global_mean=global_mean)
    assert got["present"] == [0, 1, 2, 3, 5]
    assert 0 < got["ncc_mismatch"] < 1
    assert_stats_close(got, want)
    # without classifier: the classifier keys are absent
    plain = nc_metrics(z, y, 6, global_mean=global_mean)
    assert not (CLASSIFIER_KEYS & set(plain))
    assert plain["nc1"] == pytest.approx(want["nc1"], rel=1e-9)


def test_feature_dim_smaller_than_classes_minus_one():
    """Σ_B is full rank (d < K-1): NC1 uses the ordinary inverse."""
    z, y, W = random_data(3, d=3, num_classes=7, absent=())
    assert_stats_close(nc_metrics(z, y, 7, classifier=W), brute_force(z, y, 7, W))


def test_segmentation_layout_equals_flat_layout():
    rng = np.random.default_rng(4)
    B, d, H, Wd = 2, 5, 6, 7
    f = rng.standard_normal((B, d, H, Wd))
    lab = rng.integers(0, 4, size=(B, H, Wd))
    lab[0, :2] = 255
    W = rng.standard_normal((d, 4))
    flat_z = f.transpose(0, 2, 3, 1).reshape(-1, d)
    got = nc_metrics(torch.from_numpy(f), torch.from_numpy(lab), 4, classifier=W)
    assert_stats_close(got, brute_force(flat_z, lab.reshape(-1), 4, W))


def test_k_equals_two():
    z, y, W = random_data(5, num_classes=2, absent=())
    got = nc_metrics(z, y, 2, classifier=W)
    assert got["equiangularity_centers"] == 0.0
    assert_stats_close(got, brute_force(z, y, 2, W))


def test_absent_class_and_ignore_do_not_leak():
    z, y, W = random_data(6)
    ref = nc_metrics(z, y, 6, classifier=W)
    W2 = W.copy()
    W2[:, 4] = 1e6  # column of the absent class 4 must not matter
    z2 = z.copy()
    z2[y == 255] = 1e9  # features of ignored samples must not matter
    got = nc_metrics(z2, y, 6, classifier=W2)
    assert_stats_close(got, ref, rel=1e-12)
    assert all(math.isfinite(got[k]) for k in FLOAT_KEYS)


def test_delta_functions():
    z, y, _ = random_data(7)
    want = brute_force(z, y, 6)
    assert delta_inter(z, y, 6) == pytest.approx(want["delta_inter"], rel=1e-10)
    assert delta_inter(z, y, 6) == nc_metrics(z, y, 6)["max_angle_centers"]
    assert delta_intra(z, y, 6) == pytest.approx(want["delta_intra"], rel=1e-10)
    want_c = brute_force(z, y, 6, global_mean="classes")
    assert delta_inter(z, y, 6, global_mean="classes") == pytest.approx(want_c["delta_inter"], rel=1e-10)
    # Δ_Intra is defined with a single class present
    one = np.zeros(len(y), dtype=np.int64)
    mean_sq = np.mean(np.sum((z - z.mean(0)) ** 2, axis=1))
    assert delta_intra(z, one, 6) == pytest.approx(mean_sq, rel=1e-10)


def test_low_precision_input_is_accumulated_in_float64():
    z, y, W = random_data(8)
    zb = torch.from_numpy(z).to(torch.bfloat16)
    got = nc_metrics(zb, torch.from_numpy(y), 6)
    want = nc_metrics(zb.double(), torch.from_numpy(y), 6)
    assert_stats_close(got, want, rel=1e-12)


# --------------------------------------------------------------------------- #
# streaming
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("global_mean", ["samples", "classes"])
def test_streaming_equals_one_shot(global_mean):
    z, y, W = random_data(9, n=300, offset=50.0)  # large offset: tests the shift
    y[:40] = 255  # first batch has no kept sample at all
    bounds = [0, 40, 41, 137, 200, 300]
    acc = NCAccumulator(6, z.shape[1], global_mean=global_mean)
    for a, b in zip(bounds[:-1], bounds[1:]):
        acc.update(torch.from_numpy(z[a:b]), torch.from_numpy(y[a:b]))
    assert "ncc_mismatch" not in acc.compute(W)
    acc.freeze_means()
    for a, b in zip(bounds[:-1], bounds[1:]):
        acc.update_ncc(z[a:b], y[a:b], W)
    got = acc.compute(classifier=W)
    want = nc_metrics(z, y, 6, classifier=W, global_mean=global_mean)
    assert_stats_close(got, want, rel=1e-10, abs_=1e-12)
    assert_stats_close(got, brute_force(z, y, 6, W, global_mean=global_mean), rel=1e-9)
    assert acc.num_samples == int(np.sum(y != 255))
    means, present = acc.class_means()
    assert present.tolist() == [0, 1, 2, 3, 5]
    np.testing.assert_allclose(means[0].numpy(), z[y == 0].mean(0), rtol=1e-12)


def test_small_chunks_give_same_result(monkeypatch):
    """Chunk boundaries inside a batch (and NaN at ignored pixels) change nothing."""
    import ceco_lite.nc as nc_module

    z, y, W = random_data(14, n=150)
    ref = nc_metrics(z, y, 6, classifier=W)
    monkeypatch.setattr(nc_module, "_CHUNK_ELEMENTS", 5 * z.shape[1])
    z2 = z.copy()
    z2[y == 255] = np.nan
    f = torch.from_numpy(z2.T.reshape(1, z.shape[1], 10, 15).copy())
    got = nc_metrics(f, torch.from_numpy(y.reshape(1, 10, 15)), 6, classifier=W)
    assert_stats_close(got, ref, rel=1e-10)


def test_accumulator_memory_is_independent_of_samples():
    acc = NCAccumulator(3, 4)
    rng = np.random.default_rng(10)
    for _ in range(3):
        acc.update(rng.standard_normal((500, 4)), rng.integers(0, 3, 500))
    state = [t.numel() for t in (acc._sums, acc._counts, acc._sq_sums, acc._second, acc._shift)]
    assert state == [3 * 4, 3, 3, 4 * 4, 4]
    acc.reset()
    assert acc.num_samples == 0


def test_accumulator_state_errors():
    z, y, W = random_data(11)
    acc = NCAccumulator(6, z.shape[1])
    with pytest.raises(RuntimeError, match="freeze_means"):
        acc.update_ncc(z, y, W)
    acc.update(z, y).freeze_means()
    with pytest.raises(RuntimeError, match="freeze_means"):
        acc.update(z, y)
    acc.update_ncc(z, y, W)
    with pytest.raises(ValueError, match="classifier"):
        acc.update_ncc(z, y, W + 1.0)
    with pytest.raises(ValueError, match="classifier"):
        acc.compute(W + 1.0)


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
def test_bad_input():
    z, y, W = random_data(12)
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    with pytest.raises(ValueError, match="labels"):
        nc_metrics(zt, yt[:-1], 6)
    with pytest.raises(ValueError, match="features"):
        nc_metrics(zt[None], yt, 6)
    with pytest.raises(ValueError, match="global_mean"):
        nc_metrics(zt, yt, 6, global_mean="pixels")
    bad = zt.clone()
    bad[int(np.flatnonzero(y != 255)[0]), 0] = float("nan")
    with pytest.raises(ValueError, match="features"):
        nc_metrics(bad, yt, 6)
    with pytest.raises(ValueError, match="labels"):
        nc_metrics(zt, torch.where(yt == 3, 9, yt), 6)
    with pytest.raises(ValueError, match="labels"):
        nc_metrics(zt, torch.where(yt == 3, -1, yt), 6)
    with pytest.raises(TypeError, match="labels"):
        nc_metrics(zt, yt.double(), 6)
    with pytest.raises(TypeError, match="features"):
        nc_metrics(z.tolist(), yt, 6)
    with pytest.raises(TypeError, match="features"):
        nc_metrics(zt.long(), yt, 6)
    with pytest.raises(ValueError, match="classifier"):
        nc_metrics(zt, yt, 6, classifier=W.T)
    with pytest.raises(ValueError, match="classifier"):
        nc_metrics(zt, yt, 6, classifier=np.full_like(W, np.inf))
    with pytest.raises(TypeError, match="num_classes"):
        nc_metrics(zt, yt, 6.0)
    with pytest.raises(ValueError, match="2 classes"):
        nc_metrics(zt, torch.where(yt == 255, 255, 0), 6)
    with pytest.raises(ValueError, match="dim"):
        NCAccumulator(6, 3).update(zt, yt)
    with pytest.raises(ValueError, match="global_mean"):
        NCAccumulator(6, 3, global_mean="mean")
    with pytest.raises(ValueError, match="ignore_index"):
        NCAccumulator(6, 3, ignore_index=2)
    with pytest.raises(ValueError, match="labels"):
        nc_metrics(torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 4, dtype=torch.long), 6)


# --------------------------------------------------------------------------- #
# statistics of the other NC libraries (CDNV, ETF errors, uniformity, bias)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("K,d", [(5, 8), (4, 3)])
def test_exact_etf_uniformity_values(K, d):
    """All pair distances of a unit simplex are sqrt(2K/(K-1)): the kernels have closed forms."""
    M, _ = simplex_etf_np(K, d, scale=2.0, seed=3)
    y = np.repeat(np.arange(K), 7)
    stats = nc_metrics(M.T[y], y, K)
    r = math.sqrt(2.0 * K / (K - 1))
    assert stats["uniformity_distance_mean"] == pytest.approx(r, rel=1e-12)
    assert stats["uniformity_log_mean"] == pytest.approx(-math.log(r), rel=1e-12)
    assert stats["uniformity_riesz_mean"] == pytest.approx(math.copysign(1.0, d - 2) * r ** (2 - d), rel=1e-12)
    for key in UNIFORMITY_KEYS:
        if key.endswith("_var"):
            assert abs(stats[key]) < 1e-12, key


def test_structure_errors_closed_forms():
    """W = M̃ gives a self-duality error 0, W = -M̃ the maximal error 2 (C/‖C‖ = -P)."""
    K, d = 5, 7
    M, _ = simplex_etf_np(K, d, seed=4)
    y = np.repeat(np.arange(K), 3)
    z = M.T[y]
    aligned = nc_metrics(z, y, K, classifier=M)
    opposite = nc_metrics(z, y, K, classifier=-M)
    assert aligned["self_duality_error"] < 1e-12
    assert opposite["self_duality_error"] == pytest.approx(2.0, rel=1e-12)
    assert opposite["etf_error_classifiers"] < 1e-12  # -M is still a simplex ETF
    # one-hot class means: centred (I − 11^T/K) they form an ETF; the uncentred classifier
    # W = I does not: ‖I/√K − P‖_F = sqrt(2 − 2⟨I/√K, P⟩) = sqrt(2 − 2 sqrt((K−1)/K))
    eye = np.eye(K)
    plain = nc_metrics(eye[y], y, K, classifier=eye)
    assert plain["etf_error_centers"] < 1e-12  # centring the one-hot means gives an ETF
    assert plain["etf_error_classifiers"] == pytest.approx(math.sqrt(2 - 2 * math.sqrt((K - 1) / K)), rel=1e-12)


def test_cdnv_is_invariant_to_scale_and_shift():
    z, y, _ = random_data(20)
    ref = nc_metrics(z, y, 6)["cdnv"]
    assert ref > 0
    assert nc_metrics(3.5 * z + 7.0, y, 6)["cdnv"] == pytest.approx(ref, rel=1e-10)


def test_cdnv_two_classes_by_hand():
    # class 0: {0, 2} (mean 1, var 1), class 1: {10, 10, 13} (mean 11, var 2); CDNV = (1 + 2) / (2 * 100)
    z = np.array([[0.0], [2.0], [10.0], [10.0], [13.0]])
    y = np.array([0, 0, 1, 1, 1])
    stats = nc_metrics(z, y, 2)
    assert stats["cdnv"] == pytest.approx(3.0 / 200.0, rel=1e-12)


@pytest.mark.parametrize("global_mean", ["samples", "classes"])
def test_bias_in_ncc_and_residual(global_mean):
    z, y, W = random_data(21)
    b = np.array([0.0, 3.0, -2.0, 0.5, 100.0, -1.0])  # class 4 is absent: its bias must not matter
    got = nc_metrics(z, y, 6, classifier=W, bias=b, global_mean=global_mean)
    want = brute_force(z, y, 6, W, global_mean=global_mean, b=b)
    assert_stats_close(got, want)
    no_bias = nc_metrics(z, y, 6, classifier=W, global_mean=global_mean)
    assert "bias_residual" not in no_bias
    assert got["ncc_mismatch"] != no_bias["ncc_mismatch"]  # the bias changed decisions
    # streaming with the bias equals the one-shot result
    acc = NCAccumulator(6, z.shape[1], global_mean=global_mean)
    for part in np.array_split(np.arange(len(y)), 3):
        acc.update(z[part], y[part])
    acc.freeze_means()
    for part in np.array_split(np.arange(len(y)), 4):
        acc.update_ncc(z[part], y[part], W, bias=b)
    assert_stats_close(acc.compute(W, bias=b), got, rel=1e-10)
    with pytest.raises(ValueError, match="bias"):
        acc.compute(W)  # pass 2 ran with a bias
    with pytest.raises(ValueError, match="bias"):
        acc.update_ncc(z, y, W)


def test_bias_errors():
    z, y, W = random_data(22)
    with pytest.raises(ValueError, match="bias"):
        nc_metrics(z, y, 6, bias=np.zeros(6))
    with pytest.raises(ValueError, match="bias"):
        nc_metrics(z, y, 6, classifier=W, bias=np.zeros(5))
    with pytest.raises(ValueError, match="bias"):
        nc_metrics(z, y, 6, classifier=W, bias=np.full(6, np.nan))
    with pytest.raises(TypeError, match="bias"):
        nc_metrics(z, y, 6, classifier=W, bias=[0.0] * 6)


def test_constant_features_raise_a_clear_error():
    y = np.arange(12) % 3
    with pytest.raises(ValueError, match="equals the global mean"):
        nc_metrics(np.zeros((12, 4)), y, 3)
    with pytest.raises(ValueError, match="equals the global mean"):
        nc_metrics(np.full((12, 4), 1e200), y, 3)
    # one class mean on the global mean (symmetric means -1, 0, +1): its angles are undefined
    z = np.array([[-1.0], [0.0], [1.0]] * 4)
    with pytest.raises(ValueError, match=r"class\(es\) \[1\]"):
        nc_metrics(z, y, 3)


def test_overflowing_features_raise_and_leave_the_state_unchanged():
    rng = np.random.default_rng(23)
    z = rng.standard_normal((40, 3))
    y = np.arange(40) % 2
    acc = NCAccumulator(2, 3).update(z, y)
    before = acc.compute()
    with pytest.raises(ValueError, match="overflow float64"):
        acc.update(z * 1e200, y)
    assert acc.num_samples == 40
    assert_stats_close(acc.compute(), before, rel=0, abs_=0)
    fresh = NCAccumulator(2, 3)
    with pytest.raises(ValueError, match="overflow float64"):
        fresh.update(z * 1e200, y)
    assert fresh.num_samples == 0 and fresh._shift is None
    # large but representable features work and give the scale-free statistics of z
    big = nc_metrics(z * 1e150, y, 2)
    assert big["nc1"] == pytest.approx(nc_metrics(z, y, 2)["nc1"], rel=1e-9)


def test_ignore_index_none_keeps_every_sample():
    z, y, W = random_data(24, ignore_frac=0.0)
    got = nc_metrics(z, y, 6, classifier=W, ignore_index=None)
    assert_stats_close(got, brute_force(z, y, 6, W, ignore_index=None))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    z, y, W = random_data(13)
    zt, yt, Wt = (torch.from_numpy(a) for a in (z, y, W))
    cpu = nc_metrics(zt.float(), yt, 6, classifier=Wt)
    gpu = nc_metrics(zt.float().cuda(), yt.cuda(), 6, classifier=Wt.cuda())
    assert_stats_close(gpu, cpu, rel=1e-9)
