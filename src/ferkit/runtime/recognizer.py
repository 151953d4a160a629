"""Recognizer: detect → align → classify, for one image, a batch of images, or a video's frames.

    from ferkit import Recognizer
    recognizer = Recognizer()                       # shipped "default" model, RetinaFace detector, ONNX Runtime
    faces = recognizer.predict("photo.jpg")         # or bytes, a PIL image, a BGR / gray array (rgb=True for RGB)
    faces[0]["emotion"], faces[0]["score"], faces[0]["box"], faces[0]["probabilities"]

Each face is a record (ferkit.records): source, frame, face, box [x, y, w, h], emotion, score, probabilities
{label: p}. All faces of an image (or of a batch of images) are classified in one call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ferkit.classifier.protocol import load_classifier
from ferkit.errors import FerkitError
from ferkit.records import face_record
from ferkit.sessions import available_cores
from ferkit.vision.align import align_faces, check_preprocess
from ferkit.vision.detect import DEFAULT_DETECTOR, create_detector


def _pil_image_type():
    """PIL's Image class if PIL is imported, else None: an object can only be a PIL image once PIL is loaded, so
    recognising one never imports Pillow."""
    module = sys.modules.get("PIL.Image")
    return getattr(module, "Image", None)


def pil_pixels(image) -> np.ndarray:
    """A PIL image's pixels in OpenCV's order, as a file of the same image would decode (media.images): EXIF
    orientation applied; gray stays gray (16-bit and float kept deep); alpha kept as BGRA; anything else (RGB,
    palette, CMYK, YCbCr, ...) converted to RGB by Pillow, then to BGR."""
    import cv2

    mode = image.mode
    try:
        if image.getexif().get(0x0112, 1) != 1:  # an EXIF orientation other than "upright"
            from PIL import ImageOps

            image = ImageOps.exif_transpose(image)
        if mode in ("1", "L"):
            return np.asarray(image.convert("L"))
        if mode in ("I", "F") or mode.startswith("I;16"):
            pixels = np.asarray(image)
            return pixels.astype(pixels.dtype.newbyteorder("="))  # I;16B is big-endian; OpenCV wants native
        if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in image.info):
            return cv2.cvtColor(np.asarray(image.convert("RGBA")), cv2.COLOR_RGBA2BGRA)
        return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
    except (OSError, ValueError) as exc:  # a truncated file behind a lazy Image.open, a mode Pillow cannot convert
        raise FerkitError(f"cannot read the PIL image (mode {mode}): {exc}") from None


class Recognizer:
    """Facial expression recognition on whole images: every face's box and expression probabilities.

    Every method returns face records (ferkit.records): dicts with source, frame, face (1, 2, ... in reading
    order), box [x, y, w, h], emotion, score and probabilities {label: p}; video records add track, time_s and
    raw_emotion. An image may be a path (str or pathlib.Path), the bytes of an image file, a PIL image, or a
    numpy array (BGR, BGRA or gray; rgb=True for RGB / RGBA arrays)::

        from ferkit import Recognizer, to_dataframe
        recognizer = Recognizer()                                  # loaded once, reused for every call
        faces = recognizer.predict("photo.jpg")                    # [{"emotion": "happy", "score": 0.93, ...}]
        batch = recognizer.predict_batch(["a.jpg", pil_image])     # one list of records per image
        for frame_faces in recognizer.predict_video("clip.mp4"):   # one list per frame, as the video plays
            ...
        to_dataframe(batch)                                        # one row per face (needs pandas)

    Bad input (a missing or corrupt file, an array that is no image) raises ferkit.FerkitError with one line.

    model: shipped model name, run folder, checkpoint or .onnx file (or a classifier object).
    detector: back-end name (``retinaface``, ``haar``) or a FaceDetector. threshold / min_face: the detector's
    confidence threshold and smallest face side in pixels. preprocess: crop options from ferkit.vision.align
    (default none). tta: None for the model's own, [], ["flip"] or ["flip", "shift"]. align: level the eyes.
    backend: "onnx" (ONNX Runtime) or "torch". threads: CPU threads (None: the runtime's own choice).
    max_faces: keep only the largest N faces of an image. precision: "auto" (the classifier's INT8 graph where
    it is the faster, see ferkit.sessions; the detector in fp32), "fp32" or "int8" (both). device: ONNX
    Runtime's provider, "auto", "cpu", "cuda" or "openvino".
    """

    def __init__(self, model="default", detector=DEFAULT_DETECTOR, threshold: float | None = None,
                 min_face: int = 20, preprocess=None, tta=None, align: bool = True, backend: str = "onnx",
                 threads: int | None = None, max_faces: int | None = None, precision: str = "auto",
                 device: str = "auto"):
        # What a twin for frame-parallel video (for_frames) is built from; None where the parts were given as objects.
        self._settings = (dict(model=model, detector=detector, threshold=threshold, min_face=min_face,
                               preprocess=preprocess, tta=tta, align=align, backend=backend, max_faces=max_faces,
                               precision=precision, device=device)
                          if backend == "onnx" and isinstance(model, (str, os.PathLike)) and detector == "retinaface"
                          else None)
        self._threads, self._twins = threads, {}
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
        """(array in OpenCV order, source name) from any image predict accepts."""
        if isinstance(image, (str, os.PathLike)):
            from ferkit.media.images import read_image

            return read_image(image), str(image)
        if isinstance(image, (bytes, bytearray, memoryview)):
            from ferkit.media.images import decode_image

            return decode_image(bytes(image)), "<bytes>"
        pil_type = _pil_image_type()
        if pil_type is not None and isinstance(image, pil_type):
            name = getattr(image, "filename", "") or "<PIL>"
            array, _ = Recognizer.load_image(pil_pixels(image))  # the array checks below, in BGR order already
            return array, name
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
        """The faces' aligned crops: uint8 N×48×48, the classifier's input (ferkit.vision.crop)."""
        return align_faces(image, faces, self.preprocess, self.align)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Crops → probabilities N × len(labels), in the order of self.labels."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.classifier.predict_proba(crops, tta=self.tta)

    def records(self, faces, probs, source, frame=None) -> list[dict]:
        """One record per face, numbered from 1 in the order given (detect's reading order)."""
        return [face_record(source, face.box, p, self.labels, frame, number)
                for number, (face, p) in enumerate(zip(faces, probs), start=1)]

    # ------------------------------------------------------------------------------------------ API

    def predict(self, image, source: str | None = None, frame=None, rgb: bool = False) -> list[dict]:
        """Every face in one image, as a list of records in reading order (empty when there is no face).

        image: a path (str or pathlib.Path), the bytes of an image file, a PIL image (any mode: converted to RGB
        by Pillow, EXIF orientation applied), or a numpy array: BGR / BGRA as OpenCV reads it, gray, or RGB /
        RGBA with rgb=True. source: the name the records carry (default: the path, "<bytes>", the PIL image's
        filename or "<PIL>", "<array>"). frame: a frame index to put in the records::

            faces = recognizer.predict("photo.jpg")
            faces = recognizer.predict(PIL.Image.open("photo.jpg"))
            faces = recognizer.predict(rgb_array, rgb=True)
            [(f["face"], f["emotion"], round(f["score"], 2)) for f in faces]     # [(1, "happy", 0.93)]
        """
        array, name = self.load_image(image, rgb)
        faces = self.detect(array)
        probs = self.classify(self.crops(array, faces))
        return self.records(faces, probs, source or name, frame)

    def predict_batch(self, images, sources=None, frames=None, rgb: bool = False) -> list[list[dict]]:
        """Several images: one list of records per image, in the order given (an empty list for an image with no
        face). Each image is any kind predict accepts, and kinds may mix; faces are detected image by image, then
        all of them classified in one classifier call. sources / frames: one per image (optional); rgb
        applies to every numpy array of the batch::

            results = recognizer.predict_batch(["a.jpg", "b.png", PIL.Image.open("c.jpg")])
            for name, faces in zip(["a", "b", "c"], results):
                print(name, [f["emotion"] for f in faces])
            ferkit.to_dataframe(results)                   # one row per face of every image
        """
        images = list(images)
        sources = list(sources) if sources is not None else [None] * len(images)
        frames = list(frames) if frames is not None else [None] * len(images)
        if len(sources) != len(images) or len(frames) != len(images):
            raise FerkitError(f"predict_batch: {len(images)} images but {len(sources)} sources and "
                              f"{len(frames)} frames; give one of each per image")
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

    def predict_video(self, source, every: int = 1, max_frames: int | None = None, smoothing: float = 0.4,
                      workers: int | None = None):
        """A generator of one list of records per recognized frame, as the video plays: the faces are tracked
        across frames, so each record adds "track" (a face's stable id), "time_s" (seconds from the start; None
        for a camera or stream) and "raw_emotion" (the frame's own top label), and its "emotion", "score" and
        "probabilities" are the track's smoothed ones (smoothing: the newest frame's weight, 1 = none).

        source: a video file (str or pathlib.Path), a camera index (int) or a stream URL (rtsp://, http://).
        every: recognize frames 0, every, 2 × every, ... (the rest are decoded and skipped). max_frames: stop
        before frame max_frames of the video (None: to its end; a camera runs until the loop stops). A frame
        without a face gives an empty list. Nothing is kept, so memory stays flat however long the video; the
        video is opened at the first frame and released at the end, or when the loop breaks or the generator is
        closed. workers: frames recognised at once, on their own threads (None: one per core, at most 4, for a file;
        one for a camera or stream; one with a Haar detector or the torch backend); the records are the same.
        ferkit.runtime.video_recognition.process_video writes an annotated video, CSV and timeline::

            for faces in recognizer.predict_video("clip.mp4", every=5):
                for f in faces:
                    print(f["frame"], f["time_s"], f["track"], f["emotion"])
            table = ferkit.to_dataframe(recognizer.predict_video(0, max_frames=100))   # camera 0
        """
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise FerkitError(f"predict_video: every must be a whole number of frames, 1 or more (got {every!r})")
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 0):
            raise FerkitError(f"predict_video: max_frames must be None or a whole number, 0 or more "
                              f"(got {max_frames!r})")
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 < smoothing <= 1:
            raise FerkitError(f"predict_video: smoothing must be in (0, 1] (got {smoothing!r})")
        from ferkit.runtime.video_recognition import check_workers, video_records

        check_workers(workers, "predict_video: ")

        return video_records(self, source, every=every, max_frames=max_frames, smoothing=smoothing, workers=workers)

    def for_frames(self, workers: int) -> "Recognizer":
        """A recognizer that `workers` threads may call at once, each on its own frame: the same model and settings,
        with ONNX Runtime sessions that split this one's threads between the callers (one each on two cores), so
        that whole frames run side by side instead of each frame's small layers being split across the cores.
        Built once per worker count and kept. self where `workers` is 1, or where a part may not be thread-safe or
        cannot be rebuilt (the torch backend, a Haar detector, parts given as objects): the frames then run one at
        a time."""
        if workers <= 1 or self._settings is None:
            return self
        if workers not in self._twins:
            threads = max(1, (self._threads or available_cores()) // workers)
            self._twins[workers] = Recognizer(**self._settings, threads=threads)
        return self._twins[workers]

    def __repr__(self):
        return (f"Recognizer(model={getattr(self.classifier, 'source', '?')!r}, detector={self.detector!r}, "
                f"preprocess={self.preprocess}, align={self.align})")
