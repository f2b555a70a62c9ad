"""``python -m benchmark``: see :mod:`benchmark.cli`."""

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
