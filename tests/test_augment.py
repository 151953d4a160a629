"""Batched augmentation on real face crops: determinism, each operation's effect, mixup / cutmix targets."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from ferkit.data.augment import NO_AUGMENT, AugmentConfig, Augmenter, mix_batch

FULL = AugmentConfig(rotation=15, shift=0.1, zoom=0.1, shear=0.1, hflip=True, crop_pad=4, brightness=0.2,
                     contrast=0.3, erasing=0.5)


@pytest.fixture(scope="module")
def batch(face_crops):
    """8 real face crops as float N×1×48×48 in [0, 1]."""
    return torch.from_numpy(face_crops).float().unsqueeze(1) / 255.0


def run(config, images, seed=0):
    return Augmenter(config)(images, torch.Generator().manual_seed(seed))


def changed(a, b, tol=1e-3):
    """Per image: does b differ from a anywhere by more than tol?"""
    return ((a - b).abs().amax(dim=(1, 2, 3)) > tol)


def test_same_seed_same_output(batch):
    assert torch.equal(run(FULL, batch, seed=3), run(FULL, batch, seed=3))


def test_different_seed_different_output(batch):
    a, b = run(FULL, batch, seed=1), run(FULL, batch, seed=2)
    assert changed(a, b).all()


def test_generator_state_advances(batch):
    gen = torch.Generator().manual_seed(0)
    augment = Augmenter(FULL)
    first, second = augment(batch, gen), augment(batch, gen)
    assert changed(first, second).all()  # two epochs see different versions


def test_input_not_modified(batch):
    before = batch.clone()
    run(FULL, batch)
    assert torch.equal(batch, before)


@pytest.mark.parametrize("config", [FULL, NO_AUGMENT, AugmentConfig()], ids=["full", "none", "default"])
def test_shape_dtype_and_range(batch, config):
    out = run(config, batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.isfinite(out).all()


def test_no_augment_is_identity(batch):
    out = run(NO_AUGMENT, batch)
    assert torch.equal(out, batch)


# Each operation alone (on top of NO_AUGMENT); 'every' = it must change every image of the batch.
OPS = {
    "rotation": (dict(rotation=20), True),
    "shift": (dict(shift=0.15), True),
    "zoom": (dict(zoom=0.2), True),
    "shear": (dict(shear=0.3), True),
    "hflip": (dict(hflip=True), False),
    "crop_pad": (dict(crop_pad=4), False),
    "brightness": (dict(brightness=0.2), True),
    "contrast": (dict(contrast=0.4), True),
    "erasing": (dict(erasing=1.0), True),
}


@pytest.mark.parametrize("op", list(OPS))
def test_each_op_changes_the_image(batch, op):
    options, every = OPS[op]
    out = run(replace(NO_AUGMENT, **options), batch)
    diff = changed(batch, out)
    assert diff.all() if every else diff.any(), f"{op} left {int((~diff).sum())} of {len(batch)} images unchanged"
    # and no operation replaces the face with something unrelated: most pixels stay near the original
    assert (out - batch).abs().mean() < 0.25


def test_hflip_only_gives_image_or_its_mirror(batch):
    config = replace(NO_AUGMENT, hflip=True)
    flipped = 0
    for seed in range(4):
        out = run(config, batch, seed)
        for image, result in zip(batch, out):
            same = (result - image).abs().max().item()
            mirror = (result - image.flip(-1)).abs().max().item()
            assert min(same, mirror) < 1e-5  # sampling at exact pixel centres: only float rounding
            assert torch.equal((result * 255).round(), (image * 255).round()) or \
                torch.equal((result * 255).round(), (image.flip(-1) * 255).round())
            flipped += mirror < same
    assert 0 < flipped < 4 * len(batch)  # about half are flipped


def test_crop_pad_is_a_window_of_the_reflect_padded_image(batch):
    pad = 3
    out = run(replace(NO_AUGMENT, crop_pad=pad), batch)
    padded = F.pad(batch, (pad, pad, pad, pad), mode="reflect")
    for image, result in zip(padded, out):
        windows = [(oy, ox) for oy in range(2 * pad + 1) for ox in range(2 * pad + 1)
                   if torch.equal(image[:, oy:oy + 48, ox:ox + 48], result)]
        assert windows, "the crop is not a 48x48 window of the padded image"


def test_brightness_is_an_offset_per_image(batch):
    out = run(replace(NO_AUGMENT, brightness=0.1), batch)
    for image, result in zip(batch, out):
        inside = (result > 0) & (result < 1)  # pixels not clipped
        offset = (result - image)[inside]
        assert offset.abs().max() <= 0.1 + 1e-6
        assert offset.max() - offset.min() < 1e-5


def test_contrast_keeps_the_mean_of_unclipped_images(batch):
    out = run(replace(NO_AUGMENT, contrast=0.1), batch)
    for image, result in zip(batch, out):
        if ((result <= 0) | (result >= 1)).any():
            continue
        assert abs(result.mean() - image.mean()) < 1e-5
        ratio = (result - result.mean()).std() / (image - image.mean()).std()
        assert 0.9 - 1e-4 <= ratio <= 1.1 + 1e-4


def test_erasing_is_one_rectangle_of_bounded_area(batch):
    out = run(replace(NO_AUGMENT, erasing=1.0, erasing_area=(0.05, 0.1)), batch)
    for image, result in zip(batch, out):
        ys, xs = torch.nonzero((result - image).abs()[0] > 0, as_tuple=True)
        assert len(ys) > 0
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert box <= 0.1 * 48 * 48 * 1.25 + 20  # rounding of the side lengths
        assert len(ys) >= 0.9 * box  # nearly every pixel in the box is new noise


def test_erasing_probability_zero_point_five_erases_some(batch):
    big = batch.repeat(8, 1, 1, 1)
    out = run(replace(NO_AUGMENT, erasing=0.5), big)
    share = changed(big, out, tol=0).float().mean().item()
    assert 0.25 < share < 0.75


def test_fill_zeros_brings_in_black_borders(batch):
    lifted = batch * 0.9 + 0.05  # no pure black pixel in the crops themselves...
    out = run(replace(NO_AUGMENT, zoom=0.3, fill="zeros"), lifted)
    assert (out == 0).any()    # ...so zeros come from the fill of zoomed-out images
    border = run(replace(NO_AUGMENT, zoom=0.3, fill="border"), lifted)
    assert (border >= 0.05 - 1e-6).all()


def test_config_round_trip_and_unknown_option():
    values = FULL.to_dict()
    assert AugmentConfig.from_dict(values) == FULL
    assert AugmentConfig.from_dict(None) == AugmentConfig()
    with pytest.raises(ValueError, match="rotaton"):
        AugmentConfig.from_dict({"rotaton": 5})


# ------------------------------------------------------------------------------------------- mixup / cutmix


def _constant_batch(n=8, classes=8):
    """Image i is constant i/10 and has one-hot target i: the mix can be read back from the pixels."""
    values = torch.arange(n, dtype=torch.float32) / 10
    images = values.view(n, 1, 1, 1).expand(n, 1, 48, 48).clone()
    return images, torch.eye(classes)[:n], values


@pytest.mark.parametrize("options", [dict(mixup=0.4), dict(cutmix=1.0), dict(mixup=0.2, cutmix=1.0)],
                         ids=["mixup", "cutmix", "both"])
def test_mix_batch_targets_match_pixels(options):
    config = AugmentConfig(**options)
    for seed in range(5):
        images, targets, values = _constant_batch()
        mixed, mixed_targets = mix_batch(images, targets, config, torch.Generator().manual_seed(seed))
        assert mixed.shape == images.shape and mixed_targets.shape == targets.shape
        assert torch.allclose(mixed_targets.sum(dim=1), torch.ones(8), atol=1e-6)
        assert (mixed_targets >= 0).all()
        # the share of each source image in the pixels equals its weight in the target
        expected_mean = mixed_targets @ values
        assert torch.allclose(mixed.mean(dim=(1, 2, 3)), expected_mean, atol=1e-5)


def test_cutmix_pastes_one_rectangle_of_the_target_share(face_crops):
    images = torch.from_numpy(face_crops).float().unsqueeze(1) / 255.0
    targets = torch.eye(8)  # every image its own class, so own weight = share of pixels kept
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        mixed, mixed_targets = mix_batch(images, targets, AugmentConfig(cutmix=1.0), gen)
        assert torch.allclose(mixed_targets.sum(dim=1), torch.ones(8))
        for i in range(8):
            pasted_share = 1 - mixed_targets[i, i].item()
            ys, xs = torch.nonzero(mixed[i, 0] != images[i, 0], as_tuple=True)
            if pasted_share == 0:
                assert len(ys) == 0
                continue
            box = ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)).item()
            assert box <= pasted_share * 48 * 48 + 1e-3  # the changed pixels lie in the pasted box
            assert len(ys) >= 0.5 * pasted_share * 48 * 48  # and a different face changes most of it


def test_mix_batch_deterministic(face_crops):
    images = torch.from_numpy(face_crops).float().unsqueeze(1) / 255.0
    targets = torch.eye(7)[[0, 1, 2, 3, 4, 5, 6, 3]]
    config = AugmentConfig(mixup=0.4, cutmix=1.0)
    a = mix_batch(images, targets, config, torch.Generator().manual_seed(7))
    b = mix_batch(images, targets, config, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = mix_batch(images, targets, config, torch.Generator().manual_seed(8))
    assert not torch.equal(a[1], c[1])


def test_mix_batch_off(face_crops):
    images = torch.from_numpy(face_crops).float().unsqueeze(1) / 255.0
    targets = torch.eye(7)[[0, 1, 2, 3, 4, 5, 6, 3]]
    for config in (AugmentConfig(), AugmentConfig(mixup=0.4, mix_prob=0.0)):
        out, out_targets = mix_batch(images, targets, config, torch.Generator().manual_seed(0))
        assert torch.equal(out, images) and torch.equal(out_targets, targets)
