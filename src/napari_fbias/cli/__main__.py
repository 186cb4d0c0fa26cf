"""``python -m napari_fbias.cli``: the ``fbias`` command line."""

import sys

from napari_fbias.cli.app import main

sys.exit(main())
