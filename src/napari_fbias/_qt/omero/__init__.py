"""The OMERO browser, in small parts (:class:`.browser.OmeroWidget` puts them together).

Qt-free models (no qtpy, napari or magicgui import): :mod:`.login_model`
(the login request and the connection work), :mod:`.browse_model` (children,
thumbnails, opening images), :mod:`.sendback_model` (what goes back to which
image, and sending it). Widgets: :mod:`.login` (server, credentials, group,
state), :mod:`.tree` (the lazy tree), :mod:`.browse_box` (tree, Open, link),
:mod:`.send_box` (labels, table, files, Send); :mod:`.jobs` starts their
workers. ``napari_fbias._qt.omero_widget`` names the browser for the
manifest and the Open widget.

This package imports nothing itself, so that its models load without Qt.
"""
