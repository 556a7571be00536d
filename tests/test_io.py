import json

from htaf.io import atomic_write_json


def test_atomic_write_json_sorts_keys_unless_told(tmp_path):
    obj = {"b": 1, "a": float("nan")}
    atomic_write_json(tmp_path / "sorted.json", obj)
    atomic_write_json(tmp_path / "kept.json", obj, sort_keys=False)
    assert list(json.loads((tmp_path / "sorted.json").read_text())) == ["a", "b"]
    kept = json.loads((tmp_path / "kept.json").read_text())
    assert list(kept) == ["b", "a"]
    assert kept["a"] is None
    assert not list(tmp_path.glob(".*.tmp"))
