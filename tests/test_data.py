"""htaf.data: registry, bundled datasets, shared preprocessing and user CSVs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from htaf.data import DataError, Dataset, available, load


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # No stray $HTAF_DATA or ./data may leak into a test.
    monkeypatch.delenv("HTAF_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def toy_csv(path, n=60, seed=0, sep=","):
    """Numeric x1, x2, categorical color, string label (yes/no)."""
    rng = np.random.default_rng(seed)
    lines = [sep.join(["x1", "x2", "color", "label"])]
    for i in range(n):
        color = ["red", "green", "blue"][i % 3]
        label = "yes" if i % 2 else "no"
        lines.append(sep.join([f"{rng.normal():.4f}", f"{rng.uniform(5, 9):.3f}", color, label]))
    return write(path, lines)


# --- registry ---------------------------------------------------------------------------------


def test_available_lists_every_source_with_metadata():
    info = {d["name"]: d for d in available()}
    expected = {"breast_cancer", "digits", "wine", "diabetes", "teacher", "telco_churn", "heloc"}
    expected |= {"wine_quality", "wine_quality_red", "wine_quality_white", "abalone"}
    assert expected <= set(info)
    assert info["heloc"]["files"] == ["heloc_dataset_v1.csv"]
    assert info["abalone"]["task"] == "regression"
    assert info["teacher"]["options"] == {"n": 2000, "d": 20, "seed": None, "flip": 0.0}
    for d in info.values():
        assert {"name", "task", "description", "source", "files"} <= set(d)


def test_bad_names_and_options_raise_dataerror():
    with pytest.raises(DataError, match="did you mean breast_cancer"):
        load("breast_cancr")
    with pytest.raises(DataError, match="no option"):
        load("wine", colour="red")
    with pytest.raises(DataError, match="fixed target"):
        load("wine", target="alcohol")
    with pytest.raises(DataError, match="impute"):
        load("wine", impute="median")
    with pytest.raises(DataError, match="split sizes"):
        load("wine", val_size=0.5, test_size=0.5)
    assert issubclass(DataError, ValueError)


# --- bundled ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, task, k, d",
    [
        ("breast_cancer", "binary", 2, 30),
        ("digits", "multiclass", 10, 64),
        ("wine", "multiclass", 3, 13),
    ],
)
def test_bundled_classification(name, task, k, d):
    ds = load(name)
    assert isinstance(ds, Dataset) and ds.task == task
    assert ds.n_classes == k and len(ds.class_names) == k and ds.n_features == d
    assert ds.X_train.dtype == np.float32 and ds.X_train.ndim == 2
    assert ds.y_train.dtype == np.int64 and set(np.unique(ds.y_train)) == set(range(k))
    n = sum(ds.meta["split_sizes"].values())
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == n
    assert ds.meta["split_seed"] == 0 and ds.meta["file"] is None


def test_sklearn_label_order_is_kept():
    assert load("breast_cancer").class_names == ["malignant", "benign"]


def test_splits_are_deterministic_and_seeded():
    a, b, c = load("wine", split_seed=3), load("wine", split_seed=3), load("wine", split_seed=4)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)


def test_splits_are_stratified():
    ds = load("breast_cancer")
    overall = np.concatenate([ds.y_train, ds.y_val, ds.y_test]).mean()
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert abs(y.mean() - overall) < 0.02
    sizes = ds.meta["split_sizes"]
    assert sizes["test"] == 114 and sizes["val"] == 86  # 20 % and 15 % of 569


def test_standardization_fitted_on_train_only():
    ds = load("wine")
    assert np.allclose(ds.X_train.mean(0), 0, atol=1e-5)
    assert np.allclose(ds.X_train.std(0), 1, atol=1e-4)
    assert not np.allclose(ds.X_val.mean(0), 0, atol=1e-3)
    assert not np.allclose(ds.X_test.mean(0), 0, atol=1e-3)


def test_constant_columns_get_std_one():
    ds = load("digits")  # pixel_0_0 is always 0
    j = ds.feature_names.index("pixel_0_0")
    assert np.all(ds.X_train[:, j] == 0) and np.isfinite(ds.X_train).all()


def test_regression_target_standardized_and_invertible():
    ds = load("diabetes")
    assert ds.n_classes is None and ds.class_names is None and ds.y_train.dtype == np.float32
    assert abs(ds.y_train.mean()) < 1e-5 and abs(ds.y_train.std() - 1) < 1e-4
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    back = np.sort(ds.inverse_target(y.astype(np.float64)))
    assert np.allclose(back, np.sort(load_diabetes().target), atol=1e-3)
    assert np.allclose(ds.inverse_target([0.0]), [ds.meta["y_mean"]])
    with pytest.raises(DataError):
        load("wine").inverse_target(np.zeros(2))


def test_teacher_balanced_seeded_and_sized():
    ds = load("teacher", n=400, d=7, split_seed=1)
    assert ds.n_features == 7 and sum(ds.meta["split_sizes"].values()) == 400
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert y.mean() == 0.5  # median threshold: exactly balanced for even n
    same, other = load("teacher", n=400, d=7, split_seed=1), load("teacher", n=400, d=7)
    assert np.array_equal(ds.X_train, same.X_train)
    assert not np.array_equal(ds.X_train, other.X_train)
    fixed = load("teacher", n=400, d=7, seed=5, split_seed=2)
    assert fixed.meta["teacher"]["d"] == 7 and load("teacher").n_features == 20
    with pytest.raises(DataError, match="n >= 10"):
        load("teacher", n=3)


def _all_rows(ds):
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    order = np.argsort(X[:, 0])  # standardization is per-column affine: the order survives
    return X[order], y[order]


def test_teacher_flip_adds_label_noise_to_the_same_inputs():
    X0, y0 = _all_rows(load("teacher", n=4000, d=5, seed=3))
    X1, y1 = _all_rows(load("teacher", n=4000, d=5, seed=3, flip=0.2))
    for j in range(5):  # the same points, up to each split's standardization
        assert np.corrcoef(X0[:, j], X1[:, j])[0, 1] > 0.9999
    assert 0.18 < (y0 != y1).mean() < 0.22
    assert load("teacher", n=100, flip=0.2).meta["teacher"]["flip"] == 0.2
    for bad in (0.5, -0.1, "x", True):
        with pytest.raises(DataError, match="flip must be a number in"):
            load("teacher", n=100, flip=bad)


# --- csv:PATH ---------------------------------------------------------------------------------


def test_csv_infers_types_onehot_and_binary(tmp_path):
    ds = load(f"csv:{toy_csv(tmp_path / 't.csv')}", target="label")
    assert ds.task == "binary" and ds.class_names == ["no", "yes"]
    assert ds.feature_names == ["x1", "x2", "color=blue", "color=green", "color=red"]
    onehot = ds.X_train[:, 2:]
    assert set(np.unique(onehot)) == {0.0, 1.0} and np.all(onehot.sum(1) == 1)
    assert ds.meta["categories"] == {"color": ["blue", "green", "red"]}
    assert abs(ds.y_train.mean() - 0.5) < 0.05  # stratified


def test_csv_semicolon_is_sniffed_and_drop_option(tmp_path):
    path = toy_csv(tmp_path / "t.csv", sep=";")
    ds = load(f"csv:{path}", target="label", drop=["color"])
    assert ds.feature_names == ["x1", "x2"]


def test_csv_unseen_category_is_all_zeros(tmp_path):
    rows = ["a,cat,y"] + [f"{i},{['u', 'v'][i % 2]},{i % 2}" for i in range(40)]
    rows[5] = "4,rare,0"  # one row with a category that may miss the training split
    path = write(tmp_path / "r.csv", rows)
    for seed in range(30):
        ds = load(f"csv:{path}", target="y", split_seed=seed)
        if "rare" not in ds.meta["categories"]["cat"]:
            break
    else:
        pytest.fail("no seed put the rare row outside the training split")
    cats = [j for j, f in enumerate(ds.feature_names) if f.startswith("cat=")]
    held_out = np.concatenate([ds.X_val, ds.X_test])[:, cats]
    assert (held_out.sum(1) == 0).sum() == 1 and (ds.X_train[:, cats].sum(1) == 1).all()


@pytest.mark.parametrize(
    "values, task, k",
    [
        ([i % 3 for i in range(60)], "multiclass", 3),
        ([i * 0.37 for i in range(60)], "regression", None),
        ([i % 25 for i in range(60)], "regression", None),
        (["b", "a", "c"] * 20, "multiclass", 3),
    ],
)
def test_csv_task_inference(tmp_path, values, task, k):
    path = write(tmp_path / "t.csv", ["x,y"] + [f"{i},{v}" for i, v in enumerate(values)])
    ds = load(f"csv:{path}", target="y")
    assert ds.task == task and ds.n_classes == k
    if k == 3 and isinstance(values[0], str):
        assert ds.class_names == ["a", "b", "c"]


def test_csv_task_override(tmp_path):
    path = write(tmp_path / "t.csv", ["x,y"] + [f"{i},{i % 3}" for i in range(60)])
    assert load(f"csv:{path}", target="y", task="regression").task == "regression"
    with pytest.raises(DataError, match="binary"):
        load(f"csv:{path}", target="y", task="binary")
    path = write(tmp_path / "s.csv", ["x,y"] + [f"{i},{'ab'[i % 2]}" for i in range(60)])
    with pytest.raises(DataError, match=r"row 1: regression target column 'y' is not numeric"):
        load(f"csv:{path}", target="y", task="regression")


def test_csv_missing_cells_error_impute_and_drop(tmp_path):
    rows = ["x1,x2,color,label"] + [f"{i},{i * 2},{'rg'[i % 2]},{i % 2}" for i in range(50)]
    rows[7] = "6,,r,0"  # data row 7: x2 missing
    rows[9] = "8,16,,0"  # data row 9: color missing
    path = write(tmp_path / "m.csv", rows)
    with pytest.raises(DataError, match=r"m\.csv, row 7, column 'x2': missing value"):
        load(f"csv:{path}", target="label")
    dropped = load(f"csv:{path}", target="label", impute="drop")
    assert dropped.meta["rows_dropped"] == {"missing values": 2}
    assert sum(dropped.meta["split_sizes"].values()) == 48
    filled = load(f"csv:{path}", target="label", impute="mean")
    X = np.concatenate([filled.X_train, filled.X_val, filled.X_test])
    assert np.isfinite(X).all() and len(X) == 50
    assert np.sum(np.abs(X[:, 1]) < 1e-6) == 1  # the imputed train mean standardizes to 0
    assert np.all(X[:, 2:].sum(1) == 1)  # the missing colour got the most frequent category


def test_csv_nan_and_inf_cells(tmp_path):
    rows = ["a,b,y"] + [f"{i},{i},{i % 2}" for i in range(40)]
    rows[3] = "2,nan,0"
    path = write(tmp_path / "n.csv", rows)
    with pytest.raises(DataError, match=r"row 3, column 'b': missing"):
        load(f"csv:{path}", target="y")
    rows[3] = "2,inf,0"
    path = write(tmp_path / "n.csv", rows)
    for impute in (None, "mean", "drop"):  # Inf is an error whatever the imputation
        with pytest.raises(DataError, match=r"n\.csv, row 3, column 'b': infinite"):
            load(f"csv:{path}", target="y", impute=impute)


def test_csv_missing_target_value(tmp_path):
    rows = ["a,y"] + [f"{i},{i % 2}" for i in range(40)]
    rows[4] = "3,"
    path = write(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=r"row 4, column 'y': missing target"):
        load(f"csv:{path}", target="y")
    ds = load(f"csv:{path}", target="y", impute="mean")
    assert ds.meta["rows_dropped"] == {"missing target": 1}


def test_csv_file_errors(tmp_path):
    path = toy_csv(tmp_path / "t.csv")
    with pytest.raises(DataError, match="target="):
        load(f"csv:{path}")
    with pytest.raises(DataError, match=r"'nope' not found; available columns: x1, x2, color"):
        load(f"csv:{path}", target="nope")
    with pytest.raises(DataError, match=r"absent\.csv: file not found"):
        load(f"csv:{tmp_path / 'absent.csv'}", target="y")
    with pytest.raises(DataError, match="empty"):
        load(f"csv:{write(tmp_path / 'e.csv', [''])}", target="y")
    with pytest.raises(DataError, match="no data rows"):
        load(f"csv:{write(tmp_path / 'h.csv', ['a,y'])}", target="y")
    ragged = write(tmp_path / "g.csv", ["a,b,y", "1,2,0", "3,4,1", "5,6,1,9"])
    with pytest.raises(DataError, match=r"g\.csv: malformed CSV, line 4 has 4 fields"):
        load(f"csv:{ragged}", target="y")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match=r"bin\.csv: cannot read"):
        load(f"csv:{tmp_path / 'bin.csv'}", target="y")
    with pytest.raises(DataError, match="duplicate"):
        load(f"csv:{write(tmp_path / 'd.csv', ['a,a,y', '1,2,0'])}", target="y")


def test_csv_single_class_and_too_small_class(tmp_path):
    path = write(tmp_path / "one.csv", ["a,y"] + [f"{i},same" for i in range(30)])
    with pytest.raises(DataError, match=r"one\.csv: target column 'y' has a single class 'same'"):
        load(f"csv:{path}", target="y")
    path = write(tmp_path / "lone.csv", ["a,y"] + [f"{i},{'x' if i else 'z'}" for i in range(30)])
    with pytest.raises(DataError, match="cannot split"):
        load(f"csv:{path}", target="y")


def test_no_rows_left_after_dropping(tmp_path):
    path = write(tmp_path / "g.csv", ["a,b,y"] + [f"{i},,{i % 2}" for i in range(10)])
    with pytest.raises(DataError, match=r"g\.csv: no rows left \(dropped: \{'missing values': 10"):
        load(f"csv:{path}", target="y", impute="drop")
    path = write(tmp_path / "t.csv", ["a,y"] + [f"{i}," for i in range(10)])
    with pytest.raises(DataError, match=r"no rows left.*missing target"):
        load(f"csv:{path}", target="y", impute="mean")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow warning comes first
def test_values_too_large_to_standardize(tmp_path):
    path = write(tmp_path / "b.csv", ["a,b,y"] + [f"{i},1.7e308,{i % 2}" for i in range(40)])
    with pytest.raises(DataError, match=r"b\.csv, row \d+, column 'b': values too large"):
        load(f"csv:{path}", target="y")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"val_size": "0.1"}, "split sizes"),
        ({"test_size": None}, "split sizes"),
        ({"split_seed": -1}, "split_seed"),
        ({"split_seed": "3"}, "split_seed"),
        ({"n": "abc"}, "integers n >= 10"),
        ({"n": 100.5}, "integers n >= 10"),
        ({"seed": "x"}, "seed must be"),
    ],
)
def test_bad_load_arguments_are_dataerrors(kwargs, match):
    with pytest.raises(DataError, match=match):
        load("teacher", **kwargs)
