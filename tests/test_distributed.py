"""DistributedDataParallel under torchrun: two CPU processes with gloo, one set of files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from htaf.train.run_folder import MODEL_ARRAYS, RUN_FILES

LAUNCHER = "import sys\nfrom htaf.cli import main\nsys.exit(main())\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_cpu(tmp_path):
    script = tmp_path / "htaf_main.py"
    script.write_text(LAUNCHER)
    config = tmp_path / "run.toml"
    config.write_text(
        'dataset = "breast_cancer"\nestimator = "htaf"\nepochs = 3\n[model]\nwidths = [16]\n'
    )
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(script), "train", "--config", str(config), "--out", str(out), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # one metrics table (rank 0 only) and exactly one set of files, no temp files left over
    assert proc.stdout.count("hard (step)") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(set(RUN_FILES) - {MODEL_ARRAYS})
    assert [
        p for p in tmp_path.iterdir() if p.name not in {"htaf_main.py", "run.toml", "out"}
    ] == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3
    assert 0.5 < metrics["test_auroc_hard"] <= 1 and 0.5 < metrics["test_auroc_smooth"] <= 1
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
