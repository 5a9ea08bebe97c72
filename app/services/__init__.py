"""The app's services: ``QObject``s and functions without widgets, the only app code that
trains (:mod:`.worker`, :mod:`.bridge`), follows a run (:mod:`.follow`) or opens the run store
(:mod:`.run_library`); plus the catalogues the setup form offers (:mod:`.catalogue`), the
remembered settings (:mod:`.settings`) and the PDF report writer (:mod:`.report_pdf`)."""

from .bridge import BridgeSignals, QtBridge
from .catalogue import (
    dataset_names,
    describe,
    device_choices,
    download_note,
    model_names,
    run_problems,
)
from .follow import RunFollower
from .run_library import RESUMABLE, ResumePoint, RunLibrary
from .worker import THREAD_NAME, TrainingJob, TrainingWorker, cancel_running, running_threads

__all__ = ["BridgeSignals", "QtBridge", "RunFollower", "RunLibrary", "ResumePoint",
           "RESUMABLE", "TrainingJob",
           "TrainingWorker", "THREAD_NAME", "cancel_running", "running_threads",
           "model_names", "dataset_names", "describe", "device_choices", "run_problems",
           "download_note"]
