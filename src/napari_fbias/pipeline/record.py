"""The run record (``run.json``) and its input records: built in one place.

The pipeline runner (``fbias run``, ``Pipeline.run``) and the step-by-step
runner of exported scripts (:class:`~napari_fbias.session.export.runtime.StepRunner`)
both describe a run with a :class:`RunRecorder`, so that their records have
the same layout and ``fbias run`` recognises a script's results as its own.

A record holds the pipeline's name and sha256, each input (its source
without credentials, axes, shape, dtype, selection and the SHA-256 of its
full-resolution pixels), each step (settings with the defaults filled in,
seconds, in memory or chunk-wise), the outputs, package versions and times.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from napari_fbias.pipeline.parts import InputDecl, Step, thaw
from napari_fbias.pipeline.values import Value, select, to_value

__all__ = ["RUN_RECORD_VERSION", "RunRecorder"]

#: Version of the run record layout (``run.json``).
RUN_RECORD_VERSION = 1


class RunRecorder:
    """Collect what a run did, then :meth:`finish` its record.

    Parameters
    ----------
    checksum : bool
        Record the SHA-256 of each input's full-resolution pixels.
    memory_limit : int, optional
        Memory budget of the run: the pixels are hashed in slabs that fit it.
    """

    def __init__(self, *, checksum: bool = True, memory_limit: int | None = None) -> None:
        from napari_fbias.pipeline.provenance import utc_now_iso

        self.checksum = checksum
        self.memory_limit = memory_limit
        self.started = utc_now_iso()
        self._t0 = time.perf_counter()
        self.inputs: dict[str, dict[str, Any]] = {}
        self.steps: list[dict[str, Any]] = []

    def take_input(self, obj: Any, decl: InputDecl, name: str) -> Value:
        """Turn the data given for input ``name`` into its value, selection applied; record it.

        Parameters
        ----------
        obj : MultiscaleImage, Value, (array, axes), array, str or Path
            The data (a path or URL is opened lazily).
        decl : InputDecl
            The pipeline's declaration of the input.
        name : str
            The input's name.

        Raises
        ------
        InputError
            When the data do not fit the declaration.
        """
        from napari_fbias.pipeline.provenance import array_sha256, hash_block_bytes

        raw, source = to_value(obj, decl, name)
        entry: dict[str, Any] = {**source, "axes": raw.axes}
        entry["shape"] = [int(n) for n in raw.data.shape]
        entry["dtype"] = str(raw.data.dtype)
        if decl.selection():
            entry["selection"] = decl.selection()
        if self.checksum:  # read in slabs that fit the memory budget
            block = hash_block_bytes(self.memory_limit)
            entry["sha256"] = array_sha256(raw.data, block_bytes=block)
        value = select(raw, decl, name)
        self.inputs[name] = entry
        return value

    def add_step(
        self,
        spec: Any,
        step: Step,
        seconds: float,
        *,
        chunked: bool = False,
        chosen: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one step that ran: its settings (defaults filled in) and how long it took.

        ``chosen``: what the operation chose for its automatic settings
        (:mod:`napari_fbias.ops.chosen`), recorded as the step's ``chosen``.
        """
        entry: dict[str, Any] = {
            "id": step.id,
            "op": step.op,
            "params": thaw({**spec.defaults(), **step.params}),
            "seconds": round(seconds, 6),
            "mode": "chunked" if chunked else "in-memory",
        }
        if chosen:
            entry["chosen"] = thaw(dict(chosen))
        self.steps.append(entry)

    def finish(
        self,
        name: str,
        sha256: str,
        outputs: Mapping[str, Value],
        *,
        chunked: bool = False,
        made_with: str | None = None,
    ) -> dict[str, Any]:
        """Return the run record (JSON-safe).

        Parameters
        ----------
        name, sha256 : str
            The pipeline's name and :meth:`~napari_fbias.pipeline.model.Pipeline.sha256`.
        outputs : mapping of str to Value
            The results, by output name (described, never copied).
        chunked : bool
            The inputs were read chunk-wise (a step that ran chunk-wise counts too).
        made_with : str, optional
            How the run was made, when not by the pipeline runner.
        """
        from napari_fbias.pipeline.provenance import package_versions, utc_now_iso

        chunked = chunked or any(s["mode"] == "chunked" for s in self.steps)
        record: dict[str, Any] = {
            "fbias_run": RUN_RECORD_VERSION,
            "pipeline": {"name": name, "sha256": sha256},
            "inputs": dict(self.inputs),
            "mode": "chunked" if chunked else "in-memory",
            "versions": package_versions(),
            "started": self.started,
            "finished": utc_now_iso(),
            "seconds": round(time.perf_counter() - self._t0, 6),
            "steps": list(self.steps),
            "outputs": {k: v.describe() for k, v in outputs.items()},
        }
        if made_with is not None:
            record["made_with"] = made_with
        return record
