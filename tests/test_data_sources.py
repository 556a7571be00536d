"""htaf.data real-file loaders, on small files written in each official format."""

from __future__ import annotations

import http.client
import io
import urllib.error
import urllib.request

import numpy as np
import pytest

from htaf.data import DataError, load
from htaf.data.heloc import FEATURES as HELOC_FEATURES
from htaf.data.telco import COLUMNS as TELCO_COLUMNS
from htaf.data.uci import WINE_COLUMNS


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("HTAF_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


def write_telco(d, n=60, name="WA_Fn-UseC_-Telco-Customer-Churn.csv", blank_tenure=0):
    """IBM format; tenure-0 customers have TotalCharges " " (the file's quirk)."""
    rng = np.random.default_rng(0)
    yn, svc = ["Yes", "No"], ["Yes", "No", "No internet service"]
    lines = [",".join(TELCO_COLUMNS)]
    for i in range(n):
        tenure = 0 if i % 10 == 0 else int(rng.integers(1, 72))
        monthly = round(float(rng.uniform(20, 110)), 2)
        total = " " if tenure == blank_tenure else f"{monthly * tenure:.2f}"
        row = [f"{1000 + i}-ABCDE", ["Male", "Female"][i % 2], str(i % 2), yn[i % 2],
               yn[i % 3 == 0], str(tenure), "Yes", ["No", "Yes", "No phone service"][i % 3],
               ["DSL", "Fiber optic", "No"][i % 3], *[svc[(i + k) % 3] for k in range(6)],
               ["Month-to-month", "One year", "Two year"][i % 3], yn[i % 2],
               ["Electronic check", "Mailed check", "Bank transfer (automatic)"][i % 3],
               f"{monthly}", total, "Yes" if i % 3 == 0 else "No"]  # fmt: skip
        lines.append(",".join(row))
    (d / name).write_text("\n".join(lines) + "\n")
    return d / name


def write_heloc(d, n=60):
    """FICO format: 3 all -9 rows; -7 in MSinceMostRecentDelq, -8 in NetFractionInstallBurden."""
    rng = np.random.default_rng(1)
    lines = [",".join(["RiskPerformance", *HELOC_FEATURES])]
    for i in range(n):
        x = [int(v) for v in rng.integers(0, 100, len(HELOC_FEATURES))]
        if i in (4, 20, 33):
            x = [-9] * len(HELOC_FEATURES)
        elif i % 5 == 0:
            x[HELOC_FEATURES.index("MSinceMostRecentDelq")] = -7
        elif i % 7 == 0:
            x[HELOC_FEATURES.index("NetFractionInstallBurden")] = -8
        lines.append(",".join([["Good", "Bad"][i % 2], *map(str, x)]))
    (d / "heloc_dataset_v1.csv").write_text("\n".join(lines) + "\n")


def write_wine(d, colour, n):
    """UCI format: semicolons and a quoted header."""
    rng = np.random.default_rng(len(colour))
    lines = [";".join(f'"{c}"' for c in WINE_COLUMNS)]
    for i in range(n):
        x = [f"{v:.3f}" for v in rng.uniform(0.1, 15, len(WINE_COLUMNS) - 1)]
        lines.append(";".join([*x, str(3 + i % 6)]))
    (d / f"winequality-{colour}.csv").write_text("\n".join(lines) + "\n")


ABALONE_ROW = "{},0.455,0.365,0.095,0.514,0.2245,0.101,0.15,{}"


def abalone_text(n=45):
    """UCI format: no header, Sex is M/F/I."""
    return "".join(ABALONE_ROW.format("MFI"[i % 3], 5 + i % 13) + "\n" for i in range(n))


# --- telco ------------------------------------------------------------------------------------


def test_telco_parses_official_format(tmp_path):
    write_telco(tmp_path)
    ds = load("telco_churn", data_dir=tmp_path)
    assert ds.task == "binary" and ds.class_names == ["No", "Yes"]
    assert not any(f.startswith("customerID") for f in ds.feature_names)
    assert {"tenure", "TotalCharges", "gender=Female", "Contract=Two year"} <= set(ds.feature_names)
    assert ds.meta["total_charges_blank_to_zero"] == 6  # rows with tenure 0
    assert ds.meta["file"].endswith("WA_Fn-UseC_-Telco-Customer-Churn.csv")
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert y.sum() == 20 and len(y) == 60  # Churn=Yes -> 1
    assert np.isfinite(ds.X_train).all()


def test_telco_alternative_filename_and_blank_with_tenure(tmp_path):
    write_telco(tmp_path, name="Telco-Customer-Churn.csv")
    assert load("telco_churn", data_dir=tmp_path).meta["file"].endswith("/Telco-Customer-Churn.csv")
    (tmp_path / "Telco-Customer-Churn.csv").unlink()
    write_telco(tmp_path, blank_tenure=None)  # no blanks at all
    assert load("telco_churn", data_dir=tmp_path).meta["total_charges_blank_to_zero"] == 0
    path = write_telco(tmp_path)
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[TELCO_COLUMNS.index("TotalCharges")] = " "  # blank although tenure > 0
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"Churn\.csv, row 2, column 'TotalCharges': missing"):
        load("telco_churn", data_dir=tmp_path)


def test_telco_wrong_file_is_rejected(tmp_path):
    (tmp_path / "Telco-Customer-Churn.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        load("telco_churn", data_dir=tmp_path)


# --- heloc ------------------------------------------------------------------------------------


def test_heloc_special_values(tmp_path):
    write_heloc(tmp_path)
    ds = load("heloc", data_dir=tmp_path)
    assert ds.class_names == ["Good", "Bad"]  # Bad is the positive class 1
    assert ds.meta["rows_dropped"] == {"no bureau record (all features -9)": 3}
    assert ds.meta["n_rows_read"] == 60 and sum(ds.meta["split_sizes"].values()) == 57
    indicators = ["MSinceMostRecentDelq_missing", "NetFractionInstallBurden_missing"]
    assert ds.meta["special_value_indicators"] == indicators
    assert ds.n_features == 23 + 2 and ds.feature_names[-2:] == indicators
    assert np.isfinite(ds.X_train).all()
    # special cells hold the train median of the genuine values (median survives scaling)
    j, k = ds.feature_names.index("MSinceMostRecentDelq"), ds.feature_names.index(indicators[0])
    special = ds.X_train[:, k] > ds.X_train[:, k].min()
    assert special.sum() > 0
    assert np.allclose(ds.X_train[special, j], np.median(ds.X_train[~special, j]), atol=1e-5)


def test_heloc_cannot_be_downloaded(tmp_path):
    with pytest.raises(DataError, match=r"heloc_dataset_v1\.csv.*FICO licence"):
        load("heloc", data_dir=tmp_path, download=True)


# --- wine quality / abalone -------------------------------------------------------------------


def test_wine_quality_variants(tmp_path):
    write_wine(tmp_path, "red", 40)
    write_wine(tmp_path, "white", 50)
    both = load("wine_quality", data_dir=tmp_path)
    assert both.task == "regression" and both.feature_names[0] == "fixed acidity"
    assert both.feature_names[-1] == "is_red" and both.n_features == 12
    assert sum(both.meta["split_sizes"].values()) == 90 and len(both.meta["files"]) == 2
    assert abs(both.y_train.mean()) < 1e-5 and both.meta["y_mean"] > 3
    red = load("wine_quality", data_dir=tmp_path, variant="red")
    assert red.n_features == 11 and sum(red.meta["split_sizes"].values()) == 40
    white = load("wine_quality_white", data_dir=tmp_path)
    assert sum(white.meta["split_sizes"].values()) == 50
    with pytest.raises(DataError, match="variant"):
        load("wine_quality", data_dir=tmp_path, variant="rose")
    path = tmp_path / "winequality-white.csv"  # an extra column in one file only
    path.write_text("".join(f'{line};"x"\n' for line in path.read_text().splitlines()))
    with pytest.raises(DataError, match=r"white\.csv: columns differ from .*red\.csv"):
        load("wine_quality", data_dir=tmp_path)


def test_wine_errors_name_file_row_column(tmp_path):
    write_wine(tmp_path, "red", 40)
    path = tmp_path / "winequality-red.csv"
    lines = path.read_text().splitlines()
    cells = lines[5].split(";")  # data row 5
    cells[2] = "abc"
    lines[5] = ";".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"red\.csv, row 5, column 'citric acid': non-numeric"):
        load("wine_quality_red", data_dir=tmp_path)


def test_abalone_headerless(tmp_path):
    (tmp_path / "abalone.data").write_text(abalone_text())
    ds = load("abalone", data_dir=tmp_path)
    assert ds.feature_names[:3] == ["Sex=F", "Sex=I", "Sex=M"] and ds.n_features == 10
    assert ds.task == "regression" and sum(ds.meta["split_sizes"].values()) == 45
    onehot = ds.X_train[:, :3]
    assert np.all(onehot.sum(1) == 1)
    (tmp_path / "abalone.data").write_text(abalone_text(5) + "M,0.4,0.3\n" + abalone_text(5))
    with pytest.raises(DataError, match=r"abalone\.data: malformed CSV, line 6 has 3 fields"):
        load("abalone", data_dir=tmp_path)


# --- locating files ---------------------------------------------------------------------------


def test_htaf_data_env_and_data_dir_priority(tmp_path, monkeypatch):
    env, explicit = tmp_path / "env", tmp_path / "explicit"
    env.mkdir(), explicit.mkdir()
    (env / "abalone.data").write_text(abalone_text(45))
    (explicit / "abalone.data").write_text(abalone_text(60))
    monkeypatch.setenv("HTAF_DATA", str(env))
    assert sum(load("abalone").meta["split_sizes"].values()) == 45
    assert sum(load("abalone", data_dir=explicit).meta["split_sizes"].values()) == 60


def test_missing_file_message(tmp_path):
    with pytest.raises(DataError) as e:
        load("abalone", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert "'abalone.data'" in msg and str(tmp_path / "nowhere") in msg
    assert "https://archive.ics.uci.edu/ml/machine-learning-databases/abalone/abalone.data" in msg
    assert "download=True" in msg
    with pytest.raises(DataError, match=r"winequality-white\.csv"):
        load("wine_quality_white", data_dir=tmp_path)


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_is_atomic_and_failures_are_dataerrors(tmp_path, monkeypatch):
    seen = []

    def ok(url, timeout):
        seen.append((url, timeout))
        return FakeResponse(abalone_text().encode())

    monkeypatch.setattr(urllib.request, "urlopen", ok)
    ds = load("abalone", data_dir=tmp_path / "new", download=True)
    assert seen[0][0].endswith("/abalone/abalone.data") and seen[0][1] > 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["abalone.data"]
    assert sum(ds.meta["split_sizes"].values()) == 45

    def fail(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    with pytest.raises(DataError, match=r"could not download .*winequality-red\.csv.*no route"):
        load("wine_quality_red", data_dir=tmp_path / "w", download=True)
    assert not (tmp_path / "w").exists()  # no partial file, nor the folder made for it

    class CutOff(FakeResponse):  # the connection drops mid-body
        def read(self, size=-1):
            if self.tell():
                raise http.client.IncompleteRead(b"")
            return super().read(size)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: CutOff(b"M,0.4,"))
    with pytest.raises(DataError, match=r"could not download .*abalone\.data"):
        load("abalone", data_dir=tmp_path / "cut", download=True)
    assert not (tmp_path / "cut").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    with pytest.raises(DataError, match=r"could not download .*abalone\.data"):
        load("abalone", data_dir=tmp_path / "kept", download=True)
    assert list((tmp_path / "kept").iterdir()) == []
