"""The session record: who came, which images, which approaches, and what was decided.

:class:`SessionRecorder` records live (each change journaled to disk before
it shows); :func:`open_session` continues a previous session;
:func:`load_session` / :func:`list_sessions` read them back;
:func:`approach_to_pipeline` turns an approach into a pipeline. Nothing here
imports Qt or napari. See ``docs/session.md``.
"""

from napari_fbias.session.errors import (
    InvalidStepError,
    JournalError,
    JournalRecoveryWarning,
    SessionError,
    SessionFormatError,
    SessionLockedError,
)
from napari_fbias.session.model import (
    Approach,
    ImageRef,
    Person,
    RecordedStep,
    Session,
    Solution,
    StepInput,
    TimelineEvent,
)
from napari_fbias.session.recorder import SessionRecorder, open_session
from napari_fbias.session.store import (
    SessionInfo,
    list_sessions,
    load_session,
    load_snapshot,
    save_snapshot,
    sessions_root,
)
from napari_fbias.session.to_pipeline import approach_to_pipeline, approach_to_pipeline_dict

__all__ = [
    "Approach",
    "ImageRef",
    "InvalidStepError",
    "JournalError",
    "JournalRecoveryWarning",
    "Person",
    "RecordedStep",
    "Session",
    "SessionError",
    "SessionFormatError",
    "SessionInfo",
    "SessionLockedError",
    "SessionRecorder",
    "Solution",
    "StepInput",
    "TimelineEvent",
    "approach_to_pipeline",
    "approach_to_pipeline_dict",
    "list_sessions",
    "load_session",
    "load_snapshot",
    "open_session",
    "save_snapshot",
    "sessions_root",
]
