"""Command line: ``python -m ceco_lite`` / ``ceco-lite``.

Sub-commands::

    ceco-lite train   --preset NAME [--ceco-lambda L] [--epochs E] [--seed S] [--out DIR] [--resume | --overwrite]
    ceco-lite compare --preset NAME --seeds 0 1 2 [--ceco-lambda L] [--out ROOT] ...
    ceco-lite presets

``train`` prints a results table (mIoU or top-1, head / common / tail and the
centres' neural-collapse statistics) and writes ``DIR/metrics.json``; without
``--out`` the run folder is ``runs/<preset>/lam<λ>-seed<S>-<tag>``, unique per
configuration. An existing run is never replaced: ``--resume`` continues it,
``--overwrite`` starts it again. ``compare`` trains λ = 0 and CeCo for every seed
and prints both side by side with the paired difference and its spread.
Multi-GPU: ``torchrun --nproc_per_node=N -m ceco_lite train ...``. Errors are printed
in one line (exit status 2; 3 when training diverged; 1 for an internal error), warnings too; set
``CECO_LITE_TRACEBACK=1`` for the full traceback. Ctrl-C (SIGINT, exit status 130) or
SIGTERM (143) stops a run: the message says which epoch ``checkpoint.pt`` holds and
how to continue.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import threading
import warnings
from pathlib import Path

from .engine import (PRESET_DESCRIPTIONS, PRESETS, RunResult, TrainConfig, TrainingDiverged, compare, get_preset,
                     run_dir, train)
from .engine.checkpoint import load_checkpoint

__all__ = ["main", "build_parser", "config_from_args", "format_results"]

#: argparse destination -> TrainConfig field, for the named options
_FIELDS = ("ceco_lambda", "epochs", "batch_size", "lr", "device", "max_steps", "image_size", "num_images",
           "imbalance_factor", "data_root", "model", "ceco_variant", "fixed_pixel_classifier", "ceco_sync",
           "in2nect_weight", "save_features", "num_threads", "amp", "compile", "compile_loss", "progress", "seed",
           "ignore_index", "verify_checksums", "limit_images")


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, help="preset name (see `ceco-lite presets`)")
    p.add_argument("--ceco-lambda", "--lambda", dest="ceco_lambda", type=float,
                   help="CeCo weight λ of L = CE + λ L_CR (0 = cross-entropy baseline)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="initial learning rate")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:<index> | mps")
    p.add_argument("--max-steps", dest="max_steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--image-size", dest="image_size", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument("--num-images", dest="num_images", type=int, help="synthetic training images")
    p.add_argument("--limit-images", dest="limit_images", type=int, help="real data: keep the first N images")
    p.add_argument("--imbalance-factor", dest="imbalance_factor", type=float)
    p.add_argument("--ignore-index", dest="ignore_index", type=int, help="label of ignored pixels (default 255)")
    p.add_argument("--data-root", dest="data_root", help="real data folder (default: $CECO_DATA_DIR)")
    p.add_argument("--no-verify-checksums", dest="verify_checksums", action="store_false", default=None,
                   help="CIFAR: accept files whose md5 differs from the official ones")
    p.add_argument("--model", help="model name for ceco_lite.models.build_model")
    p.add_argument("--variant", dest="ceco_variant", choices=("paper", "released"), help="CeCo variant")
    p.add_argument("--fixed-pc", dest="fixed_pixel_classifier", action="store_true", default=None,
                   help="fixed simplex-ETF pixel classifier (Table 1)")
    p.add_argument("--learned-cc", dest="learned_cc", action="store_true", default=None,
                   help="learned centre classifier instead of the fixed ETF (Table 1)")
    p.add_argument("--ceco-sync", dest="ceco_sync", choices=("global", "local"),
                   help="DDP: centres over the global batch or per process (released code)")
    p.add_argument("--in2nect", dest="in2nect_weight", type=float, help="In2NeCT weight w (Eq. 7)")
    p.add_argument("--save-features", dest="save_features", type=int, help="final features kept per class")
    p.add_argument("--num-threads", dest="num_threads", type=int)
    p.add_argument("--amp", choices=("auto", "bf16", "off"))
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--compile-loss", dest="compile_loss", action="store_true", default=None,
                   help="torch.compile the CeCo loss (CUDA graphs on CUDA)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig field (VALUE parsed as JSON when possible); repeatable")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ceco-lite``."""
    parser = argparse.ArgumentParser(prog="ceco-lite", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one configuration")
    _add_overrides(t)
    t.add_argument("--seed", type=int)
    t.add_argument("--out", help="run folder (default runs/<preset>/lam<λ>-seed<S>-<tag>)")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in the folder from its checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="replace the run in the folder")
    c = sub.add_parser("compare", help="λ = 0 versus CeCo over several seeds")
    _add_overrides(c)
    c.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    c.add_argument("--out", default="runs", help="root of the run folders and of the comparison's JSON (default runs)")
    sub.add_parser("presets", help="list the presets")
    return parser


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from_args(args: argparse.Namespace):
    """A validated :class:`~ceco_lite.engine.TrainConfig` from parsed arguments."""
    overrides = {n: getattr(args, n) for n in _FIELDS if getattr(args, n, None) is not None}
    if getattr(args, "learned_cc", None):
        overrides["fixed_center_classifier"] = False
    for item in args.sets:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = _parse_value(value)
    for flag in ("resume", "overwrite"):
        if getattr(args, flag, False):
            overrides[flag] = True
    return get_preset(args.preset, **overrides)


def _f(x, width=8) -> str:
    return f"{x:{width}.2f}" if isinstance(x, (int, float)) and not math.isnan(x) else f"{'n/a':>{width}}"


def format_results(metrics: dict, title: str = "") -> str:
    """Text table of a run's final metrics (score, head / common / tail, NC statistics, per class)."""
    key = "miou" if "miou" in metrics else "top1"
    name = "mIoU" if key == "miou" else "top-1"
    lines = [title] if title else []
    lines.append(f"{name:>8} {'head':>8} {'common':>8} {'tail':>8}")
    lines.append(" ".join(_f(metrics.get(k)) for k in (key, "head", "common", "tail")))
    nc = metrics.get("nc") or {}
    if nc:
        lines.append("NC (training features): " + ", ".join(
            f"{k}={nc[k]:.4f}" for k in ("equiangularity_centers", "max_angle_centers",
                                         "equiangularity_classifiers", "max_angle_classifiers", "nc1")
            if isinstance(nc.get(k), (int, float))))
    per = metrics.get("per_class") or []
    if per:
        label = "IoU" if key == "miou" else "acc"
        lines.append(f"per-class {label}: " + " ".join(f"{i}:{_f(v, 0).strip()}" for i, v in enumerate(per)))
    if metrics.get("time_per_step") is not None:
        lines.append(f"time per step: {1000 * metrics['time_per_step']:.1f} ms ({metrics.get('device')})")
    return "\n".join(lines)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class Terminated(KeyboardInterrupt):
    """SIGTERM received: stop like Ctrl-C (exit status 143)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _is_out_option(word: str) -> bool:
    name = word.split("=", 1)[0]
    return len(name) >= 4 and "--out".startswith(name)


def _resume_hint(argv: list[str], out: str) -> str:
    """The command that continues the interrupted run: ``argv`` as given (every option kept),
    without --resume / --overwrite, with ``--out`` naming the run folder, plus ``--resume``."""
    words, skip = [], False
    for w in argv:
        if skip:
            skip = False
        elif w in ("--resume", "--overwrite"):
            continue
        elif _is_out_option(w):
            skip = "=" not in w
        else:
            words.append(w)
    return "python -m ceco_lite " + shlex.join([*words, "--out", out, "--resume"])


def _interrupted(config: TrainConfig, out: str, argv: list[str]) -> str:
    """What an interrupted ``train`` leaves: the epoch its checkpoint holds and how to continue."""
    ckpt = Path(out) / "checkpoint.pt"
    try:
        ck = load_checkpoint(ckpt) if ckpt.is_file() else None
        ours = ck is not None and TrainConfig.from_dict(ck["config"]).result_dict() == config.result_dict()
    except (OSError, ValueError, TypeError):
        ours = False
    if not ours:
        return "interrupted before the first epoch finished: nothing to resume"
    return (f"interrupted: {ckpt} holds epoch {ck['epoch']} of {config.epochs} (step {ck['step']}); "
            f"continue with\n  {_resume_hint(argv, out)}")


def _cmd_train(args, argv: list[str]) -> int:
    config = config_from_args(args)
    if args.out is not None and not args.out.strip():
        raise ValueError(f"--out must name a folder, got {args.out!r}")
    out = args.out if args.out is not None else str(run_dir(config))
    config = config.replace(out_dir=out)
    try:
        result: RunResult = train(config)
    except KeyboardInterrupt as exc:
        if _is_main():
            print("\n" + _interrupted(config, out, argv), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    if _is_main():
        print(format_results(result.metrics, title=f"{config.preset}  λ={config.ceco_lambda:g}  seed={config.seed}"))
        print(f"run folder: {out} (metrics.json, history.json, config.json, checkpoint.pt)")
    return 0


def _cmd_compare(args) -> int:
    config = config_from_args(args)
    result = compare(config, args.seeds, ceco_lambda=args.ceco_lambda, out_dir=args.out, progress=config.progress)
    print(result["table"])
    print(f"runs under {args.out}; comparison in {result['path']}")
    return 0


def _cmd_presets() -> int:
    for name, cfg in sorted(PRESETS.items()):
        print(f"{name:<24} {PRESET_DESCRIPTIONS[name]}\n{'':<24} dataset={cfg.dataset} model={cfg.model} "
              f"λ={cfg.ceco_lambda:g} epochs={cfg.epochs} batch={cfg.batch_size} lr={cfg.lr:g} device={cfg.device}")
    return 0


#: Python spellings in library messages -> the command line's.
_CLI_SPELLINGS = (
    ("verify_checksums=False", "--no-verify-checksums"),
    ("resume=True (--resume)", "--resume"),
    ("overwrite=True (--overwrite)", "--overwrite"),
    ("overwrite=True", "--overwrite"),
    ("a lower learning rate, e.g. lr=", "a lower learning rate, e.g. --lr "),
    ("(e.g. feature_dim=", "(e.g. --set feature_dim="),
    ("data_root is given but", "--data-root is given but"),
)


def _cli_spelling(message: str) -> str:
    """Python argument names in library messages, as the command line spells them."""
    for python, cli in _CLI_SPELLINGS:
        message = message.replace(python, cli)
    return message


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"ceco-lite: warning: {_cli_spelling(str(message))}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ceco-lite`` / ``python -m ceco_lite``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if on_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if args.command == "presets":
                return _cmd_presets()
            if args.command == "train":
                return _cmd_train(args, argv)
            return _cmd_compare(args)
    except TrainingDiverged as exc:
        print(f"ceco-lite: error: {_cli_spelling(str(exc))}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        # OSError: missing data (FileNotFoundError), an occupied run folder (FileExistsError), a damaged file
        # (CorruptFileError), permissions; RuntimeError: a locked run folder (FolderLockedError), torch
        if os.environ.get("CECO_LITE_TRACEBACK"):
            raise
        print(f"ceco-lite: error: {_cli_spelling(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("\ninterrupted", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # noqa: BLE001 - an error of a kind ceco-lite does not raise: a defect
        if os.environ.get("CECO_LITE_TRACEBACK"):
            raise
        print(f"ceco-lite: internal error: {type(exc).__name__}: {exc} (CECO_LITE_TRACEBACK=1 shows where)",
              file=sys.stderr)
        return 1
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
