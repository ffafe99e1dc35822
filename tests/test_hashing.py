"""inv_kernels.hashing: the one hasher of settings, whose keys name the cache entries (generated sets, feature cache,
study stages); the keys stay those the caches were written with."""

from pathlib import Path

import pytest

from inv_kernels.hashing import config_hash, digest_lines

CONFIG = {"b": [2, 3], "a": 1, "s": "x"}


def test_key_order_does_not_matter_and_values_do():
    assert config_hash(CONFIG) == config_hash({"s": "x", "a": 1, "b": [2, 3]})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_lengths_and_the_keys_the_caches_hold():
    assert config_hash(CONFIG) == "94f4ec06f4120b55"  # study stages (16, the default)
    assert config_hash(CONFIG, length=24) == "94f4ec06f4120b55337fb300"  # feature cache
    assert config_hash(CONFIG, length=12) == "94f4ec06f412"
    assert len(config_hash({}, length=64)) == 64


def test_values_json_cannot_hold_enter_as_their_text():
    assert config_hash({"data": Path("/x/y")}) == config_hash({"data": "/x/y"})


@pytest.mark.parametrize("length", [0, 65, 2.5, True])
def test_length_out_of_range(length):
    with pytest.raises(ValueError, match=r"config_hash: length must be an integer in \[1, 64\], got"):
        config_hash(CONFIG, length=length)


def test_a_file_list_digest_follows_the_order_and_the_lines():
    assert digest_lines(["x.png", "y.png"]) != digest_lines(["y.png", "x.png"])
    assert digest_lines(["x.png", "y.png"]) == digest_lines(iter(["x.png", "y.png"])) and len(digest_lines([])) == 64
