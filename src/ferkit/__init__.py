"""ferkit: facial expression recognition, trained on FER2013 / FER+, run offline on CPU."""

from ferkit.labels import EMOTIONS, FERPLUS_EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "FERPLUS_EMOTIONS", "__version__"]
