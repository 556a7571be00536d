"""`htaf datasets`: the registry as a table; --fetch loads (and downloads when needed)."""

from htaf.cli import main


def test_lists_every_registered_dataset(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("breast_cancer", "telco_churn", "heloc", "wine_quality", "abalone", "teacher"):
        assert name in out
    assert "heloc_dataset_v1.csv" in out and "csv:PATH" in out
    assert "teacher: n=2000, d=20, seed=None, flip=0.0" in out  # options with their defaults


def test_fetch_of_a_file_already_present_needs_no_network(tmp_path, capsys):
    rows = ["M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15"] * 20
    rows += ["F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21,9"] * 20
    (tmp_path / "abalone.data").write_text("\n".join(rows) + "\n")
    assert main(["datasets", "--fetch", "abalone", "--data-dir", str(tmp_path)]) == 0
    assert "abalone" in capsys.readouterr().out


def test_unknown_dataset_is_bad_input(capsys):
    assert main(["datasets", "--fetch", "breast_cancr"]) == 2
    assert "did you mean breast_cancer" in capsys.readouterr().err
