"""Two `htaf compare` processes writing to one output folder at once lose nothing."""

import json
import os
import sqlite3
import subprocess
import sys

ARGS = ["compare", "--estimators", "htaf,ste", "--seeds", "2", "--epochs", "2", "--widths", "8",
        "--no-progress"]  # fmt: skip


def test_two_compares_share_one_output_folder(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "htaf", *ARGS, "--out", str(tmp_path)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    experiments = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(experiments) == 2
    for exp in experiments:
        assert len(json.loads((exp / "summary.json").read_text())) == 2
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] == 2
        runs = conn.execute("SELECT experiment_id, COUNT(*) FROM runs GROUP BY 1").fetchall()
    assert sorted(n for _, n in runs) == [4, 4]
    assert {e for e, _ in runs} == {p.name for p in experiments}
