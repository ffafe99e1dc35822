"""inv_kernels.feature_cache, the cache shared by downstream features and measurement: keys, digests, storage dtype,
entries that are damaged or made for other settings."""

import pytest
import torch

from inv_kernels.feature_cache import (
    config_key,
    digest_tensors,
    entry_path,
    read_entry,
    to_storage,
    write_entry,
)


def test_keys_and_digests_follow_the_content():
    assert config_key({"a": 1, "b": [2, 3]}) == config_key({"b": [2, 3], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2}) and len(config_key({})) == 24
    grid = {"angle": torch.linspace(0, 360, 257)[:256], "flag": torch.tensor([True, False])}
    same = {"flag": grid["flag"].clone(), "angle": grid["angle"].clone()}
    assert digest_tensors(grid) == digest_tensors(same)
    same["angle"][7] += 1e-3
    assert digest_tensors(grid) != digest_tensors(same)
    assert digest_tensors({"a": torch.zeros(2, 3)}) != digest_tensors({"a": torch.zeros(3, 2)})


def test_storage_dtype():
    x = torch.randn(4, 5)
    assert to_storage(x).dtype == torch.float16
    torch.testing.assert_close(to_storage(x).float(), x, rtol=1e-3, atol=1e-4)
    assert torch.equal(to_storage(x, torch.float32), x)
    big = x.clone()
    big[1, 2] = 1e5  # beyond fp16's 65504
    assert to_storage(big).dtype == torch.float32 and torch.equal(to_storage(big), big)
    with pytest.raises(ValueError, match="float16 or torch.float32"):
        to_storage(x, torch.bfloat16)


def test_entries_round_trip_and_reject_damage_or_other_settings(tmp_path):
    config = {"model_id": "m@0123", "out_size": 16}
    path = entry_path(tmp_path, "feats", config)
    assert path.parent == tmp_path and path.name.startswith("feats-")
    assert read_entry(path, config, op="t") is None  # absent: no warning
    features = to_storage(torch.randn(3, 8))
    write_entry({"config": config, "features": features}, path)
    assert torch.equal(read_entry(path, config, op="t")["features"], features)
    with pytest.warns(UserWarning, match="t: feature cache .* was made for other settings"):
        assert read_entry(path, {**config, "out_size": 12}, op="t") is None
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(UserWarning, match="t: ignoring unreadable feature cache"):
        assert read_entry(path, config, op="t") is None
    with pytest.raises(ValueError, match="must hold its 'config'"):
        write_entry({"features": features}, path)


def test_a_new_cache_folder_is_private_and_stale_temporaries_go_at_the_first_write(tmp_path):
    import os

    from inv_kernels.io import STALE_AFTER_S

    folder = tmp_path / "shared" / "features"
    config = {"model_id": "m@0123"}
    write_entry({"config": config, "features": torch.zeros(2)}, entry_path(folder, "feats", config))
    assert folder.stat().st_mode & 0o777 == 0o700
    other = tmp_path / "other"  # a folder holding an interrupted write's temporary and one being written now
    other.mkdir()
    stale, fresh = other / ".feats-x.pt.a1b2c3d4.tmp", other / ".feats-y.pt.e5f6g7h8.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"x")
    old = os.path.getmtime(stale) - 2 * STALE_AFTER_S
    os.utime(stale, (old, old))
    write_entry({"config": config, "features": torch.zeros(2)}, entry_path(other, "feats", config))
    assert not stale.exists() and fresh.exists()
