"""ferkit: facial expression recognition, trained on FER2013 / FER+, run offline on CPU."""

import os

# Offline means offline: ONNX Runtime (1.29 and later) records a telemetry event for every process that loads it,
# in ~/.cache/Microsoft/DeveloperTools, unless this is set before it is imported. Every ferkit module is imported
# after this package, so setting it here covers every ferkit process; a user's own setting wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ORT_TELEMETRY_DISABLED", "1")

from ferkit.labels import EMOTIONS, FERPLUS_EMOTIONS
from ferkit.version import __version__

__all__ = ["EMOTIONS", "FERPLUS_EMOTIONS", "FerkitError", "Recognizer", "__version__", "process_video",
           "to_dataframe"]


def __getattr__(name):
    # Lazy, so `import ferkit` stays light: the recognizer pulls in OpenCV and ONNX Runtime (never torch), and
    # to_dataframe imports pandas only when it is called. Plain imports (not importlib) so the layout test sees them.
    if name == "Recognizer":
        from ferkit.runtime.recognizer import Recognizer

        return Recognizer
    if name == "to_dataframe":
        from ferkit.records import to_dataframe

        return to_dataframe
    if name == "process_video":
        from ferkit.runtime.video_recognition import process_video

        return process_video
    if name == "FerkitError":
        from ferkit.errors import FerkitError

        return FerkitError
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
