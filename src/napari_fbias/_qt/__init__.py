"""napari widgets of napari-fbias (the only part of the package that imports Qt)."""
