"""``python -m phenomix ...``: the ``phenomix`` command without its console script."""

import sys

from phenomix.cli import main

sys.exit(main())
