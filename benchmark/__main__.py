"""``python -m benchmark``: see :mod:`benchmark.cli`."""

import os
import sys

# OpenMP threads that spin while waiting collapse torch's speed when another process is busy
# (training fell from 84 to 14 images/s); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
