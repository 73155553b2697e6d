"""``python -m fastbp``: the same command line as ``fastbp`` (fastbp.cli)."""
import sys

from fastbp.cli import main

sys.exit(main())
