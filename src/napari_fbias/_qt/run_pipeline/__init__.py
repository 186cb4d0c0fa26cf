"""The "Run pipeline" panel, in small parts (:class:`.panel.RunPipelineWidget` puts them together).

Qt-free models (no qtpy, napari or magicgui import):

* :mod:`.edit_model`: the loaded pipeline file, its problems and the edits
  made here (:class:`~.edit_model.PipelineDocument`), saved as a new file;
* :mod:`.inputs_model`: what a pipeline input receives for a layer;
* :mod:`.run_model`: the work done in the worker thread, a run in flight
  (:class:`~.run_model.Job`), the batch plan, result names and messages.

Widgets (each receives what it shows; none holds pipeline state):

* :mod:`.pipeline_box`: file chooser, name, problems, steps and Save as;
* :mod:`.steps_view`: the steps and the selected step's settings;
* :mod:`.layer_tab`: the layers chosen for the inputs, and Run;
* :mod:`.batch_tab`: the images, output folder and cluster of a batch;
* :mod:`.run_status`: progress, Cancel, status line and summary of a run;
* :mod:`.results_view`: the results shown as layers, the tables.

This package imports nothing itself, so that its models load without Qt.
"""
