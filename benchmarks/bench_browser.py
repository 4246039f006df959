"""The lessons in a real browser: how long a student waits (JupyterLab in headless Chromium, Playwright).

For every lesson, on a fresh working copy (made by the lessons command's own
``sync_lessons``) with a fresh kernel, in JupyterLab started as
``python3 scripts/quickstart.py lessons`` starts it:

1. **Run All**: Run > Run All Cells, timed in the page from the command to the reply
   of the last cell -- what a student waits for before the lesson is usable.
2. **Controls**: every control found in the DOM (sliders, toggle buttons, dropdowns,
   checkboxes, radio buttons, buttons, Play widgets) is moved ``--moves`` times
   (sliders sweep by keyboard, the others are clicked or stepped through their
   options). Each move is timed in the page with ``performance.now()``, from its
   input event (key press, click or selection, caught by a listener on the control)
   to the plot of its widget changing in the DOM (a MutationObserver on the widget's
   output area, plus plotly's redraw events for WebGL scenes; both installed before
   the input event): ``first`` = the first change, ``done`` = the last change before
   kernel and widget were quiet for ``--quiet-ms``. ``kernel`` = input to the kernel
   going idle again (the Python side, round trip included).

Goals: median ``done`` <= 150 ms for every control that does not retrain, <= 500 ms for
the controls that retrain a model live (lesson 2's layer-peeled model:
:data:`RETRAINING`); for a Play widget ``first`` counts (``done`` is the end of the
animation). A control that ever takes longer than 300 ms must show a **busy sign**
inside its widget during those moves.

Busy sign convention: while a widget recomputes, an element inside its output area
carries the CSS class ``ceco-busy`` (e.g. the widget's outer box,
``box.add_class("ceco-busy")`` before the work and ``box.remove_class("ceco-busy")``
after it, in a ``finally``); give the class a visible style (e.g. reduced opacity and
a progress cursor). The benchmark records when the class appears and disappears.

Run from the repository root (the machine should be otherwise idle: every figure is a
wall time, and the load average at start and end is printed)::

    python benchmarks/bench_browser.py [--lessons 01 04] [--moves 10] [--one-folder] [--json out.json]

``--moves 0`` measures only the Run All times.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the harness shared with tests/test_browser.py

import browser_harness as bh

#: lessons whose controls retrain a model on every move (goal 500 ms instead of 150 ms)
RETRAINING = {"02"}
GOAL_MS = 150.0
GOAL_RETRAIN_MS = 500.0
BUSY_AFTER_MS = 300.0


def fmt(value, digits=0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summarize(lesson: str, stats: bh.ControlStats) -> dict:
    """One control's figures, goal and verdicts (all times in ms)."""
    control = stats.control
    retrains = lesson[:2] in RETRAINING
    goal = GOAL_RETRAIN_MS if retrains else GOAL_MS
    judged = "first" if control.kind == "play" else "done"
    first, done = stats.latencies("first"), stats.latencies("done")
    kernel = [m.kernel_ms for m in stats.moves if m.kernel_ms is not None]
    med, p90 = bh.median_p90(done if judged == "done" else first)
    slow = [m for m in stats.moves if (m.first_ms if judged == "first" else m.done_ms) is not None
            and (m.first_ms if judged == "first" else m.done_ms) > BUSY_AFTER_MS]
    busy_shown = [m for m in slow if m.busy_ms is not None]
    return {
        "control": control.name, "kind": control.kind, "retrains": retrains, "goal_ms": goal, "judged_on": judged,
        "moves": len(stats.moves), "moved": sum(m.changed for m in stats.moves),
        "no_plot_change": sum(m.first_ms is None for m in stats.moves),
        "first_median_ms": bh.median_p90(first)[0], "first_p90_ms": bh.median_p90(first)[1],
        "done_median_ms": bh.median_p90(done)[0], "done_p90_ms": bh.median_p90(done)[1],
        "kernel_median_ms": bh.median_p90(kernel)[0],
        "meets_goal": med is not None and med <= goal,
        "slow_moves": len(slow), "slow_moves_with_busy_sign": len(busy_shown),
        "busy_sign_ok": len(busy_shown) == len(slow),
        "median_ms": med, "p90_ms": p90, "track_px": control.track_px,
    }


def bench_lesson(context, lab, lesson: Path, path: str, moves: int, quiet_ms: int) -> dict:
    page = bh.LessonPage(context, lab, path)
    try:
        kernel_s = page.open()
        run = page.run_all()
        print(f"\n{lesson.name}: kernel ready after {kernel_s:.1f} s; Run All {run.seconds:.1f} s "
              f"({run.executed}/{run.code_cells} code cells{'' if run.complete else ', stopped: ' + str(run.failed)})",
              flush=True)
        rows = []
        if moves:
            print(HEADER)
        for control in page.controls() if moves else []:
            stats = bh.ControlStats(control)
            for _ in range(moves):
                stats.moves.append(page.move(control, quiet_ms=quiet_ms))
            rows.append(summarize(lesson.stem, stats))
            print_row(rows[-1])
        problems = page.problems()
        if problems:
            print(f"  ({len(problems)} error(s) logged meanwhile; tests/test_browser.py lists them)")
        return {"lesson": lesson.name, "kernel_ready_s": kernel_s, "run_all_s": run.seconds,
                "run_all_complete": run.complete, "controls": rows, "errors": len(problems)}
    finally:
        page.close()


HEADER = (f"  {'control':46s} {'moves':>5s} {'first med/p90':>14s} {'done med/p90':>14s} {'kernel':>7s} "
          f"{'goal':>5s} {'ok':>4s}  busy sign (moves > 300 ms)")


def print_row(row: dict) -> None:
    busy = ("n/a" if not row["slow_moves"] else
            f"{row['slow_moves_with_busy_sign']}/{row['slow_moves']} shown" + ("" if row["busy_sign_ok"] else " MISSING"))
    moved = "" if row["moved"] == row["moves"] else f" (moved {row['moved']})"
    nochange = f", no plot change {row['no_plot_change']}" if row["no_plot_change"] else ""
    label = row["control"] + (" [retrains]" if row["retrains"] else "")
    print(f"  {label[:46]:46s} {row['moves']:5d} "
          f"{fmt(row['first_median_ms']):>6s}/{fmt(row['first_p90_ms']):<7s} "
          f"{fmt(row['done_median_ms']):>6s}/{fmt(row['done_p90_ms']):<7s} {fmt(row['kernel_median_ms']):>7s} "
          f"{row['goal_ms']:5.0f} {'yes' if row['meets_goal'] else 'NO':>4s}  {busy}{moved}{nochange}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="*", default=None, help="lesson number prefixes (default: all)")
    parser.add_argument("--moves", type=int, default=10,
                        help="moves per control (default 10; 0: only the Run All times)")
    parser.add_argument("--quiet-ms", type=int, default=bh.QUIET_MS, help="quiet time that ends a move")
    parser.add_argument("--one-folder", action="store_true",
                        help="all lessons in one working copy (runs cached by one lesson serve the next)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    lessons = sorted(bh.LESSONS_DIR.glob("*.ipynb"))
    if args.lessons:
        lessons = [p for p in lessons if any(p.name.startswith(x) for x in args.lessons)]
    chromium = bh.find_chromium()
    if chromium is None:
        print("no Chromium found: install it (apt-get install chromium) or set CECO_CHROMIUM", file=sys.stderr)
        return 2
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"{args.moves} moves per control; goals: median done <= {GOAL_MS:.0f} ms, "
          f"<= {GOAL_RETRAIN_MS:.0f} ms when retraining; busy sign (class {bh.BUSY_CLASS!r}) beyond "
          f"{BUSY_AFTER_MS:.0f} ms")
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ceco-bench-browser-") as tmp:
        root = Path(tmp) / "root"
        paths = bh.prepare_lessons(root, lessons, one_folder=args.one_folder)
        with bh.JupyterLab(root, Path(tmp) / "jupyter") as lab, bh.chromium_context(chromium) as context:
            for lesson in lessons:
                results.append(bench_lesson(context, lab, lesson, paths[lesson.name], args.moves, args.quiet_ms))
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"benchmark wall time {time.perf_counter() - start:.0f} s")
    print("\nRun All wall time in the browser (fresh kernel" + (", one shared folder" if args.one_folder else "")
          + "):")
    for r in results:
        print(f"  {r['lesson']:45s} {r['run_all_s']:7.1f} s" + ("" if r["run_all_complete"] else "  (stopped early)"))
    misses = [(r["lesson"], c) for r in results for c in r["controls"] if not c["meets_goal"] or not c["busy_sign_ok"]]
    print(f"\n{len(misses)} of {sum(len(r['controls']) for r in results)} controls miss a goal:")
    for name, c in misses:
        why = []
        if c["median_ms"] is None:
            why.append(f"its widget's plot never changed in {c['moves']} moves")
        elif not c["meets_goal"]:
            why.append(f"median {c['judged_on']} {fmt(c['median_ms'])} ms > {c['goal_ms']:.0f} ms")
        if not c["busy_sign_ok"]:
            why.append(f"no busy sign in {c['slow_moves'] - c['slow_moves_with_busy_sign']} of "
                       f"{c['slow_moves']} moves over {BUSY_AFTER_MS:.0f} ms")
        print(f"  {name[:2]} {c['control']}: " + "; ".join(why))
    if args.json:
        args.json.write_text(json.dumps({"loadavg_end": os.getloadavg(), "lessons": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
