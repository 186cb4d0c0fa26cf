"""napari-fbias: open-desk bioimage analysis in napari.

Importing this package is light: it never imports Qt or napari. The napari
contributions live in the manifest (``napari.yaml``); the core is in
:mod:`napari_fbias.io`, :mod:`napari_fbias.ops`, :mod:`napari_fbias.pipeline`
and :mod:`napari_fbias.session`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
