"""ferkit: facial expression recognition, trained on FER2013 / FER+, run offline on CPU."""

from ferkit.labels import EMOTIONS, FERPLUS_EMOTIONS
from ferkit.version import __version__

__all__ = ["EMOTIONS", "FERPLUS_EMOTIONS", "Recognizer", "__version__"]


def __getattr__(name):
    # Lazy, so `import ferkit` stays light: the recognizer pulls in OpenCV and ONNX Runtime (never torch).
    if name == "Recognizer":
        from ferkit.runtime.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
