"""Image decoding (every kind of bad file is a FerkitError), EXIF orientation, and the 48×48 face crop."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import face_region, sample_faces
from PIL import Image

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_PIXELS, decode_image, read_image
from ferkit.vision.crop import face_crop, normalise, to_gray


@pytest.fixture(scope="module")
def photo():
    """A real non-square BGR photo: the astronaut's head and shoulders, 200 high × 320 wide."""
    astronaut, _ = sample_faces()
    return np.ascontiguousarray(astronaut[10:210, 90:410])


@pytest.fixture(scope="module")
def gray_photo():
    _, camera = sample_faces()
    return np.ascontiguousarray(camera[40:240, 100:420])


def encode(suffix, image, *params):
    ok, data = cv2.imencode(suffix, image, list(params))
    assert ok
    return data.tobytes()


def png_bytes(width, height, bit_depth=1, color_type=0):
    """A valid, tiny, all-black PNG of any size, written chunk by chunk (zero rows compress ~1000:1)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\0" * (1 + (width * bit_depth + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(1)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------- good files


def test_png_is_lossless(photo):
    image = decode_image(encode(".png", photo), "photo.png")
    assert image.dtype == np.uint8 and image.shape == photo.shape
    np.testing.assert_array_equal(image, photo)


def test_jpg_decodes_close_to_the_original(photo):
    image = decode_image(encode(".jpg", photo, cv2.IMWRITE_JPEG_QUALITY, 95), "photo.jpg")
    assert image.dtype == np.uint8 and image.shape == photo.shape
    assert np.abs(image.astype(int) - photo).mean() < 3


def test_gray_png(gray_photo):
    image = decode_image(encode(".png", gray_photo))
    assert image.shape == gray_photo.shape
    np.testing.assert_array_equal(image, gray_photo)


def test_rgba_png(photo):
    bgra = cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = np.linspace(0, 255, photo.shape[1]).astype(np.uint8)  # a real alpha gradient
    image = decode_image(encode(".png", bgra))
    assert image.shape == (*photo.shape[:2], 4)
    np.testing.assert_array_equal(image, bgra)
    np.testing.assert_array_equal(to_gray(image), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))


def test_16_bit_png(gray_photo):
    wide = gray_photo.astype(np.uint16) * 257
    image = decode_image(encode(".png", wide))
    assert image.shape == gray_photo.shape
    np.testing.assert_array_equal(image, wide)  # depth kept; the crop brings it to 8 bits
    crop = face_crop(image)
    assert crop.dtype == np.uint8 and crop.shape == (48, 48)
    reference = face_crop(gray_photo)
    scale = 255.0 / (gray_photo.max() - gray_photo.min())  # to_gray stretches 16-bit input to 0..255
    stretched = face_crop(np.round((gray_photo.astype(float) - gray_photo.min()) * scale).astype(np.uint8))
    assert np.abs(crop.astype(int) - stretched).max() <= 1
    assert np.corrcoef(crop.ravel(), reference.ravel())[0, 1] > 0.99


def test_pillow_written_files_decode(photo):
    rgb = Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
    for fmt in ("PNG", "JPEG", "BMP", "WEBP", "TIFF"):
        buffer = io.BytesIO()
        rgb.save(buffer, fmt)
        image = decode_image(buffer.getvalue(), fmt)
        assert image.shape == photo.shape, fmt
        assert np.abs(image.astype(int) - photo).mean() < 6, fmt


# ------------------------------------------------------------------------------------------- bad files


def test_zero_bytes():
    with pytest.raises(FerkitError, match="empty"):
        decode_image(b"", "empty.png")


def test_random_bytes():
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(FerkitError, match="noise.jpg: not an image"):
        decode_image(data, "noise.jpg")


def test_truncated_jpg(photo):
    data = encode(".jpg", photo)
    with pytest.raises(FerkitError, match="truncated"):
        decode_image(data[: len(data) // 2], "half.jpg")


def test_truncated_png(photo):
    data = encode(".png", photo)
    with pytest.raises(FerkitError, match="truncated"):
        decode_image(data[: len(data) // 2], "half.png")


def test_text_file_with_image_name():
    with pytest.raises(FerkitError, match="not an image"):
        decode_image(b"<html>this is a web page, saved as face.jpg</html>", "face.jpg")


@pytest.fixture(scope="module")
def huge_png():
    data = png_bytes(30000, 30000)  # 900 Mpixel, 1-bit, all black: about 0.5 MB of PNG
    assert len(data) < 2_000_000
    return data


def test_huge_png_is_refused_before_decoding(huge_png):
    with pytest.raises(FerkitError, match="limit") as caught:
        decode_image(huge_png, "bomb.png")
    assert f"{MAX_PIXELS:,}" in str(caught.value)


def test_large_png_over_ferkit_limit():
    data = png_bytes(8000, 8000)  # 64 Mpixel: under Pillow's own bomb limit, over ferkit's 50 M
    with pytest.raises(FerkitError, match=r"8000x8000 pixels, over the limit of 50,000,000"):
        decode_image(data, "large.png")


def test_max_pixels_argument(photo, tmp_path):
    data = encode(".png", photo)
    with pytest.raises(FerkitError, match="limit of 1,000"):
        decode_image(data, "photo.png", max_pixels=1000)
    assert decode_image(data, "photo.png", max_pixels=photo.shape[0] * photo.shape[1]).shape == photo.shape
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    with pytest.raises(FerkitError, match="limit"):
        read_image(path, max_pixels=1000)


def test_read_image_errors(tmp_path, photo):
    with pytest.raises(FerkitError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(FerkitError, match="folder"):
        read_image(tmp_path)
    (tmp_path / "ok.png").write_bytes(encode(".png", photo))
    np.testing.assert_array_equal(read_image(tmp_path / "ok.png"), photo)


# ------------------------------------------------------------------------------------------- EXIF


def _jpeg_with_orientation(image_rgb_or_gray: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(image_rgb_or_gray).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def test_exif_orientation_6_rotates_colour_jpeg(photo):
    rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
    image = decode_image(_jpeg_with_orientation(rgb, 6), "rotated.jpg")
    h, w = photo.shape[:2]
    assert image.shape == (w, h, 3)  # height and width swapped
    clockwise = cv2.rotate(photo, cv2.ROTATE_90_CLOCKWISE)  # orientation 6: rotate 90° clockwise to view
    counter = cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE)
    err_cw = np.abs(image.astype(int) - clockwise).mean()
    assert err_cw < 4 and err_cw < np.abs(image.astype(int) - counter).mean() / 4


def test_exif_orientation_6_rotates_gray_jpeg(gray_photo):
    image = decode_image(_jpeg_with_orientation(gray_photo, 6), "rotated-gray.jpg")
    h, w = gray_photo.shape
    assert image.shape == (w, h)
    assert np.abs(image.astype(int) - cv2.rotate(gray_photo, cv2.ROTATE_90_CLOCKWISE)).mean() < 4


@pytest.mark.parametrize("orientation", [1, 3])
def test_exif_orientations_that_keep_the_shape(photo, orientation):
    rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
    image = decode_image(_jpeg_with_orientation(rgb, orientation))
    assert image.shape == photo.shape
    expected = photo if orientation == 1 else cv2.rotate(photo, cv2.ROTATE_180)
    assert np.abs(image.astype(int) - expected).mean() < 4


# ------------------------------------------------------------------------------------------- face crop


def _inputs():
    astronaut, camera = sample_faces()
    face = face_region(astronaut)
    return {
        "gray": camera,
        "bgr": astronaut,
        "bgra": cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA),
        "gray16": camera.astype(np.uint16) * 257,
        "gray_hw1": camera[:, :, None],
        "float": camera.astype(np.float32) / 255,
        "wide": face[:60, :],
        "tall": face[:, :30],
        "tiny": face[:10, :7],
        "exact": cv2.resize(camera, (48, 48)),
        "one_pixel": camera[:1, :1],
    }


@pytest.mark.parametrize("kind", list(_inputs()))
def test_face_crop_is_48x48_uint8(kind):
    crop = face_crop(_inputs()[kind])
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop.flags["C_CONTIGUOUS"]


def test_face_crop_takes_the_centre_square():
    _, camera = sample_faces()
    square = cv2.resize(camera, (48, 48))
    wide = np.zeros((48, 100), np.uint8)
    wide[:, 26:74] = square  # centred: (100 - 48) // 2 = 26
    np.testing.assert_array_equal(face_crop(wide), square)
    np.testing.assert_array_equal(face_crop(wide.T.copy()), square.T)
    np.testing.assert_array_equal(face_crop(square), square)


def test_face_crop_gray_matches_colour_conversion():
    astronaut, _ = sample_faces()
    np.testing.assert_array_equal(face_crop(astronaut), face_crop(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)))


def test_to_gray_rejects_two_channels():
    with pytest.raises(ValueError, match="unsupported"):
        to_gray(np.zeros((10, 10, 2), np.uint8))


def test_normalise_range():
    crops = np.stack([np.zeros((48, 48), np.uint8), np.full((48, 48), 255, np.uint8)])
    batch = normalise(crops)
    assert batch.shape == (2, 1, 48, 48) and batch.dtype.is_floating_point
    assert batch[0].max().item() == pytest.approx(-2.0) and batch[1].min().item() == pytest.approx(2.0)
