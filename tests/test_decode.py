"""Decoding: pixel limit, EXIF orientation, and every Pillow mode to 1 or 3 uint8 channels."""

import numpy as np
import pytest
from PIL import Image

from visionops.data.decode import load_image, load_resized
from visionops.errors import VisionOpsError


def test_sixteen_bit_grey_is_rescaled_not_clipped_to_white(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 15).astype(np.uint16)  # 0..61425
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    pixels = load_image(path, 1)[..., 0]
    assert pixels.min() == 0 and pixels.max() == 255 and 100 < pixels.mean() < 155


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rotated.jpg"
    wide.save(path, exif=exif)
    assert load_image(path, 3).shape == (40, 20, 3)


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "CMYK", "L", "1"])
def test_any_mode_becomes_the_configured_channels(tmp_path, mode):
    path = tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.new(mode, (9, 7)).save(path)
    assert load_image(path, 3).shape == (7, 9, 3) and load_image(path, 1).shape == (7, 9, 1)
    assert load_image(path, 3).dtype == np.uint8


def test_palette_with_transparency_converts_without_warning(tmp_path, recwarn):
    img = Image.new("P", (4, 4))
    img.info["transparency"] = 0
    path = tmp_path / "t.png"
    img.save(path, transparency=0)
    load_image(path, 3)
    assert not [w for w in recwarn if "Palette images with Transparency" in str(w.message)]


def test_decompression_bomb_header_names_the_file(tmp_path):
    side = int(Image.MAX_IMAGE_PIXELS**0.5) + 100
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # 1-bit: a small file with a huge header
    with pytest.raises(VisionOpsError, match=r"bomb\.png: over the .* pixel limit") as err:
        load_image(path, 1)
    assert "remove the file" in err.value.fix


def test_load_resized_matches_a_full_decode_and_applies_exif(tmp_path):
    """JPEG draft decoding (a reduced DCT scale) stays within a few grey levels of decoding in
    full and resizing, even on sharp-edged blocks; EXIF orientation comes before the resize."""
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), np.ones((20, 20, 1), np.uint8))
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    Image.fromarray(base).save(path, quality=95, exif=exif)
    small = load_resized(path, 3, 64)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    full = Image.fromarray(load_image(path, 3)).resize((64, 64), Image.Resampling.BILINEAR)
    assert np.abs(small.astype(int) - np.asarray(full, dtype=int)).mean() < 6
    assert load_resized(path, 1, 16).shape == (16, 16, 1)
    with open(path, "rb") as fh:  # a file object (uploaded bytes) decodes the same
        assert np.array_equal(load_resized(fh, 3, 64), small)
