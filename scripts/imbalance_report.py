"""Print pixel vs centre imbalance factors of the real Cityscapes sample and of the
synthetic generator, next to the CeCo supplement's Cityscapes figures (373 vs 20).

    python scripts/imbalance_report.py [--size 0 0] [--verbose]

Same as ``python -m data_utils.stats``; see ``--help``.
"""
from data_utils.stats import main

if __name__ == "__main__":
    raise SystemExit(main())
