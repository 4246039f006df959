"""Per-class feature centres of a batch (CeCo paper Eq. 3).

``z̄_k = (1/n_k) sum_{y_i = k} z_i`` over the pixels/points of the batch with
label ``k``; pixels labelled ``ignore_index`` (255) are dropped; a class absent
from the batch has ``n_k = 0`` and a zero centre (flagged by its count, never NaN).

The reduction is vectorised (no Python loop over classes or images):

* ``(B, d, H, W)`` features on CPU: ``scatter_add`` along the pixel axis of the
  ``(B, d, H*W)`` view into a ``(B, d, K+1)`` buffer -- no transpose copy of the
  features (``benchmarks/bench_centers.py --kernels`` compares it on CPU with
  ``index_add_`` of pixel rows, which pays a per-row overhead there, and with a
  one-hot matrix product);
* ``(N, d)`` features and channels-last maps on CPU (and other non-CUDA
  devices): ``index_add_`` of the ``(N, d)`` rows into a ``(K+1, d)`` buffer;
* CUDA: a one-hot matrix product ``onehot(y)^T @ Z`` in float32 (autocast off),
  the one-hot built by comparing the labels with ``[0, 1, ..., K-1,
  ignore_index]`` (no gather, no ``bincount``, no host synchronisation); the
  counts are column sums of the same one-hot.  Unlike ``index_add_``, whose
  float atomics make the last bits run-dependent on CUDA, the matrix product
  is deterministic.  Caveats: float32 features are multiplied in TF32 when the
  user enabled TF32 matmuls (``torch.backends.cuda.matmul.allow_tf32``;
  half/bfloat16 features are exact in TF32), and with ``validate=False`` a
  non-finite ignored pixel turns the sums non-finite (``0 * inf = nan``) where
  the CPU path drops it.

Ignored pixels go to the extra bin ``K`` (dropped), so no boolean mask copy is
made.  Sums are accumulated in float32 for half/bfloat16 input (also under
autocast) and in the input dtype for float32/float64.

Validation (``validate=True``) on CPU raises ``ValueError`` at once.  On CUDA
it is queued with ``torch._assert_async`` so the training step never waits for
the GPU: a label outside ``[0, K)`` other than ``ignore_index``, or a
non-finite sum, fails as a device-side assertion (``RuntimeError``, reported
at the next synchronisation, e.g. ``loss.item()``; as with an out-of-range
target of ``F.cross_entropy`` on CUDA, the CUDA context is unusable afterwards).
Run the batch on CPU, or call :func:`class_sums` there, for the ``ValueError``.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor

from .validation import (
    IGNORE_INDEX,
    check_choice,
    check_features_labels,
    check_ignore_index,
    check_labels,
    check_num_classes,
    check_tensor,
)

__all__ = ["class_sums", "class_centers", "align_features_and_labels", "no_autocast"]


def no_autocast(device: torch.device):
    """A context manager that disables autocast on ``device``'s type (a no-op context
    for device types without autocast support).

    The class-centre losses compute their small ``K x K`` logits under it, in
    float32 or wider, whatever autocast region the caller runs in.
    """
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # pragma: no cover - device type without autocast support
        return nullcontext()


def _bin_index(labels: Tensor, num_classes: int, ignore_index: int | None, validate: bool) -> Tensor:
    """int64 bin per pixel: the class, or ``num_classes`` for ignored pixels.

    With ``validate`` raises ``ValueError`` for labels outside ``[0, K)`` other
    than ``ignore_index`` (the message of :func:`ceco_lite.validation.check_labels`;
    one ``aminmax`` pass, synchronises on CUDA).
    """
    labels = labels.long()
    if ignore_index is None:
        if validate:
            check_labels(labels, num_classes, ignore_index)
        return labels
    ignored = labels == ignore_index
    if validate and labels.numel():
        lo, hi = torch.aminmax(labels.masked_fill(ignored, 0))
        if int(lo) < 0 or int(hi) >= num_classes:
            check_labels(labels, num_classes, ignore_index)  # raises, naming a bad label
    return labels.masked_fill(ignored, num_classes)


def _all_finite(sums: Tensor) -> Tensor:
    """0-d bool tensor: every entry of ``sums`` is finite (``x * 0`` is 0 there, NaN for NaN/inf); 3 kernels.

    Called without autograd recording (inside :class:`_ClassSums`, or on features that need no gradient).
    """
    return (sums * 0).sum() == 0


def _class_sums_onehot(
    features: Tensor, labels: Tensor, num_classes: int, ignore_index: int | None, validate: bool
) -> tuple[Tensor, Tensor]:
    """CUDA kernel of :func:`class_sums`: float32/64 one-hot matrix product, no host synchronisation."""
    K = num_classes
    acc = _accumulation_dtype(features.dtype)
    d = features.shape[1]
    if features.ndim == 4:
        # (B, h, w, d) rows: a view for channels-last input, else one cast/transpose copy
        rows = features.to(acc, memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(-1, d)
    else:
        rows = features.to(acc)
    if ignore_index is None:
        classes = torch.arange(K, device=labels.device)
    else:
        # [0, ..., K-1, ignore_index] built on the device (a setitem would copy a host scalar)
        classes = torch.arange(K + 1, device=labels.device)
        classes = torch.where(classes < K, classes, ignore_index)
    # (..., K[+1]) one-hot straight from the (possibly strided) labels; labels outside
    # the classes (and ignore_index) give an all-zero row
    onehot = (labels.unsqueeze(-1) == classes).reshape(-1, classes.numel())
    counts_all = onehot.sum(dim=0)
    with torch.autocast(device_type=features.device.type, enabled=False):
        sums = onehot[:, :K].to(acc).T @ rows  # (K, d)
    if validate and labels.numel():
        torch._assert_async(
            counts_all.sum() == labels.numel(),
            f"class_sums: labels must lie in [0, num_classes) = [0, {K}) or equal ignore_index={ignore_index}",
        )
        torch._assert_async(
            _all_finite(sums),
            "class_sums: features contain non-finite values (NaN/inf), or their per-class sums overflow",
        )
    return sums, counts_all[:K]


def _reduce(
    features: Tensor, labels: Tensor, num_classes: int, ignore_index: int | None, validate: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Forward kernels of :func:`class_sums` (arguments already checked): ``(sums, counts, bins)``.

    ``bins`` is the int64 bin of every pixel (the class, ``K`` for ignored pixels) where the
    kernel computed it (CPU), else ``None`` (the CUDA one-hot product needs none).
    """
    K = num_classes
    if features.device.type == "cuda":
        sums, counts = _class_sums_onehot(features, labels, K, ignore_index, validate)
        return sums, counts, None
    idx = _bin_index(labels, K, ignore_index, validate)
    acc = _accumulation_dtype(features.dtype)
    d = features.shape[1]

    if features.ndim == 4 and _pixel_axis_layout(features):
        # scatter along the pixel axis of (B, d, HW): no transpose copy of the features
        B, _, H, W = features.shape
        src = features.reshape(B, d, H * W).to(acc)
        index = idx.reshape(B, 1, H * W).expand(B, d, H * W)
        buf = torch.zeros(B, d, K + 1, dtype=acc, device=features.device)
        buf.scatter_add_(2, index, src)
        sums_all = buf.sum(dim=0).T  # (K+1, d)
    else:
        if features.ndim == 4:
            rows = features.permute(0, 2, 3, 1).reshape(-1, d)
        else:
            rows = features
        rows = rows.to(acc)
        sums_all = torch.zeros(K + 1, d, dtype=acc, device=features.device).index_add_(0, idx.reshape(-1), rows)
    if validate and not bool(_all_finite(sums_all)):
        raise ValueError("features contain non-finite values (NaN/inf), or their per-class sums overflow")
    counts = torch.bincount(idx.reshape(-1), minlength=K + 1)[:K]
    return sums_all[:K], counts, idx


def _pixel_axis_layout(features: Tensor) -> bool:
    """``(B, d, H, W)`` CPU features reduced (and their gradient gathered) along the pixel axis."""
    return features.device.type == "cpu" and not features.is_contiguous(memory_format=torch.channels_last)


class _ClassSums(torch.autograd.Function):
    """:func:`class_sums` with its backward written out (CeCo paper Eq. 3).

    ``d sums_k / d z_i = [y_i = k] I_d``, so the gradient of pixel ``i`` is row ``y_i``
    of ``grad_sums`` (zero for an ignored pixel): one gather, exactly the values autograd
    derives through the scatter / matrix product (no TF32 rounding on CUDA), in the
    features' dtype and in their memory layout.  The backward is itself made of
    differentiable operations on ``grad_sums`` (the Jacobian depends on the labels only),
    so double backward works too.
    """

    @staticmethod
    def forward(ctx, features, labels, num_classes, ignore_index, validate):
        sums, counts, bins = _reduce(features, labels, num_classes, ignore_index, validate)
        ctx.num_classes, ctx.ignore_index = num_classes, ignore_index
        ctx.shape, ctx.dtype = features.shape, features.dtype
        ctx.pixel_axis = features.ndim == 4 and _pixel_axis_layout(features)
        ctx.save_for_backward(bins if bins is not None else labels)
        ctx.have_bins = bins is not None
        ctx.mark_non_differentiable(counts)
        return sums, counts

    @staticmethod
    def backward(ctx, grad_sums, grad_counts):
        (saved,) = ctx.saved_tensors
        K, shape = ctx.num_classes, ctx.shape
        bins = saved if ctx.have_bins else _bin_index(saved, K, ctx.ignore_index, False)
        d = shape[1]
        # (K+1, d): the extra zero row is the gradient of ignored pixels
        table = F.pad(grad_sums, (0, 0, 0, 1))
        if ctx.pixel_axis:
            B, _, H, W = shape
            index = bins.reshape(B, 1, H * W).expand(B, d, H * W)
            grad = torch.gather(table.T.unsqueeze(0).expand(B, d, K + 1), 2, index).view(shape)
        else:
            grad = table.index_select(0, bins.reshape(-1))
            if len(shape) == 4:
                B, _, H, W = shape
                grad = grad.view(B, H, W, d).permute(0, 3, 1, 2)  # channels-last strides
        return grad.to(ctx.dtype), None, None, None, None


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------- Eq. 3
def class_sums(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    validate: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-class feature sums and pixel counts (numerator and ``n_k`` of CeCo paper Eq. 3).

    :func:`class_centers` divides the two; a distributed caller all-reduces
    both before dividing (see :class:`ceco_lite.ceco.CenterCollapseLoss`).
    Differentiable with respect to ``features``.

    Parameters
    ----------
    features : Tensor
        ``(N, d)`` or ``(B, d, H, W)``, floating (float16/bfloat16/float32/float64).
    labels : Tensor
        ``(N,)`` or ``(B, H, W)``, integer dtype, values in ``[0, num_classes)``
        or ``ignore_index``; same device as ``features``.
    num_classes : int
        ``K >= 2``.
    ignore_index : int or None, default 255
        Label of pixels to drop; must lie outside ``[0, K)``.  ``None``: no
        label is ignored.
    validate : bool, default True
        Check label values and finiteness of the sums (one extra pass over the
        labels).  CPU: ``ValueError`` at once.  CUDA: asynchronous device-side
        assertions, no host synchronisation (see the module docstring).
        Shapes, dtypes and devices are always checked.

    Returns
    -------
    sums : Tensor
        ``(K, d)``: ``sum_{y_i = k} z_i``.  float32 for half/bfloat16 input
        (also under autocast), else the input dtype (float32 or float64).
    counts : Tensor
        ``(K,)`` int64: ``n_k`` (0 for absent classes).

    Raises
    ------
    TypeError
        ``features`` not floating, ``labels`` not integer, ``num_classes``/``ignore_index`` not int.
    ValueError
        ``num_classes < 2``; ``ignore_index`` inside ``[0, K)``; shape mismatch;
        device mismatch; labels outside ``[0, K)`` other than ``ignore_index``;
        non-finite features (detected from the sums, so an overflow of the sums
        is reported too).  The last two are device-side assertions on CUDA.
    """
    check_features_labels(features, labels)
    K = check_num_classes(num_classes)
    ignore_index = check_ignore_index(ignore_index, K)
    if not torch.is_grad_enabled() or not features.requires_grad:
        sums, counts, _ = _reduce(features, labels, K, ignore_index, validate)
        return sums, counts
    return _ClassSums.apply(features, labels, K, ignore_index, bool(validate))


def class_centers(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    validate: bool = True,
) -> tuple[Tensor, Tensor]:
    """Class centres (per-class mean features) of a batch, CeCo paper Eq. 3.

    ``z̄_k = (1/n_k) sum_{y_i = k} z_i``, over all pixels of all images of the
    batch (as the paper and the released code do), ignoring ``ignore_index``.

    Parameters
    ----------
    features : Tensor
        ``(N, d)`` or ``(B, d, H, W)``, floating.  Features at another resolution
        than the labels must first go through :func:`align_features_and_labels`.
    labels : Tensor
        ``(N,)`` or ``(B, H, W)``, integer, in ``[0, K)`` or ``ignore_index``.
    num_classes : int
        ``K >= 2``.
    ignore_index : int or None, default 255
    validate : bool, default True
        See :func:`class_sums`.

    Returns
    -------
    centers : Tensor
        ``(K, d)``; rows of absent classes are zero (never NaN).  float32 for
        half/bfloat16 input, else the input dtype.  Differentiable w.r.t. ``features``.
    counts : Tensor
        ``(K,)`` int64 pixel counts ``n_k``; ``counts > 0`` marks the present classes.

    Raises
    ------
    TypeError, ValueError
        See :func:`class_sums`.

    Examples
    --------
    >>> z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    >>> y = torch.tensor([0, 0, 255])
    >>> centers, counts = class_centers(z, y, 2)
    >>> centers.tolist(), counts.tolist()
    ([[2.0, 0.0], [0.0, 0.0]], [2, 0])
    """
    sums, counts = class_sums(features, labels, num_classes, ignore_index=ignore_index, validate=validate)
    centers = sums / counts.clamp_min(1).to(sums.dtype).unsqueeze(1)
    return centers, counts


def align_features_and_labels(
    features: Tensor,
    labels: Tensor,
    *,
    mode: str = "nearest_labels",
    align_corners: bool = True,
) -> tuple[Tensor, Tensor]:
    """Bring ``(B, d, h, w)`` features and ``(B, H, W)`` labels to one resolution.

    Segmentation heads output features at a stride (e.g. 1/4 or 1/8); Eq. 3
    needs one label per feature vector.

    Parameters
    ----------
    features : Tensor
        ``(B, d, h, w)``, floating.
    labels : Tensor
        ``(B, H, W)``, integer.
    mode : {"nearest_labels", "bilinear_features"}, default "nearest_labels"
        ``"nearest_labels"``: labels are resampled to ``(h, w)`` by nearest
        neighbour (source pixel ``floor(i * H / h)``, the same pixels as
        ``F.interpolate(mode="nearest")``) -- cheap (a strided view when
        ``H/h`` and ``W/w`` are integers), and label values are never mixed.
        ``"bilinear_features"``: features are upsampled bilinearly to ``(H, W)``
        as the released CeCo code does (``align_corners=True`` there).
    align_corners : bool, default True
        Passed to ``F.interpolate`` in ``"bilinear_features"`` mode (unused for
        nearest-neighbour label resampling).

    Returns
    -------
    features, labels : Tensor, Tensor
        ``(B, d, s, t)`` and ``(B, s, t)`` with a common ``(s, t)``; the inputs
        are returned unchanged when the sizes already agree.  The labels may be
        a non-contiguous view of the input labels.

    Raises
    ------
    TypeError
        Non-floating features, non-integer labels.
    ValueError
        Wrong number of dimensions, batch-size or device mismatch, unknown ``mode``,
        or an empty spatial size (``h``, ``w``, ``H`` or ``W`` of 0) on one side
        only.
    """
    check_tensor(features, "features", kind="floating", ndim=4, shape="(B, d, h, w)")
    check_tensor(labels, "labels", kind="integer", ndim=3, shape="(B, H, W)")
    if features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features and labels must have the same batch size, got {features.shape[0]} and {labels.shape[0]}"
        )
    if features.device != labels.device:
        raise ValueError(
            f"features and labels must be on the same device, got {features.device} and {labels.device}"
        )
    check_choice(mode, "mode", ("nearest_labels", "bilinear_features"))
    h, w = features.shape[-2:]
    H, W = labels.shape[-2:]
    if (h, w) == (H, W):
        return features, labels
    # resampling needs pixels on both sides (an empty map has no source pixel for the other)
    if h == 0 or w == 0:
        raise ValueError(
            f"features must have a non-empty spatial size (h, w >= 1) to be matched with labels of size "
            f"{(H, W)}, got shape {tuple(features.shape)}"
        )
    if H == 0 or W == 0:
        raise ValueError(
            f"labels must have a non-empty spatial size (H, W >= 1) to be matched with features of size "
            f"{(h, w)}, got shape {tuple(labels.shape)}"
        )
    if mode == "bilinear_features":
        up = F.interpolate(features, size=(H, W), mode="bilinear", align_corners=align_corners)
        return up, labels
    if H % h == 0 and W % w == 0:
        # integer factors s, t: nearest picks floor(i * H / h) = i * s, i.e. a strided view (no kernel)
        return features, labels[:, :: H // h, :: W // w]
    # source row/column of each output pixel, computed by F.interpolate itself (so the
    # result equals F.interpolate(labels, mode="nearest") bit for bit), then gathered
    # from the integer labels (no float round trip of the label values)
    grid = torch.arange(max(H, W), dtype=torch.float32, device=labels.device)
    rows = F.interpolate(grid[:H].view(1, 1, H, 1), size=(h, 1), mode="nearest").view(h).long()
    cols = F.interpolate(grid[:W].view(1, 1, 1, W), size=(1, w), mode="nearest").view(w).long()
    return features, labels[:, rows][:, :, cols]
