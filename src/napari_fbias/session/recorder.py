"""The live session recorder that the napari widgets call.

:class:`SessionRecorder` turns each thing an analyst does into an event,
writes it to the journal (durably) and only then updates its
:class:`~napari_fbias.session.model.Session` and emits :attr:`changed`. It
knows nothing of Qt or napari: widgets call it with layer *names* and listen
to :attr:`SessionRecorder.changed`; the recorder never holds a widget.

Rules the recorder applies (and documents in ``docs/session.md``):

* a step is checked against the operation registry before anything is
  written (unknown op, bad settings or inputs: :class:`InvalidStepError`);
* re-running an op onto the layer it produced before (same op, same output
  layer, not reading itself), or ``replaces=step_id``, *replaces* that step:
  same id, the old version kept in the timeline as ``tried``, the steps
  reading it marked ``stale``;
* :meth:`SessionRecorder.layer_removed` (a layer was deleted): the step that
  made it is removed, unless later steps read it; then it stays, without a
  layer, until they go. :meth:`SessionRecorder.remove_step` removes a step
  and every step reading it.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from psygnal import Signal

from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.text_limits import MAX_NAME, MAX_TEXT, MAX_URI, bound_text
from napari_fbias.ops.registry import get_op
from napari_fbias.session import graph
from napari_fbias.session.checks import check_inputs, check_params, find_op
from napari_fbias.session.errors import InvalidStepError, SessionError
from napari_fbias.session.events import APPROACH_FIELDS, SESSION_FIELDS
from napari_fbias.session.journal import encode_event, make_event
from napari_fbias.session.merge import outgoing
from napari_fbias.session.model import (
    Approach,
    ImageRef,
    RecordedStep,
    Session,
    StepInput,
    check_select,
    chosen_numbers,
    evolve,
    utc_now,
)
from napari_fbias.session.names import next_approach_key
from napari_fbias.session.shared import SessionJournals
from napari_fbias.session.space import SNAPSHOT_NAME, Space, split_link
from napari_fbias.session.store import load_snapshot, save_snapshot, slugify, snapshot_text

InputRef = str | StepInput


class SessionRecorder:
    """Record a session as it happens; create with :meth:`start` or :func:`open_session`.

    Attributes
    ----------
    changed : psygnal.Signal
        Emitted with the event (a dict, as written to the journal) after
        every change, once the change is on disk.
    """

    changed = Signal(object)

    def __init__(self, journals: SessionJournals) -> None:
        self._journals = journals
        self._session: Session | None = None
        self._view: Session | None = None
        self._lock = threading.RLock()
        self._layers: dict[str, tuple[str | None, str | None, Mapping[str, int]]] | None = None
        self._used_ids: set[str] = set()
        self._id_counts: dict[str, int] = {}
        self._live: threading.Event | None = None

    # --- creating / opening ------------------------------------------------------
    @classmethod
    def start(
        cls,
        title: str = "",
        *,
        user_name: str = "",
        user_lab: str = "",
        question: str = "",
        analysts: tuple[str, ...] | list[str] = (),
        root: str | os.PathLike[str] | None = None,
        folder: str | os.PathLike[str] | None = None,
        space: str | os.PathLike[str] | Space | None = None,
        fsync: bool = True,
    ) -> SessionRecorder:
        """Start a new session in a new folder and write its first journal line.

        Parameters
        ----------
        title, user_name, user_lab, question : str
            Who came, with what (free text; URLs in it lose their credentials).
        analysts : sequence of str
            Names of the analysts present.
        root : str or Path, optional
            Folder of session folders (default: ``$FBIAS_SESSION_DIR`` or
            ``~/.napari-fbias/sessions``).
        folder : str or Path, optional
            Exact local folder for this session (must not hold a session yet).
        space : str, Path or Space, optional
            The session space (a shared folder or an fsspec URL such as
            ``s3://bucket/prefix``) where other analysts can join it; default
            ``$FBIAS_SPACE``, else the local sessions folder.
        fsync : bool
            fsync every journal line (default True).
        """
        sid = str(uuid.uuid4())
        now = utc_now()
        if folder is not None:
            here = Path(folder).expanduser().absolute()
            where, name = Space(str(here.parent), direct=True), here.name
        else:
            where = Space(str(Path(root).expanduser()), direct=True) if root is not None else None
            where = Space.resolve(space) if space is not None else where or Space.resolve(None)
            name = f"{now[:10]}-{slugify(title)}-{sid[:8]}"
        if where.is_local:
            Path(where.location).mkdir(parents=True, exist_ok=True)
        if where.journals(name):
            raise SessionError(
                f"{where.url(name)} already holds a session; open it with open_session()"
            )
        rec = cls(SessionJournals(where, name, fsync=fsync))
        header = {
            "id": sid,
            "title": _name(title),
            "user": {"name": _name(user_name), "lab": _name(user_lab)},
            "question": _text(question),
            "analysts": _names(analysts),
        }
        rec._emit("session_started", {"session": header}, time=now)
        # one attempt to place the first line in the space now, so the link this
        # returns can be joined at once; an unreachable space keeps it in the outbox
        rec.flush(0)
        return rec

    # --- state -------------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The session as recorded so far, by every analyst (an immutable value).

        ``active`` is the approach *this* client records into.
        """
        if self._session is None:
            merged = self._journals.merger.session
            assert merged is not None
            self._session = _with_active(merged, self._now.active)
        return self._session

    @property
    def _now(self) -> Session:
        """:attr:`session` for the recorder's own checks, less the merged timeline entries.

        Joining the timeline copies all of it; the checks never read it, so
        recording an event does not pay for it (only reading :attr:`session` does).
        """
        if self._view is None:
            state = self._journals.state
            assert state.core is not None
            self._view = _with_active(state.core, state.active_key(self.client))
        return self._view

    @property
    def client(self) -> str:
        """Id of this recording client (the name of its journal)."""
        return self._journals.client

    @property
    def folder(self) -> Path:
        """The local session folder (for a remote space: this client's outbox folder)."""
        return self._journals.local_folder

    @property
    def link(self) -> str:
        """The session link other analysts join with (path or URL of the session folder)."""
        return self._journals.link

    @property
    def space(self) -> Space:
        """The session space."""
        return self._journals.space

    @property
    def journal_path(self) -> Path:
        """Journal file of this client."""
        return self._journals.journal.path

    @property
    def sync_status(self) -> str:
        """``local``, ``online``, ``sending: N events`` or ``offline: ...`` (see replicate.py)."""
        return self._journals.status

    def sync(self) -> int:
        """Read what other analysts recorded since the last call; return the new events.

        Emits :attr:`changed` with ``{"event": "synced", "new": n}`` when
        there were any. Never raises for an unreachable space (see
        :attr:`sync_status`).
        """
        if self._journals.journal.closed:
            return 0
        events = self._journals.read_new()  # network or disk: outside the recording lock
        with self._lock:
            n = self._journals.merger.add(events)
            if n:
                self._invalidate()
        if n:
            self.changed.emit({"event": "synced", "new": n})
        return n

    def start_live(self, interval: float = 1.0) -> None:
        """Read the other analysts' journals every ``interval`` seconds, in a daemon thread.

        :attr:`changed` is then emitted from that thread (``{"event": "synced"}``)
        whenever something arrived; widgets carry it to the GUI thread. Stops at
        :meth:`close`.
        """
        if self._live is not None:
            return
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.sync()
                except Exception:
                    continue

        self._live = stop
        threading.Thread(target=loop, name="fbias-live-session", daemon=True).start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Send every recorded event to the space now; True when the space has them all."""
        return self._journals.flush(timeout)

    def owns_step(self, step_id: str) -> bool:
        """Return True when this client recorded the step (others' steps are theirs to change)."""
        found = self._journals.state.origin.get(("step", step_id))
        return found is None or found[0] == self.client

    def _invalidate(self) -> None:
        self._session = None
        self._view = None
        self._layers = None

    @property
    def active(self) -> Approach | None:
        """The approach steps are recorded into (None before the first one)."""
        s = self._now
        return s.approach(s.active) if s.active is not None else None

    def layer_source(self, layer: str) -> StepInput | None:
        """Return what a napari layer shows: an image (maybe one index of it) or a step's output."""
        src = self._layer_map().get(layer)
        if src is None:
            return None
        image, step, sel = src
        return StepInput(image=image, step=step, select=sel, layer=layer)

    def _layer_map(self) -> dict[str, tuple[str | None, str | None, Mapping[str, int]]]:
        """Layer name -> (image, step, select), rebuilt after each change (cheap tuples)."""
        if self._layers is None:
            m: dict[str, tuple[str | None, str | None, Mapping[str, int]]] = {}
            for img in self._now.images:
                for layer, sel in img.layers.items():
                    m[layer] = (img.name, None, sel)
            for a in self._now.approaches:
                for st in a.steps:
                    if st.output_layer:
                        m[st.output_layer] = (None, st.id, {})
            self._layers = m
        return self._layers

    # --- the one way to change anything ------------------------------------------
    def _emit(
        self,
        name: str,
        payload: Mapping[str, Any],
        time: str | None = None,
        before: Callable[[Session], Any] | None = None,
    ) -> dict:
        """Journal one event, then show it; ``before(session after it)`` runs in between.

        When ``before`` raises, nothing is journaled (e.g. a snapshot that
        cannot be written is not recorded as saved).
        """
        with self._lock:
            j = self._journals
            event = make_event(name, j.journal.next_seq, payload, time)
            event["client"] = j.client
            event["clock"] = j.merger.clock + 1
            line = encode_event(outgoing(j.state, event, j.client))
            written = json.loads(line)  # exactly what a merge will see
            state = j.merger.preview(written)
            if before is not None:
                before(evolve(state.session, active=state.active_key(j.client)))
            j.append(line, written, state)
            self._invalidate()
        self.changed.emit(event)
        return event

    # --- who and what -------------------------------------------------------------
    def add_analysts(self, *names: str) -> None:
        """Add analysts who joined (names only; known names are ignored)."""
        new = [n for n in _names(names) if n not in self._now.analysts]
        if new:
            self._emit("analysts_added", {"analysts": new})

    def set_field(self, field: str, value: str, *, approach: str | None = None) -> None:
        """Set a session field (or, with ``approach``, an approach's title/analyst)."""
        allowed = APPROACH_FIELDS if approach is not None else SESSION_FIELDS
        if field not in allowed:
            raise ValueError(f"cannot set {field!r}; settable fields: {', '.join(allowed)}")
        if approach is not None:
            prev = getattr(self._now.approach(approach), field)
        elif field.startswith("user."):
            prev = getattr(self._now.user, field[5:])
        else:
            prev = getattr(self._now, field)
        self._emit(
            "field_set",
            {
                "field": field,
                "value": _text(str(value)) if field == "question" else _name(str(value)),
                "approach": approach,
                "prev": prev,
            },
        )

    def add_image(
        self,
        image: ImageRef | MultiscaleImage,
        *,
        layers: Mapping[str, Mapping[str, int]] | None = None,
        checksum: str | None = None,
    ) -> str:
        """Record an image opened in napari; return its name in the session.

        Parameters
        ----------
        image : ImageRef or MultiscaleImage
            The image (its source is stored without credentials).
        layers : mapping, optional
            napari layer name -> index shown along ``t``/``c``/``z`` (e.g.
            ``{"cells [DAPI]": {"c": 0}}`` when channels are split into
            layers). Default: one layer named like the image, showing all.
        checksum : str, optional
            ``sha256:...`` of the pixels, when known.
        """
        ref = ImageRef.from_image(image) if isinstance(image, MultiscaleImage) else image
        if checksum is not None:
            ref = ImageRef.from_dict({**ref.to_dict(), "checksum": checksum})
        layer_sel = {ref.name: {}} if layers is None else layers
        with self._lock:
            same = next((i for i in self._now.images if i.source and i.source == ref.source), None)
            name = same.name if same is not None else self._free_image_name(ref.name)
            known = dict(same.layers) if same is not None else {}
            for layer, sel in layer_sel.items():
                known[str(layer)] = _check_select(sel, ref, f"layer {layer!r}")
            d = {**ref.to_dict(), "name": name, "layers": known}
            if same is not None:
                d["checksum"] = ref.checksum or same.checksum
            # an image known only from a restored snapshot is recorded once opened here: it
            # then counts as opened by an analyst of this session (export reads only those)
            restored = same is not None and ("image", name) not in self._journals.state.origin
            if same is None or restored or ImageRef.from_dict(d) != same:
                self._emit("image_added", {"image": d})
        return name

    def _free_image_name(self, name: str) -> str:
        taken = {i.name for i in self._now.images}
        out, n = name, 2
        while out in taken:
            out, n = f"{name}_{n}", n + 1
        return out

    def rename_layer(self, old: str, new: str) -> None:
        """Follow a napari layer rename (ignored for layers the session does not know).

        A layer showing another analyst's result here is theirs: renaming it
        here changes nothing in the record.
        """
        src = self.layer_source(old) if old != new else None
        if src is not None and (src.step is None or self.owns_step(src.step)):
            self._emit("layer_renamed", {"old": old, "new": new})

    # --- approaches -----------------------------------------------------------------
    def add_approach(self, title: str = "", analyst: str = "", *, key: str | None = None) -> str:
        """Start a new approach (it becomes the active one); return its key (``"A"``, ...)."""
        with self._lock:
            keys = {a.key for a in self._now.approaches}
            key = key or next_approach_key(keys)
            if key in keys:
                raise ValueError(f"approach {key!r} exists already")
            if analyst:
                self.add_analysts(analyst)
            self._emit(
                "approach_added",
                {"approach": {"key": key, "title": _name(title), "analyst": _name(analyst)}},
            )
        return key

    def switch_approach(self, key: str) -> None:
        """Make approach ``key`` the one new steps go to."""
        self._now.approach(key)
        if key != self._now.active:
            self._emit("approach_switched", {"approach": key})

    def _approach_key(self, approach: str | None) -> str:
        if approach is not None:
            return self._now.approach(approach).key
        if self._now.active is None:
            return self.add_approach()
        return self._now.active

    def _continue_approach(self, analysts: list[str]) -> None:
        """After reopening, go on with the approach last recorded into, if it is ours."""
        merged = self._journals.state.core  # the timeline is not needed here
        key = merged.active if merged is not None else None
        if key is None or key not in {a.key for a in merged.approaches}:  # type: ignore[union-attr]
            return
        owner = merged.approach(key).analyst  # type: ignore[union-attr]
        if not analysts or not owner or owner in analysts:
            self._emit("approach_switched", {"approach": key})

    def set_follow_up(self, earlier: Session, link: str = "") -> None:
        """Mark this session as the follow-up of an ``earlier`` one (the report links them)."""
        if earlier.id == self._now.id:
            raise ValueError("a session cannot follow up itself")
        ref = {"id": earlier.id, "title": earlier.title, "created": earlier.created, "link": link}
        bounded = {k: bound_text(v, MAX_URI if k == "link" else MAX_NAME) for k, v in ref.items()}
        self._emit("follow_up_set", {"session": bounded})

    def set_notes(self, text: str, *, approach: str | None = None) -> None:
        """Set the free-text notes of an approach (the active one by default)."""
        key = self._approach_key(approach)
        prev = self._now.approach(key).notes
        self._emit("note_set", {"approach": key, "text": _text(text), "prev": prev})

    def set_result(self, summary: Mapping[str, Any], *, approach: str | None = None) -> None:
        """Set an approach's result summary, e.g. ``{"objects": 112}`` (JSON-safe values)."""
        key = self._approach_key(approach)
        result = {_name(k): _text(v) if isinstance(v, str) else v for k, v in summary.items()}
        self._emit("result_set", {"approach": key, "result": result})

    def set_solution(self, text: str, *, approach: str | None = None) -> None:
        """Record the solution proposed: which approach (optional) and in words."""
        if approach is not None:
            self._now.approach(approach)
        sol = self._now.solution
        self._emit(
            "solution_set",
            {"approach": approach, "text": _text(text), "prev": sol.text if sol else ""},
        )

    def add_issue(self, text: str) -> None:
        """Add an issue raised (e.g. "images at higher resolution needed")."""
        self._emit("item_added", {"field": "issues", "text": _text(text)})

    def remove_issue(self, index: int) -> None:
        """Remove issue number ``index`` (0-based)."""
        self._remove_item("issues", index)

    def add_next_step(self, text: str) -> None:
        """Add a next step agreed on."""
        self._emit("item_added", {"field": "next_steps", "text": _text(text)})

    def remove_next_step(self, index: int) -> None:
        """Remove next step number ``index`` (0-based)."""
        self._remove_item("next_steps", index)

    def _remove_item(self, field: str, index: int) -> None:
        items = getattr(self._now, field)
        if not 0 <= index < len(items):
            raise IndexError(f"no item {index} in {field} (it has {len(items)})")
        self._emit("item_removed", {"field": field, "index": index, "text": items[index]})

    # --- steps -------------------------------------------------------------------------
    def record_step(
        self,
        op: str,
        params: Mapping[str, Any],
        inputs: Mapping[str, InputRef],
        output_layer: str,
        *,
        replaces: str | None = None,
        select: Mapping[str, Mapping[str, int]] | None = None,
        chosen: Mapping[str, Any] | None = None,
    ) -> str:
        """Record that ``op`` ran and produced ``output_layer``; return the step id.

        Parameters
        ----------
        op : str
            Registry name of the operation.
        params : mapping
            Its settings (defaults are filled in; the record holds them all).
        inputs : mapping
            The op's data parameter -> the napari layer name it read (or an
            image name, a step id, or a :class:`StepInput`).
        output_layer : str
            Name of the layer it produced.
        replaces : str, optional
            Id of the step this run replaces (kept id, old version in the
            timeline). Without it, a run of the same op onto the layer an
            earlier run of the active approach produced replaces that run.
        select : mapping, optional
            Data parameter -> extra index along ``t``/``c``/``z`` it read (e.g.
            the current time point only).
        chosen : mapping, optional
            What the operation chose for its automatic settings (the ``chosen``
            of the value it returned, :mod:`napari_fbias.ops.chosen`): recorded
            with the step, numbers only.

        Raises
        ------
        InvalidStepError
            Unknown op, bad settings, unknown or unfitting inputs, or a
            replacement that would read its own output. Nothing is recorded.
        """
        spec = find_op(op)
        if not isinstance(output_layer, str) or not output_layer:
            raise InvalidStepError(f"cannot record {op}: the output layer needs a name")
        clean = check_params(spec, params)
        picked = chosen_numbers(chosen)
        with self._lock:
            resolved = {
                str(k): self._resolve(op, str(k), v, (select or {}).get(k))
                for k, v in inputs.items()
            }
            check_inputs(spec, {k: self._kind(v) for k, v in resolved.items()})
            target = self._target(op, resolved, output_layer, replaces)
            before = self._layer_map().get(output_layer)
            now = utc_now()
            if target is None:
                key = self._approach_key(None)
                step = RecordedStep(
                    self._new_id(op), op, resolved, clean, output_layer, now, chosen=picked
                )
                self._used_ids.add(step.id)
                self._emit("step_recorded", {"approach": key, "step": step.to_dict()}, now)
            else:
                approach, old = target
                step = RecordedStep(old.id, op, resolved, clean, output_layer, now, chosen=picked)
                self._replace(approach, old, step)
            if before is not None and before[1] != step.id:
                self._take_over_layer(before, output_layer, step.id)
        return step.id

    def _resolve(self, op: str, name: str, ref: InputRef, select: Any) -> StepInput:
        s = self._now
        if isinstance(ref, StepInput):
            found = ref
        elif ref in self._layer_map():
            found = self.layer_source(ref)  # type: ignore[assignment]
        elif s.find_step(ref) is not None:
            found = StepInput(step=ref)
        elif s.image(ref) is not None:
            found = StepInput(image=ref)
        else:
            raise InvalidStepError(
                f"cannot record {op}: input {name!r} reads {ref!r}, which is no layer, image or "
                "step of this session (record the image with add_image first)"
            )
        if found.step is not None and s.find_step(found.step) is None:
            raise InvalidStepError(
                f"cannot record {op}: input {name!r} reads unknown step {found.step!r}"
            )
        img = s.image(found.image) if found.image is not None else None
        if found.image is not None and img is None:
            raise InvalidStepError(
                f"cannot record {op}: input {name!r} reads unknown image {found.image!r}"
            )
        if not select:
            return found
        try:
            merged = _check_select({**found.select, **select}, img, f"input {name!r}")
        except ValueError as exc:
            raise InvalidStepError(f"cannot record {op}: {exc}") from None
        return StepInput(image=found.image, step=found.step, select=merged, layer=found.layer)

    def _kind(self, ref: StepInput) -> str:
        if ref.image is not None:
            return self._now.image(ref.image).kind  # type: ignore[union-attr]
        found = self._now.find_step(ref.step)  # type: ignore[arg-type]
        return get_op(found[1].op).output  # type: ignore[index]

    def _target(
        self, op: str, inputs: Mapping[str, StepInput], layer: str, replaces: str | None
    ) -> tuple[Approach, RecordedStep] | None:
        s = self._now
        if replaces is not None:
            found = s.find_step(replaces)
            if found is None:
                raise InvalidStepError(
                    f"cannot record {op}: there is no step {replaces!r} to replace"
                )
            return found
        owner = self.layer_source(layer)
        if owner is None or owner.step is None:
            return None
        found = s.find_step(owner.step)
        if found is None or found[0].key != s.active or found[1].op != op:
            return None
        reads = {i.step for i in inputs.values() if i.step is not None}
        if owner.step in reads | graph.ancestors(s, reads):
            return None
        return found

    def _replace(self, approach: Approach, old: RecordedStep, new: RecordedStep) -> None:
        s = self._now
        later = graph.dependents(s, old.id)
        reads = {i.step for i in new.inputs.values() if i.step is not None}
        loop = (reads | graph.ancestors(s, reads)) & (later | {old.id})
        if loop:
            raise InvalidStepError(
                f"cannot record {new.op} as a new version of step {old.id!r}: it would read "
                f"its own result (through {', '.join(sorted(loop))})"
            )
        same = _recipe(old) == _recipe(new)
        payload = {
            "approach": approach.key,
            "step": new.to_dict(),
            "tried": old.to_dict(),
            "stale": [] if same else sorted(later),
        }
        self._emit("step_replaced", payload, new.time)

    def _take_over_layer(
        self, before: tuple[str | None, str | None, Any], layer: str, by: str
    ) -> None:
        """Take ``layer`` from the image or step that showed it before step ``by`` wrote on it."""
        image, step_id, _ = before
        if image is not None:
            self._emit("layer_removed", {"layer": layer, "removed": [], "hidden": []})
        elif step_id is not None and not self.owns_step(step_id):
            return  # another analyst's step shown here: theirs stays as recorded
        elif step_id is not None and (found := self._now.find_step(step_id)) is not None:
            self._drop_step_layer(found[1], layer, reason=f"overwritten by step {by!r}")

    def layer_removed(self, layer: str) -> list[str]:
        """Follow the deletion of a napari layer; return the ids of the steps removed.

        The step that produced the layer is removed, unless later steps read
        it: then it stays (without a layer) because it still makes their
        results, and goes once they are all removed. Image layers only lose
        their layer; the image stays in the record. Unknown layers are ignored.
        """
        with self._lock:
            src = self.layer_source(layer)
            if src is None:
                return []
            if src.image is not None:
                self._emit("layer_removed", {"layer": layer, "removed": [], "hidden": []})
                return []
            if not self.owns_step(src.step):  # type: ignore[arg-type]
                return []  # a copy of another analyst's result: their record is theirs
            _, st = self._now.find_step(src.step)  # type: ignore[arg-type, misc]
            return self._drop_step_layer(st, layer, reason="layer deleted")

    def _drop_step_layer(self, st: RecordedStep, layer: str, reason: str) -> list[str]:
        s = self._now
        if graph.readers(s).get(st.id):
            gone: set[str] = set()
            hidden = [st.id]
        else:
            gone = graph.with_orphans(s, {st.id})
            hidden = []
        removed = [x.to_dict() for _, x in s.all_steps() if x.id in gone]
        self._emit(
            "layer_removed",
            {"layer": layer, "removed": removed, "hidden": hidden, "reason": reason},
        )
        return [d["id"] for d in removed]

    def remove_step(self, step_id: str, *, reason: str = "removed") -> list[str]:
        """Remove a step and every step reading its output; return the removed ids.

        Steps kept only to feed them (their layer deleted) go as well.
        """
        with self._lock:
            s = self._now
            if s.find_step(step_id) is None:
                raise KeyError(f"no step {step_id!r} in this session")
            gone = graph.with_orphans(s, {step_id} | graph.dependents(s, step_id))
            removed = [x.to_dict() for _, x in s.all_steps() if x.id in gone]
            self._emit("step_removed", {"removed": removed, "reason": reason})
        return [d["id"] for d in removed]

    def _new_id(self, op: str) -> str:
        base = op.rsplit(".", 1)[-1]
        n = self._id_counts.get(base, 1)
        sid = base if n == 1 else f"{base}_{n}"
        # every id ever recorded, by anyone: the merge's table holds the ids of every
        # recorded or restored step (ids are never reused), and this recorder's own
        used = self._journals.state.used_steps
        while sid in used or sid in self._used_ids:
            n += 1
            sid = f"{base}_{n}"
        self._id_counts[base] = n
        return sid

    # --- saving ---------------------------------------------------------------------
    def save(self) -> Path:
        """Write the readable snapshot ``session.yaml`` (atomically); return its path.

        In a local space it goes into the session folder; in a remote space it
        is written to the space and to this client's outbox folder.
        """
        written: list[Path] = []
        with self._lock:
            self._emit(
                "snapshot_saved",
                {"file": SNAPSHOT_NAME},
                before=lambda s: written.append(save_snapshot(s, self.folder)),
            )
            local = written[0]
            if not self.space.direct:
                try:
                    self.space.write_text(
                        self.space.path(self._journals.name, SNAPSHOT_NAME),
                        snapshot_text(self.session),
                    )
                except SessionError:
                    pass  # the journals are the truth; the snapshot is a convenience
            return local

    def close(self) -> None:
        """Stop recording (the journal is complete on disk; what is left is sent)."""
        if self._live is not None:
            self._live.set()
        with self._lock:
            self._journals.close()

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(
    path: str | os.PathLike[str],
    *,
    analysts: tuple[str, ...] | list[str] = (),
    fsync: bool = True,
) -> SessionRecorder:
    """Continue or join a session: read every analyst's journal and record into a new one.

    Several clients (napari windows, machines) may record into one session at
    the same time: each writes its own journal, and each sees the others'
    work through :meth:`SessionRecorder.sync`. There is no lock to wait for.

    Parameters
    ----------
    path : str or Path
        A session link: the session folder (local path or URL in a space,
        e.g. ``s3://bucket/space/2026-12-05-nuclei-1a2b3c4d``), or a file in
        it. A folder holding only a ``session.yaml`` snapshot gets a journal
        that starts from it.
    analysts : sequence of str
        Analysts present (added to the record).
    fsync : bool
        fsync every journal line (default True).
    """
    space, name = split_link(path)
    journals = SessionJournals(space, name, fsync=fsync)
    try:
        journals.poll(first=True)
        rec = SessionRecorder(journals)
        if journals.merger.session is None:
            snapshot = Path(space.path(name, SNAPSHOT_NAME)) if space.is_local else None
            if snapshot is None or not snapshot.is_file():
                raise SessionError(f"no session in {space.url(name)} (no journal or snapshot)")
            session = load_snapshot(snapshot)
            rec._emit("session_restored", {"session": session.to_dict(), "source": snapshot.name})
        rec._emit("session_reopened", {"analysts": _names(analysts)})
        rec._continue_approach(_names(analysts))
    except BaseException:
        journals.close()
        _drop_if_empty(journals.journal.path)
        raise
    return rec


def _with_active(session: Session, active: str | None) -> Session:
    """Return ``session`` with ``active`` as its active approach (itself when it is already)."""
    return session if session.active == active else evolve(session, active=active)


def _drop_if_empty(path: Path) -> None:
    """Remove a journal this client created but never wrote to (a failed open)."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def _name(text: str) -> str:
    """Return a name as recorded: no credentials, no control characters, bounded (MAX_NAME)."""
    return bound_text(str(text), MAX_NAME)


def _text(text: str) -> str:
    """Return free text as recorded: no credentials, no control characters, bounded (MAX_TEXT)."""
    return bound_text(str(text), MAX_TEXT)


def _names(names: Any) -> list[str]:
    out: list[str] = []
    for n in names:
        n = _name(str(n)).strip()
        if n and n not in out:
            out.append(n)
    return out


def _check_select(sel: Mapping[str, Any], img: ImageRef | None, what: str) -> dict[str, int]:
    out = check_select(sel, what)
    if img is not None and img.axes:
        for axis, index in out.items():
            if axis not in img.axes:
                raise ValueError(f"{what}: image {img.name!r} has no {axis!r} axis ({img.axes})")
            if img.shape and index >= img.shape[img.axes.index(axis)]:
                raise ValueError(
                    f"{what}: index {index} along {axis!r} is past the end of {img.name!r}"
                )
    return out


def _recipe(step: RecordedStep) -> tuple[Any, ...]:
    d = step.to_dict()
    return d["op"], d["inputs"], d["params"]
