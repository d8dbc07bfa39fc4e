"""The verification QR code: a valid PNG that decodes (zxing-cpp) to the exact verify URL."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from gateway.stamping.qr import MAX_QR_VERSION, MODULE_PIXELS, QrTooLarge, qr_png, qr_version

URL = (
    "https://verification.agency-govt.example/v/"
    "AFLEOWVHKRRUOTDHYLPEEB7JAAAAAKQDJVHUQAINB5JSQDCW7JM52BS7DUVAREPSD45M4IIA6VMGJDXFAPSKS7C7"
    "PMMP6RWAV7NUB6SAWEJJHSXLVWQZTXBNQKSE6PH2HEV7WQWAZRT6B7XUVUIBGZRZPWJNKUCCTWL4AAA"
)


def decode(png: bytes) -> list[zxingcpp.Barcode]:
    image = Image.open(io.BytesIO(png))
    image.load()  # checks every chunk's CRC and the zlib stream
    return zxingcpp.read_barcodes(image.convert("L"))


def test_png_decodes_to_the_url() -> None:
    png, version = qr_png(URL)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert version == qr_version(URL) <= MAX_QR_VERSION
    found = decode(png)
    assert len(found) == 1
    assert found[0].text == URL
    assert found[0].ec_level == "M"
    extra = found[0].extra
    assert isinstance(extra, dict) and int(extra["Version"]) == version
    side = (4 * version + 17 + 8) * MODULE_PIXELS
    assert Image.open(io.BytesIO(png)).size == (side, side)


@pytest.mark.parametrize("scale", [1, 3, 5])
def test_png_scales(scale: int) -> None:
    png, version = qr_png(URL, scale=scale)
    assert decode(png)[0].text == URL
    assert Image.open(io.BytesIO(png)).size[0] == (4 * version + 25) * scale


def test_png_is_small_and_one_bit() -> None:
    png, _ = qr_png(URL)
    image = Image.open(io.BytesIO(png))
    assert image.mode == "1"
    assert len(png) < 4000


def test_too_long_text_is_refused() -> None:
    with pytest.raises(QrTooLarge):
        qr_png("https://example.gov.xx/v/" + "A" * 700)
    with pytest.raises(QrTooLarge):
        qr_png("x" * 5000)  # beyond version 40
