"""The input shape's checks and parsing (models.net_geometry), shared by the commands."""

from __future__ import annotations

import argparse

import pytest

from models.net_geometry import ENCODER_STRIDE, INPUT_SHAPE, check_input_shape, parse_input_shape


def test_input_shape_is_parsed_and_checked():
    assert parse_input_shape("320x640") == (320, 640)
    assert parse_input_shape("256X512") == (256, 512)
    for bad in ("320x650", "0x640", "320", "axb", "-16x32"):
        with pytest.raises(argparse.ArgumentTypeError, match="320x640"):
            parse_input_shape(bad)


def test_the_default_input_shape_passes_its_own_check():
    check_input_shape(INPUT_SHAPE)
    assert ENCODER_STRIDE == 16
    with pytest.raises(ValueError, match="multiples of 16"):
        check_input_shape((320, 650))
