"""``python -m ceco_lite ...`` runs the command line (:mod:`ceco_lite.cli`)."""
import sys

from ceco_lite.cli import main

if __name__ == "__main__":
    sys.exit(main())
