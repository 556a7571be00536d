"""`htaf compare --resume`: an experiment killed mid-run finishes with the uninterrupted metrics."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from htaf.cli import main

ARGS = ["--estimators", "htaf,ste", "--seeds", "1", "--epochs", "30", "--widths", "64",
        "--no-progress"]  # fmt: skip


def summary_of(out: Path) -> list:
    (exp,) = [p for p in out.iterdir() if p.is_dir()]
    return json.loads((exp / "summary.json").read_text())


def test_killed_compare_resumes_to_the_same_result(tmp_path):
    reference = tmp_path / "reference"
    assert main(["compare", *ARGS, "--out", str(reference)]) == 0

    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "htaf", "compare", *ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*/*/htaf/seed0/checkpoint.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (exp,) = [p for p in out.iterdir() if p.is_dir()]
    assert not (exp / "summary.json").exists()  # it really was interrupted

    assert main(["compare", "--resume", str(exp), "--no-progress"]) == 0
    got, want = summary_of(out), summary_of(reference)
    for g, w in zip(got, want, strict=True):
        assert g["estimator"] == w["estimator"]
        for name in ("test_auroc_hard", "test_accuracy_smooth", "test_logloss_hard"):
            assert g["metrics"][name]["mean"] == w["metrics"][name]["mean"], name


def test_resume_of_a_folder_without_config_is_bad_input(tmp_path, capsys):
    assert main(["compare", "--resume", str(tmp_path), "--no-progress"]) == 2
    assert "config.json" in capsys.readouterr().err
