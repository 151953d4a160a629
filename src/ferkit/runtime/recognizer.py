"""Recognizer: detect → align → classify, for one image, a batch of images, or video frames.

    from ferkit import Recognizer
    recognizer = Recognizer()                       # shipped "default" model, RetinaFace detector, ONNX Runtime
    faces = recognizer.predict("photo.jpg")         # or a BGR / gray uint8 array (rgb=True for RGB arrays)
    faces[0]["emotion"], faces[0]["score"], faces[0]["box"], faces[0]["probabilities"]

Each face is a record (ferkit.records): source, frame, box [x, y, w, h], emotion, score, probabilities
{label: p}. All faces of an image (or of a batch of images) are classified in one call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.classifier.protocol import load_classifier
from ferkit.errors import FerkitError
from ferkit.records import face_record
from ferkit.vision.align import align_faces, check_preprocess
from ferkit.vision.detect import DEFAULT_DETECTOR, create_detector


class Recognizer:
    """Facial expression recognition on whole images.

    model: shipped model name, run folder, checkpoint or .onnx file (or a classifier object).
    detector: back-end name (``retinaface``, ``haar``) or a FaceDetector. threshold / min_face: the detector's
    confidence threshold and smallest face side in pixels. preprocess: crop options from
    ferkit.vision.align (default none). tta: None for the model's own, [], ["flip"] or
    ["flip", "shift"]. align: level the eyes. precision: "auto" (the classifier's INT8 graph where it is the
    faster, see ferkit.sessions; the detector in fp32), "fp32" or "int8" (both). device: ONNX Runtime's
    provider, "auto", "cpu", "cuda" or "openvino".
    """

    def __init__(self, model="default", detector=DEFAULT_DETECTOR, threshold: float | None = None,
                 min_face: int = 20, preprocess=None, tta=None, align: bool = True, backend: str = "onnx",
                 threads: int | None = None, max_faces: int | None = None, precision: str = "auto",
                 device: str = "auto"):
        kwargs = {"min_face": min_face}
        if threshold is not None:
            kwargs["threshold"] = threshold
        if isinstance(detector, str) and detector == "retinaface":
            kwargs.update(precision="fp32" if backend == "torch" else precision, device=device)
            if threads:
                kwargs["threads"] = threads
        self.detector = create_detector(detector, **kwargs)
        self.classifier = load_classifier(model, backend, threads, precision=precision, device=device)
        self.labels = tuple(self.classifier.labels)
        self.tta = tta
        self.preprocess = check_preprocess(preprocess)
        self.align = align
        self.max_faces = max_faces

    # ------------------------------------------------------------------------------------------ pieces

    @staticmethod
    def load_image(image, rgb: bool = False) -> tuple[np.ndarray, str]:
        """(array in OpenCV order, source name) from a path, bytes or array."""
        if isinstance(image, (str, Path)):
            from ferkit.media.images import read_image

            return read_image(image), str(image)
        if isinstance(image, (bytes, bytearray)):
            from ferkit.media.images import decode_image

            return decode_image(bytes(image)), "<bytes>"
        try:
            array = np.asarray(image)
        except (TypeError, ValueError) as exc:  # ragged lists and other things that are no array
            raise FerkitError(f"not an image: {type(image).__name__} ({exc})") from None
        if array.ndim not in (2, 3) or array.size == 0 or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise FerkitError(f"unsupported image array of shape {array.shape}")
        if array.dtype.kind not in "uif":  # bool, complex, object, strings: no pixels to speak of
            raise FerkitError(f"unsupported image array of dtype {array.dtype}; give uint8 pixels (or uint16, float)")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise FerkitError("the image array holds NaN or infinite values")
        if array.dtype in (np.uint32, np.uint64, np.float16):  # types OpenCV's conversions refuse
            array = array.astype(np.float32)
        if rgb and array.ndim == 3 and array.shape[2] >= 3:
            import cv2

            array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        return array, "<array>"

    def detect(self, image):
        """The image's faces in reading order: left to right, then top to bottom (max_faces keeps the largest)."""
        faces = self.detector.detect(image)
        faces = faces[: self.max_faces] if self.max_faces else faces
        return sorted(faces, key=lambda face: (face.box[0], face.box[1]))

    def crops(self, image, faces) -> np.ndarray:
        return align_faces(image, faces, self.preprocess, self.align)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.classifier.predict_proba(crops, tta=self.tta)

    def records(self, faces, probs, source, frame=None) -> list[dict]:
        return [face_record(source, face.box, p, self.labels, frame, number)
                for number, (face, p) in enumerate(zip(faces, probs), start=1)]

    # ------------------------------------------------------------------------------------------ API

    def predict(self, image, source: str | None = None, frame=None, rgb: bool = False) -> list[dict]:
        """All faces in one image: a list of records (empty when there is no face)."""
        array, name = self.load_image(image, rgb)
        faces = self.detect(array)
        probs = self.classify(self.crops(array, faces))
        return self.records(faces, probs, source or name, frame)

    def predict_batch(self, images, sources=None, frames=None, rgb: bool = False) -> list[list[dict]]:
        """Several images (arrays or paths): detection per image, one classifier call for all their faces."""
        images = list(images)
        sources = list(sources) if sources is not None else [None] * len(images)
        frames = list(frames) if frames is not None else [None] * len(images)
        loaded, all_faces, crops = [], [], []
        for image, source in zip(images, sources):
            array, name = self.load_image(image, rgb)
            faces = self.detect(array)
            loaded.append(source or name)
            all_faces.append(faces)
            crops.append(self.crops(array, faces))
        stacked = np.concatenate(crops) if crops else np.zeros((0, 48, 48), np.uint8)
        probs = self.classify(stacked)
        results, start = [], 0
        for faces, name, frame in zip(all_faces, loaded, frames):
            results.append(self.records(faces, probs[start:start + len(faces)], name, frame))
            start += len(faces)
        return results

    def __repr__(self):
        return (f"Recognizer(model={getattr(self.classifier, 'source', '?')!r}, detector={self.detector!r}, "
                f"preprocess={self.preprocess}, align={self.align})")
