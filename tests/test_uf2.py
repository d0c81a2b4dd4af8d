import os
import struct

import pytest

from fwtool.image import uf2


def test_round_trip_and_fields():
    data = os.urandom(1000)
    image = uf2.from_bin(data, 0x10000000)
    assert len(image) == 4 * 512
    blocks = uf2.validate(image, uf2.RP2040_FAMILY_ID, 0x10000000, expect=data)
    for n, b in enumerate(blocks):
        assert (b.flags, b.address, b.payload_size, b.block_no, b.num_blocks, b.family_id) == (
            0x2000, 0x10000000 + 256 * n, 256, n, 4, 0xE48BFF56)
    raw = image[:512]
    assert struct.unpack_from("<II", raw, 0) == (0x0A324655, 0x9E5D5157)
    assert struct.unpack_from("<I", raw, 508) == (0x0AB16F30,)
    assert raw[32 + 256:508] == bytes(476 - 256)  # data area beyond the payload is zero
    base, img = uf2.to_image(blocks)
    assert base == 0x10000000 and img[:1000] == data and img[1000:] == bytes(24)


def test_exact_multiple_of_page_has_no_extra_block():
    assert len(uf2.from_bin(bytes(512), 0x10000000)) == 2 * 512


def test_wrong_family_refused():
    image = uf2.from_bin(bytes(300), 0x10000000, family_id=0xE48BFF59)
    with pytest.raises(uf2.UF2Error, match="family"):
        uf2.validate(image, uf2.RP2040_FAMILY_ID, 0x10000000)


def test_gap_and_numbering_and_magic_detected():
    image = bytearray(uf2.from_bin(bytes(768), 0x10000000))
    gap = bytearray(image)
    struct.pack_into("<I", gap, 512 + 12, 0x10000400)  # block 1 jumps ahead
    with pytest.raises(uf2.UF2Error, match="contiguous"):
        uf2.validate(bytes(gap), uf2.RP2040_FAMILY_ID, 0x10000000)
    num = bytearray(image)
    struct.pack_into("<I", num, 512 + 24, 7)
    with pytest.raises(uf2.UF2Error, match="numbered"):
        uf2.validate(bytes(num), uf2.RP2040_FAMILY_ID, 0x10000000)
    mag = bytearray(image)
    mag[1024 + 508] ^= 0xFF
    with pytest.raises(uf2.UF2Error, match="magic"):
        uf2.validate(bytes(mag), uf2.RP2040_FAMILY_ID, 0x10000000)
    with pytest.raises(uf2.UF2Error, match="multiple"):
        uf2.parse(bytes(image[:700]))


def test_content_mismatch_detected():
    data = bytes(range(256)) * 2
    image = bytearray(uf2.from_bin(data, 0x10000000))
    image[32 + 5] ^= 1
    with pytest.raises(uf2.UF2Error, match="differs"):
        uf2.validate(bytes(image), uf2.RP2040_FAMILY_ID, 0x10000000, expect=data)
