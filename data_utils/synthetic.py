"""Synthetic imbalanced semantic segmentation.

A fast generator of image/mask pairs with the three properties that make semantic
segmentation differ from image classification (CeCo paper, Sec. 1 and 3.2):

* **pixel imbalance** -- class pixel frequencies follow a long-tailed profile,
  ``n_k ∝ IF^(-k/(K-1))`` (``"exp"``, docs/conventions.md, section cifar-lt) or the
  step profile; the measured
  pixel imbalance factor equals the requested one up to sampling noise;
* **centre imbalance smaller than pixel imbalance** -- rare classes are both smaller
  and present in fewer images: class ``k`` appears in a fraction
  ``q_k = (n_k / n_0)^presence_exponent`` of the images, so the centre IF is about
  ``IF^presence_exponent`` (the default 0.5 mimics Cityscapes, pixel 373 vs centre 20,
  supplement Table 12);
* **contextual correlation** -- each class outside the head third has a *parent*
  head class; with ``context_strength = 1`` it is placed inside (and next to) its
  parent's region and only in images containing the parent, with 0 it is placed
  anywhere. Head classes also get a vertical position prior (sky-like on top,
  road-like at the bottom), scaled by the same strength;
* **overlapping appearance** -- colours and textures are shared within appearance
  groups: every common class resembles a head class and all tail classes resemble
  each other (``appearance_overlap`` blends class-specific and group appearance), so a
  per-pixel model confuses the minor classes and the task needs context.

Regions are spatially coherent: a layout is drawn on a coarse grid of cells by letting
classes claim, rarest first, the highest cells of smooth random score fields (exact
per-image areas), then upsampled to full resolution through smooth random warps (wavy
boundaries, no blocks). Per-image areas come from iterative proportional fitting, so
the class pixel totals of a call match the requested profile. Everything is vectorised
over images; the only Python loop runs over classes.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ceco_lite.validation import (
    IGNORE_INDEX,
    check_bool,
    check_float,
    check_generator,
    check_ignore_index,
    check_imbalance_factor,
    check_int,
    check_num_classes,
    check_seed,
    check_size,
)

from .profiles import long_tail_profile

__all__ = [
    "make_synthetic_segmentation",
    "SyntheticSegmentation",
    "synthetic_class_structure",
    "target_pixel_frequencies",
    "palette",
    "IGNORE_INDEX",
    "LAYOUT_BLOCK",
]

#: Images whose layouts are drawn together (per-block exact class areas and presence counts).
LAYOUT_BLOCK = 2048

# A hand-picked qualitative palette (Tableau 20 order) for plotting up to 20 classes.
_TAB20 = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
        (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
        (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
    ],
    dtype=np.uint8,
)


def palette(num_classes: int) -> np.ndarray:
    """Distinct display colours for ``num_classes`` classes (for plotting masks).

    Parameters
    ----------
    num_classes : int
        ``K >= 1``.

    Returns
    -------
    numpy.ndarray
        ``(K, 3)`` uint8 RGB. The Tableau-20 colours for ``K <= 20``; beyond that, hues
        spaced by the golden angle at alternating saturation/value. These are *display*
        colours, unrelated to the (deliberately overlapping) appearance of the classes in
        the synthetic images. The ignore index 255 is conventionally drawn black.
    """
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    if num_classes <= len(_TAB20):
        return _TAB20[:num_classes].copy()
    k = np.arange(num_classes, dtype=np.float64)
    hue = (k * 0.618033988749895) % 1.0
    sat = np.where(k % 2 == 0, 0.65, 0.9)
    val = np.where(k % 3 == 0, 0.95, 0.75)
    return (_hsv_to_rgb(hue, sat, val) * 255.0 + 0.5).astype(np.uint8)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def synthetic_class_structure(num_classes: int) -> dict:
    """Head/common/tail split, context parents and appearance groups of the generator.

    Class indices are in order of decreasing pixel frequency (class 0 is the most
    frequent, the "background stuff" class). Thirds by index: head, common, tail
    (``numpy.array_split`` of ``0..K-1`` in three; docs/conventions.md, section
    head-common-tail).

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.

    Returns
    -------
    dict
        ``"head"``, ``"common"``, ``"tail"``: int64 index arrays; ``"parent"``: ``(K,)``
        int64, the context parent of each class (a head class other than 0, or class 1
        when the head third is only class 0) or -1 for none; ``"appearance_group"``:
        ``(K,)`` int64, the class whose appearance a class shares (head: itself; common:
        a head class; tail: the first tail class, shared by all tail classes).
    """
    K = check_num_classes(num_classes)
    head, common, tail = (np.asarray(a, dtype=np.int64) for a in np.array_split(np.arange(K), 3))
    n_head = len(head)
    parents_pool = [int(h) for h in head if h != 0] or ([1] if K >= 3 else [])
    parent = np.full(K, -1, dtype=np.int64)
    for k in range(n_head, K):
        cand = [p for p in parents_pool if p < k]
        if cand:
            parent[k] = cand[(k - n_head) % len(cand)]
    group = np.arange(K, dtype=np.int64)
    for j, k in enumerate(common):
        group[k] = head[j % n_head]
    if len(tail):
        group[tail] = tail[0]
    return {"head": head, "common": common, "tail": tail, "parent": parent, "appearance_group": group}


def target_pixel_frequencies(num_classes: int, imbalance_factor: float, profile: str = "exp") -> np.ndarray:
    """Requested pixel frequencies ``p_k`` (sum 1) of the generator.

    ``p_k ∝ IF^(-k/(K-1))`` for ``profile="exp"`` (docs/conventions.md, section
    cifar-lt), or the step profile; so
    ``p_0 / p_{K-1} = IF``. Returns ``(K,)`` float64.
    """
    w = long_tail_profile(num_classes, imbalance_factor, profile)
    return w / w.sum()


def _textures(h: int, w: int) -> torch.Tensor:
    """Six fixed texture patterns in [-1, 1], shape (6, h, w)."""
    y = np.arange(h, dtype=np.float64)[:, None] + np.zeros((1, w))
    x = np.arange(w, dtype=np.float64)[None, :] + np.zeros((h, 1))
    two_pi = 2.0 * math.pi
    pats = np.stack(
        [
            np.zeros((h, w)),                                                        # flat
            np.sin(two_pi * y / 4.0),                                                # horizontal stripes
            np.sin(two_pi * x / 6.0),                                                # vertical stripes
            np.sign(np.sin(two_pi * (x + 0.5) / 6.0) * np.sin(two_pi * (y + 0.5) / 6.0)),  # checker
            np.sin(two_pi * (x + y) / 5.0),                                          # diagonal stripes
            np.sin(two_pi * x / 3.0) * np.cos(two_pi * y / 3.0),                     # fine dots
        ]
    )
    return torch.from_numpy(pats.astype(np.float32))


def _appearance(K: int, overlap: float):
    """Class colours (K, 3) and texture table weights (K, 6) after blending with groups."""
    struct = synthetic_class_structure(K)
    group = struct["appearance_group"]
    k = np.arange(K, dtype=np.float64)
    hue = (k * 0.618033988749895 + 0.05) % 1.0
    distinct = _hsv_to_rgb(hue, np.full(K, 0.55), np.where(k % 2 == 0, 0.8, 0.6))
    tail = struct["tail"]
    group_colour = distinct[group].copy()
    if len(tail):
        group_colour[tail] = (0.62, 0.5, 0.45)  # all tail classes drift to one brownish grey
    colour = (1.0 - overlap) * distinct + overlap * group_colour
    tex_id = np.arange(K) % 6
    group_tex = tex_id[group].copy()
    if len(tail):
        group_tex[tail] = 4
    tex = np.zeros((K, 6))
    tex[np.arange(K), tex_id] += 1.0 - overlap
    tex[np.arange(K), group_tex] += overlap
    return torch.as_tensor(colour, dtype=torch.float32), torch.as_tensor(tex, dtype=torch.float32)


def _warp_maps(h: int, w: int, gh: int, gw: int, cell: int, num_maps: int, gen: torch.Generator) -> torch.Tensor:
    """Pixel -> layout-cell index maps through smooth random warps, shape (num_maps, h*w).

    The displacement is divergence-free (the curl of a random stream function made of
    three plane waves), so the warp preserves the class areas of the layout to first
    order; its amplitude is 0.35 cells per wave, wavelengths 3-6 cells.
    """
    params = torch.rand(num_maps, 3, 3, generator=gen, dtype=torch.float64).numpy()
    cy = ((np.arange(h, dtype=np.float64) + 0.5) / cell - 0.5)[None, :, None]
    cx = ((np.arange(w, dtype=np.float64) + 0.5) / cell - 0.5)[None, None, :]
    amp = 0.0 if cell == 1 else 0.35
    dy = np.zeros((num_maps, h, w))
    dx = np.zeros((num_maps, h, w))
    for term in range(3):
        angle = 2 * math.pi * params[:, term, 0][:, None, None]
        freq = 2 * math.pi / (3.0 + 3.0 * params[:, term, 1][:, None, None])
        phase = 2 * math.pi * params[:, term, 2][:, None, None]
        wave = amp * np.cos(freq * (np.sin(angle) * cy + np.cos(angle) * cx) + phase)
        dy += wave * np.cos(angle)  # d_y = dpsi/dx
        dx -= wave * np.sin(angle)  # d_x = -dpsi/dy
    iy = np.clip(np.rint(cy + dy), 0, gh - 1).astype(np.int64)
    ix = np.clip(np.rint(cx + dx), 0, gw - 1).astype(np.int64)
    return torch.from_numpy((iy * gw + ix).reshape(num_maps, h * w))


def _bicubic_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """The linear map of 1-D bicubic upsampling ``in_size -> out_size`` (align_corners=False),
    shape (out_size, in_size): separable upsampling becomes two small matrix products."""
    eye = torch.eye(in_size)[:, None, :, None]  # (in, 1, in, 1): one basis image per input cell
    up = F.interpolate(eye, size=(out_size, 1), mode="bicubic", align_corners=False)
    return up[:, 0, :, 0].T.contiguous()


def _stochastic_round(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    lo = torch.floor(x)
    return (lo + (torch.rand(x.shape, generator=gen, dtype=x.dtype) < (x - lo)).to(x.dtype)).long()


def _layout(n, K, gh, gw, p, q, struct, c, ignore_region, ignore_fraction, ignore_index, gen):
    """Coarse label layout (n, gh*gw) int64 with exact per-image class areas in cells."""
    C = gh * gw
    parent = torch.as_tensor(struct["parent"])
    # --- which images contain which class (exact counts, parents preferred) ----------
    present = torch.zeros(n, K, dtype=torch.bool)
    present[:, 0] = True
    m = _stochastic_round(torch.as_tensor(q * n, dtype=torch.float64), gen).clamp_(0, n)
    m[0] = n
    for k in range(1, K):
        if m[k] == 0:
            continue
        key = torch.rand(n, generator=gen)
        if parent[k] >= 0 and c > 0:
            key = key + 2.0 * c * (~present[:, parent[k]]).float()
        idx = torch.topk(key, int(m[k]), largest=False).indices
        present[idx, k] = True
    # --- ignore region: an ego-vehicle-like hood at the bottom -------------------------
    yy = (torch.arange(gh, dtype=torch.float32)[:, None] + 0.5) / gh
    xx = (torch.arange(gw, dtype=torch.float32)[None, :] + 0.5) / gw
    if ignore_region and ignore_fraction > 0:
        hgt = ignore_fraction / (1.0 - 0.5 / 3.0) * (0.5 + torch.rand(n, 1, 1, generator=gen))
        top = 1.0 - hgt * (1.0 - 0.5 * (2.0 * xx - 1.0) ** 2)
        ignore = (yy > top).reshape(n, C)
    else:
        ignore = torch.zeros(n, C, dtype=torch.bool)
    valid = (C - ignore.sum(1)).double()
    # --- per-image areas by iterative proportional fitting -----------------------------
    jitter = torch.exp(0.5 * torch.randn(n, K, generator=gen, dtype=torch.float64))
    base = present.double() * jitter
    target = torch.as_tensor(p, dtype=torch.float64) * valid.sum()
    wk = torch.ones(K, dtype=torch.float64)
    for _ in range(200):
        frac = base * wk
        frac = frac / frac.sum(1, keepdim=True)
        col = (frac * valid[:, None]).sum(0)
        ratio = torch.where(col > 0, target / col.clamp_min(1e-300), torch.ones_like(col))
        wk = wk * ratio
        if torch.max(torch.abs(ratio[col > 0] - 1.0)) < 1e-7:
            break
    frac = base * wk
    frac = frac / frac.sum(1, keepdim=True)
    area = _stochastic_round(frac * valid[:, None], gen)
    area[:, 0] = 0
    excess = (area.sum(1) - valid.long()).clamp_min(0)
    if bool((excess > 0).any()):
        big = area.argmax(1)
        area[torch.arange(n), big] -= excess
        area.clamp_min_(0)
    # --- smooth score fields ------------------------------------------------------------
    coarse = torch.randn(n * K, 16, generator=gen)
    up = torch.kron(_bicubic_matrix(gh, 4), _bicubic_matrix(gw, 4))  # (C, 16)
    field = (coarse @ up.T).reshape(n, K, C)  # == bicubic upsampling of 4x4 noise, one GEMM
    # scores, in place: head classes get vertical priors; a class with a parent scores
    # high where its parent does (parents are head classes, so already final)
    score = field
    head = struct["head"]
    ycoord = (2.0 * yy - 1.0).expand(gh, gw).reshape(C)
    for j, k in enumerate(head[1:]):
        score[:, k] += 1.5 * c * (1.0 if j % 2 else -1.0) * ycoord
    has_parent = struct["parent"] >= 0
    kids = torch.as_tensor(np.nonzero(has_parent)[0])
    if len(kids) and c > 0:
        score[:, kids] = c * score[:, parent[kids]] + (1.0 - 0.6 * c) * score[:, kids]
    # --- claims, rarest first; class 0 keeps the remainder ------------------------------
    label = torch.zeros(n, C, dtype=torch.long)
    label[ignore] = ignore_index
    claimed = ignore.clone()
    neg_inf = torch.tensor(float("-inf"))
    ranks = torch.arange(C)
    for k in range(K - 1, 0, -1):
        rows = torch.nonzero(area[:, k] > 0).squeeze(1)
        if rows.numel() == 0:
            continue
        a = area[rows, k]
        amax = int(a.max())
        s = torch.where(claimed[rows], neg_inf, score[rows, k])
        vals, top = torch.topk(s, amax, dim=1)
        keep = (ranks[:amax][None, :] < a[:, None]) & (vals > neg_inf)  # never re-claim a cell
        flat = (rows[:, None] * C + top)[keep]
        label.view(-1)[flat] = k
        claimed.view(-1)[flat] = True
    return label


def make_synthetic_segmentation(
    num_images: int,
    num_classes: int,
    size=64,
    imbalance_factor: float = 100.0,
    *,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    context_strength: float = 0.8,
    appearance_overlap: float = 0.6,
    noise_level: float = 0.08,
    ignore_region: bool = False,
    ignore_fraction: float = 0.1,
    presence_exponent: float = 0.5,
    profile: str = "exp",
    chunk_size: int = 2048,
    ignore_index: int | None = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate imbalanced, context-correlated synthetic segmentation data.

    Pixel frequencies follow ``p_k ∝ IF^(-k/(K-1))`` (the LDAM-DRW profile applied
    to pixels, docs/conventions.md, section synthetic-data); see the module docstring for the layout, context and appearance
    model.

    Parameters
    ----------
    num_images : int
        ``N >= 1``.
    num_classes : int
        ``K >= 2``. Class 0 is the most frequent, class ``K-1`` the rarest.
    size : int or (int, int)
        Image size ``H`` (square) or ``(H, W)``, positive.
    imbalance_factor : float
        Requested pixel imbalance factor ``IF = n_max / n_min >= 1``.
    seed : int, default 0
        Seed of a fresh ``torch.Generator`` (ignored when ``generator`` is given). The
        output is a deterministic function of the arguments and the seed.
    generator : torch.Generator, optional
        Random source to use instead of ``seed``.
    context_strength : float in [0, 1], default 0.8
        0: classes placed independently; 1: every non-head class lies inside its parent
        head class's region and appears only in images that contain the parent; head
        classes follow vertical position priors.
    appearance_overlap : float in [0, 1], default 0.6
        0: every class has its own colour and texture; 1: common classes look exactly
        like their head class and all tail classes look alike.
    noise_level : float >= 0, default 0.08
        Standard deviation of the per-pixel Gaussian noise (intensities in [0, 1]); the
        per-image, per-class colour jitter is ``0.5 * noise_level + 0.02``.
    ignore_region : bool, default False
        Mark an ego-vehicle-like region at the bottom of each image with ``ignore_index``.
    ignore_fraction : float in [0, 1], default 0.1
        Mean fraction of pixels ignored when ``ignore_region`` is on.
    presence_exponent : float in [0, 1], default 0.5
        Class ``k`` appears in a fraction ``(p_k/p_0)^presence_exponent`` of the images:
        0 = every class in every image (centre IF 1), 1 = rare classes only as rarely as
        their pixels (centre IF ≈ pixel IF). 0.5 gives a centre IF ≈ sqrt(pixel IF),
        close to Cityscapes (pixel 373, centre 20; CeCo supplement Table 12).
    profile : {"exp", "step"}, default "exp"
        Long-tailed profile of the pixel frequencies.
    chunk_size : int, default 2048
        Images rendered per vectorised step: bounds the working memory of the pixel
        stage (a few ``(chunk_size, 3, H, W)`` float32 temporaries besides the
        output). The output does not depend on it: layouts are always drawn in
        blocks of :data:`LAYOUT_BLOCK` = 2048 images (the class areas and presence
        counts are exact per block, and the layout stage works on a whole block:
        about ``2048 * K * (H/c) * (W/c)`` float32 scores with the cell size
        ``c = max(1, min(H, W) // 16)``), and each block's random numbers are drawn
        in one fixed order.
    ignore_index : int or None, default 255
        Label of the ignored pixels of ``ignore_region``; must lie outside
        ``[0, num_classes)`` (docs/conventions.md, section ignore-index), so with
        256 or more classes pass another value (e.g. ``-1``). ``None`` (no label is
        reserved) needs ``ignore_region=False``.

    Returns
    -------
    images : torch.Tensor
        ``(N, 3, H, W)`` float32, values in [0, 1].
    masks : torch.Tensor
        ``(N, H, W)`` int64, class indices in ``0..K-1``, ``ignore_index`` for ignored
        pixels.

    Raises
    ------
    ValueError, TypeError
        On ``num_images < 1``, ``num_classes < 2``, ``imbalance_factor < 1``, a
        non-positive size, an option outside its range (``noise_level`` must be
        finite), a seed that is not a non-negative int, a ``generator`` that is not
        a :class:`torch.Generator`, an unknown profile, or an ``ignore_index`` that is
        a class.

    Examples
    --------
    >>> images, masks = make_synthetic_segmentation(4, 5, 16, 10.0, seed=0)
    >>> images.shape, masks.shape, masks.dtype
    (torch.Size([4, 3, 16, 16]), torch.Size([4, 16, 16]), torch.int64)
    >>> again = make_synthetic_segmentation(4, 5, 16, 10.0, seed=0, chunk_size=3)
    >>> torch.equal(images, again[0]) and torch.equal(masks, again[1])
    True
    """
    check_int(num_images, "num_images", minimum=1)
    K = check_num_classes(num_classes)
    IF = check_imbalance_factor(imbalance_factor)
    H, W = check_size(size)
    seed = check_seed(seed)
    check_generator(generator)
    c = check_float(context_strength, "context_strength", minimum=0.0, maximum=1.0)
    overlap = check_float(appearance_overlap, "appearance_overlap", minimum=0.0, maximum=1.0)
    noise_level = check_float(noise_level, "noise_level", minimum=0.0)
    ignore_region = check_bool(ignore_region, "ignore_region")
    ignore_fraction = check_float(ignore_fraction, "ignore_fraction", minimum=0.0, maximum=1.0)
    presence_exponent = check_float(presence_exponent, "presence_exponent", minimum=0.0, maximum=1.0)
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    ignore_index = check_ignore_index(ignore_index, K)
    if ignore_index is None and ignore_region:
        raise ValueError("ignore_region=True needs an ignore_index for its pixels, got ignore_index=None")
    p = target_pixel_frequencies(K, IF, profile)
    q = np.minimum(1.0, (p / p[0]) ** presence_exponent)
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    gen = generator

    struct = synthetic_class_structure(K)
    cell = max(1, min(H, W) // 16)
    gh, gw = -(-H // cell), -(-W // cell)
    maps = _warp_maps(H, W, gh, gw, cell, 8, gen)
    colour, tex_w = _appearance(K, overlap)
    patterns = _textures(H, W).reshape(6, H * W)
    tex_table = (0.12 * (tex_w @ patterns)).T.contiguous()  # (H*W, K): texture of class k at pixel p
    jit_sd = 0.5 * float(noise_level) + 0.02

    images = torch.empty(num_images, 3, H * W, dtype=torch.float32)
    masks = torch.empty(num_images, H * W, dtype=torch.long)
    for start in range(0, num_images, LAYOUT_BLOCK):
        n = min(LAYOUT_BLOCK, num_images - start)
        low = _layout(n, K, gh, gw, p, q, struct, c, ignore_region, ignore_fraction, ignore_index, gen)
        # warp variant of image i is i % num_maps (layouts are i.i.d., so this is random enough)
        shift = int(torch.randint(0, maps.shape[0], (), generator=gen))
        bright = 0.85 + 0.3 * torch.rand(n, 1, 1, generator=gen)
        table = (colour[None] * bright + jit_sd * torch.randn(n, K, 3, generator=gen)).transpose(1, 2)
        img = images[start:start + n]
        if noise_level > 0:
            # the block's pixel noise, drawn in one call (so it does not depend on chunk_size)
            # straight into the output, which the chunks below render over
            torch.randn(n, 3, H * W, generator=gen, out=img)
        for a in range(0, n, chunk_size):
            _render_chunk(a, min(a + chunk_size, n), low, masks[start:start + n], img, maps, shift, table,
                          tex_table, noise_level, ignore_region, ignore_index)
    return images.reshape(num_images, 3, H, W), masks.reshape(num_images, H, W)


def _render_chunk(a, b, low, mask, img, maps, shift, table, tex_table, noise_level, ignore_region, ignore_index):
    """Images ``a:b`` of a layout block: warp their layouts into ``mask``, paint them into ``img``.

    On entry ``img[a:b]`` holds the block's pixel noise (when ``noise_level > 0``).
    Every step is per image, so the result does not depend on the chunk bounds.
    """
    V = maps.shape[0]
    for v in range(V):  # one expanded gather per warp variant (no (n, H*W) index is materialised)
        rows = slice(a + (v - a) % V, b, V)  # the images i in [a, b) with i % V == v
        sub = low[rows]
        if sub.shape[0]:
            mask[rows] = sub.gather(1, maps[(v + shift) % V].expand(sub.shape[0], -1))
    m = mask[a:b]
    n, HW = m.shape
    # ignored pixels are painted over below: any class index will do for them
    lab = m.masked_fill(m == ignore_index, 0) if ignore_region else m
    separate = noise_level > 0  # the noise in img[a:b] is added last, so paint elsewhere first
    out = torch.empty(n, 3, HW, dtype=img.dtype) if separate else img[a:b]
    torch.gather(table[a:b], 2, lab[:, None, :].expand(n, 3, HW), out=out)
    out += torch.gather(tex_table[None].expand(n, HW, tex_table.shape[1]), 2, lab[:, :, None]).view(n, 1, HW)
    if separate:
        out.add_(img[a:b], alpha=noise_level)
    if ignore_region:
        out.masked_fill_((m == ignore_index)[:, None, :].expand(-1, 3, -1), 0.08)  # a dark hood
    out.clamp_(0.0, 1.0)
    if separate:
        img[a:b] = out


class SyntheticSegmentation(Dataset):
    """Map-style torch Dataset around :func:`make_synthetic_segmentation`.

    Images are generated in deterministic blocks of ``block_size`` (block ``b`` uses
    seed ``(seed, b)``), so any index can be read in any order and gives the same pair
    every time; the pixel profile is exact per block (rare-class presence is stratified
    inside each block). Only the most recently used block is kept in memory.

    Parameters
    ----------
    num_images, num_classes, size, imbalance_factor, seed
        As in :func:`make_synthetic_segmentation`.
    transform : callable, optional
        ``transform(image, mask) -> (image, mask)`` applied to each item.
    block_size : int, default 256
    ignore_index : int or None, default 255
        Label of ignored pixels (``ignore_region``), outside ``[0, num_classes)``;
        see :func:`make_synthetic_segmentation`.
    **options
        Passed to :func:`make_synthetic_segmentation` (``context_strength``,
        ``appearance_overlap``, ``noise_level``, ``ignore_region``, ...).

    Items are ``(image (3, H, W) float32, mask (H, W) int64)``; ignored pixels are
    labelled :attr:`ignore_index`.
    """

    def __init__(
        self,
        num_images: int,
        num_classes: int,
        size=64,
        imbalance_factor: float = 100.0,
        *,
        seed: int = 0,
        transform: Optional[Callable] = None,
        block_size: int = 256,
        ignore_index: int | None = IGNORE_INDEX,
        **options,
    ) -> None:
        self.block_size = check_int(block_size, "block_size", minimum=1)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        # validate everything once, cheaply
        make_synthetic_segmentation(1, num_classes, 1, imbalance_factor, seed=seed, ignore_index=ignore_index,
                                    **options)
        self.ignore_index = ignore_index
        self.num_images = check_int(num_images, "num_images", minimum=1)
        self.num_classes = check_num_classes(num_classes)
        self.size = check_size(size)
        self.imbalance_factor = check_imbalance_factor(imbalance_factor)
        self.seed = check_seed(seed)
        self.transform = transform
        self.options = dict(options)
        self.classes = [f"class {k}" for k in range(self.num_classes)]
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.num_images

    def _block(self, b: int):
        if self._cache is not None and self._cache[0] == b:
            return self._cache[1], self._cache[2]
        n = min(self.block_size, self.num_images - b * self.block_size)
        state = np.random.SeedSequence([self.seed, b]).generate_state(2, dtype=np.uint32)
        gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        images, masks = make_synthetic_segmentation(
            n, self.num_classes, self.size, self.imbalance_factor, generator=gen, ignore_index=self.ignore_index,
            **self.options
        )
        self._cache = (b, images, masks)
        return images, masks

    def __getitem__(self, index: int):
        index = check_int(index, "index")
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        images, masks = self._block(index // self.block_size)
        image, mask = images[index % self.block_size].clone(), masks[index % self.block_size].clone()
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images and masks, ``(N, 3, H, W)`` float32 and ``(N, H, W)`` int64 (no transform)."""
        blocks = [self._block(b) for b in range(-(-self.num_images // self.block_size))]
        return torch.cat([b[0] for b in blocks]), torch.cat([b[1] for b in blocks])

    def palette(self) -> np.ndarray:
        """Display colours ``(K, 3)`` uint8, see :func:`palette`."""
        return palette(self.num_classes)


def class_names(num_classes: int) -> list[str]:
    """Display names ``"k (head|common|tail)"`` of the generator's classes
    (groups of :func:`synthetic_class_structure`)."""
    s = synthetic_class_structure(num_classes)
    group = {int(k): g for g in ("head", "common", "tail") for k in s[g]}
    return [f"{k} ({group[k]})" for k in range(num_classes)]


def load_split(root, request) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of generated data for the engine (:class:`data_utils.registry.LoadRequest`).

    ``request.options`` are keyword arguments of :func:`make_synthetic_segmentation`;
    its ``seed`` (default 0) seeds the training split and ``val_seed`` (default
    ``seed + 10000``) the evaluation split, so the two never share images. Ignored
    pixels are labelled ``request.ignore_index`` (which must lie outside
    ``[0, request.num_classes)``).

    Returns
    -------
    (Tensor, Tensor)
        ``(N, 3, H, W)`` float32 images in [0, 1] and ``(N, H, W)`` int64 masks.
    """
    opts = dict(request.options)
    data_seed = check_seed(opts.pop("seed", 0))
    val_seed = check_seed(opts.pop("val_seed", data_seed + 10_000), "val_seed")
    if opts.get("ignore_index", request.ignore_index) != request.ignore_index:
        raise ValueError(
            f"options ignore_index={opts['ignore_index']!r} disagrees with the request's "
            f"ignore_index={request.ignore_index!r}; set it once"
        )
    opts.pop("ignore_index", None)
    seed = data_seed if request.split == "train" else val_seed
    x, y = make_synthetic_segmentation(request.num_images, request.num_classes, request.size or (32, 32),
                                       request.imbalance_factor, seed=seed, ignore_index=request.ignore_index,
                                       **opts)
    return x.float(), y.long()
