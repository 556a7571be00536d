"""Names that say what they mean (issue 19 §4): ``family`` (formerly ``task``) in every place a
config is written, files of older versions read back and resumed, and the former spellings
still accepted."""

from __future__ import annotations

import ast
import json
import shutil
import warnings
from pathlib import Path

import pytest

import htaf
from htaf.cli import main
from htaf.config import ConfigError, RunConfig, apply_overrides
from htaf.store import STORE_NAME, ResultStore
from htaf.train.checkpoint import load_checkpoint, save_checkpoint
from htaf.train.run_folder import CHECKPOINT, CONFIG, METRICS, WEIGHTS

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = {"dataset": "breast_cancer", "epochs": 2, "model": {"widths": [8]}}
FAST_TOML = 'dataset = "breast_cancer"\nepochs = 2\n\n[model]\nwidths = [8]\n'


# -- the config key --------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["family", "task"])
def test_either_name_sets_the_family_in_toml_json_dicts_and_keywords(tmp_path, key):
    toml = tmp_path / "run.toml"
    toml.write_text(f'{key} = "snn"\n')
    assert RunConfig.from_toml(toml).family == "snn"
    assert RunConfig.from_dict(json.loads(json.dumps({key: "snn"}))).family == "snn"
    assert RunConfig(**{key: "snn"}).family == "snn"
    assert RunConfig().replace(**{key: "snn"}).family == "snn"
    assert RunConfig.from_dict({key: "snn"}).to_dict()["family"] == "snn"
    assert "task" not in RunConfig(**{key: "snn"}).to_dict()  # new files write family


def test_both_names_agreeing_is_fine_differing_is_a_config_error_naming_both(tmp_path):
    assert RunConfig.from_dict({"family": "snn", "task": "snn"}).family == "snn"
    with pytest.raises(ConfigError, match="'family' and 'task'"):
        RunConfig.from_dict({"family": "snn", "task": "bnn"})
    with pytest.raises(ConfigError, match="'family' and 'task'"):
        RunConfig(family="snn", task="bnn")
    toml = tmp_path / "run.toml"
    toml.write_text('family = "snn"\ntask = "bnn"\n')
    with pytest.raises(ConfigError, match="'family' and 'task'"):
        RunConfig.from_toml(toml)


def test_an_override_wins_whichever_name_the_file_and_the_override_use():
    for file_key in ("family", "task"):
        for set_key in ("family", "task"):
            data = apply_overrides({file_key: "dhn"}, [f"{set_key}=snn"])
            assert RunConfig.from_dict(data).family == "snn", (file_key, set_key)


def test_the_former_attribute_still_reads_with_a_deprecation_warning():
    config = RunConfig(family="snn")
    with pytest.warns(DeprecationWarning, match="RunConfig.family"):
        assert config.task == "snn"
    assert htaf.train.TASKS == htaf.train.FAMILIES


def test_train_one_takes_either_name_in_its_dict_and_keywords(tmp_path):
    run = htaf.train_one({"task": "dhn", **FAST}, tmp_path / "a", progress=False)
    assert run.config.family == "dhn"
    assert json.loads((tmp_path / "a" / CONFIG).read_text())["family"] == "dhn"
    with pytest.raises(ConfigError, match="'family' and 'task'"):
        htaf.train_one({"family": "dhn", "task": "snn", **FAST}, tmp_path / "b")
    # a keyword override beats the dict, whichever name each uses
    with pytest.raises(ConfigError, match=r"unknown model family.*'nope'"):
        htaf.train_one({"task": "dhn", **FAST}, tmp_path / "c", family="nope")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# -- the command line ------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--family", "--task"])
def test_compare_takes_family_and_its_former_name(tmp_path, flag):
    out = tmp_path / "out"
    args = ["compare", flag, "dhn", "--estimators", "htaf", "--seeds", "1", "--epochs", "1",
            "--widths", "8", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    (exp,) = [p for p in out.iterdir() if p.is_dir()]
    spec = json.loads((exp / "config.json").read_text())
    assert spec["base"]["family"] == "dhn" and "--family dhn" in spec["command"]
    assert json.loads((exp / "summary.json").read_text())[0]["family"] == "dhn"
    for runs_flag in ("--family", "--task"):
        assert main(["runs", "--out", str(out), runs_flag, "dhn"]) == 0


def test_family_and_task_flags_that_disagree_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare", "--family", "dhn", "--task", "snn"])
    assert stop.value.code == 2
    assert "--family dhn and --task snn disagree" in capsys.readouterr().err


def test_a_config_file_with_both_keys_differing_exits_2_writing_nothing(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('family = "dhn"\ntask = "snn"\n' + FAST_TOML)
    out = tmp_path / "out"
    assert main(["train", "--config", str(toml), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("htaf train: error:") and "'family' and 'task'" in err
    assert not out.exists()


@pytest.mark.parametrize("key", ["family", "task"])
def test_train_takes_either_key_in_the_file_and_in_set(tmp_path, key):
    toml = tmp_path / "run.toml"
    toml.write_text(f'{key} = "snn"\n' + FAST_TOML)
    out = tmp_path / "out"
    code = main(["train", "--config", str(toml), "--set", f"{key}='dhn'", "--out", str(out),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    assert json.loads((out / CONFIG).read_text())["family"] == "dhn"


# -- files written by older versions ----------------------------------------------------------
def _as_old_version(run_dir: Path) -> None:
    """Rewrite a run folder as htaf wrote it before ``family``: ``task`` in config.json and in
    the checkpoint's config."""
    saved = json.loads((run_dir / CONFIG).read_text())
    saved["task"] = saved.pop("family")
    (run_dir / CONFIG).write_text(json.dumps(saved))
    if (run_dir / CHECKPOINT).is_file():
        payload = load_checkpoint(run_dir / CHECKPOINT)
        payload["config"]["task"] = payload["config"].pop("family")
        save_checkpoint(run_dir / CHECKPOINT, payload)


def test_an_old_run_folder_loads_and_resumes(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('task = "dhn"\n' + FAST_TOML)  # an old config file, too
    out = tmp_path / "run"
    assert main(["train", "--config", str(toml), "--out", str(out), "--no-progress"]) == 0
    _as_old_version(out)
    payload = load_checkpoint(out / CHECKPOINT)  # as if killed after epoch 2 of 3
    save_checkpoint(out / CHECKPOINT, {**payload, "done": False})
    run = htaf.load_run(out)
    assert run.config.family == "dhn" and run.record()["config"]["family"] == "dhn"
    assert htaf.load_run(out).model() is not None
    # resume it for one more epoch: the checkpoint's "task" is the config's family
    code = main(["train", "--config", str(toml), "--set", "epochs=3", "--out", str(out),
                 "--resume", "--no-progress"])  # fmt: skip
    assert code == 0
    assert htaf.load_run(out).metrics["epochs_run"] == 3
    # the old checkpoint's "task" is compared as the family: a changed family is refused
    from htaf.train.setup import check_resume_config

    saved = {**htaf.load_run(out).config.to_dict(), "epochs": 2}
    saved["task"] = saved.pop("family")
    check_resume_config(htaf.load_run(out).config, saved, out / CHECKPOINT)
    with pytest.raises(ConfigError, match=r"config key.*'family'"):
        check_resume_config(RunConfig(family="snn", **FAST), saved, out / CHECKPOINT)


def test_an_old_experiment_loads_reports_and_resumes(tmp_path):
    out = tmp_path / "out"
    exp = htaf.compare(estimators=["htaf", "relu"], seeds=1, out=out, progress=False,
                       epochs=2, model={"widths": [8]})  # fmt: skip
    want = exp.summary
    # as an older htaf left it, interrupted: "task" everywhere, one run unfinished
    spec = json.loads((exp.path / "config.json").read_text())
    spec["base"]["task"] = spec["base"].pop("family")
    (exp.path / "config.json").write_text(json.dumps(spec))
    rows = json.loads((exp.path / "summary.json").read_text())
    for row in rows:
        row["task"] = row.pop("family")
    (exp.path / "summary.json").write_text(json.dumps(rows))
    for record in exp.records:
        _as_old_version(Path(record["run_dir"]))
    old = htaf.load_experiment(exp.path)
    assert old.summary.index.names == ["family", "dataset", "estimator"]
    assert list(old.summary.index) == list(want.index)
    assert main(["report", str(exp.path)]) == 0
    unfinished = Path(exp.records[1]["run_dir"])
    (unfinished / METRICS).unlink()
    (unfinished / WEIGHTS).unlink()
    (exp.path / "summary.json").unlink()
    assert main(["compare", "--resume", str(exp.path), "--no-progress"]) == 0
    again = htaf.load_experiment(exp.path)
    assert again.finished and list(again.summary.index) == list(want.index)
    assert json.loads((unfinished / CONFIG).read_text())["family"] == "dhn"


def test_an_old_store_still_reads_and_filters_by_family(tmp_path):
    store = ResultStore(tmp_path / STORE_NAME)
    old = {"config": {"task": "snn", "dataset": "d", "estimator": "htaf", "seed": 0},
           "metrics": {"test_accuracy_hard": 0.5}, "run_dir": "/runs/old"}  # fmt: skip
    store.add_run(old, experiment_id="e")
    store.add_run({**old, "config": {**old["config"], "task": "dhn"}, "run_dir": "/runs/b"})
    (row,) = store.query(family="snn")
    assert row["family"] == "snn" and row["config"]["family"] == "snn"
    assert "task" not in row["config"]
    assert [r["run_dir"] for r in store.query(task="dhn")] == ["/runs/b"]
    frame = htaf.runs(tmp_path, family="snn")
    assert list(frame["family"]) == ["snn"] and list(htaf.runs(tmp_path, task="dhn")["family"])
    with pytest.raises(ConfigError):
        htaf.runs(tmp_path, family="snn", task="dhn")
    assert main(["runs", "--out", str(tmp_path), "--task", "snn"]) == 0
    csv = tmp_path / "runs.csv"
    assert main(["runs", "--out", str(tmp_path), "--csv", str(csv)]) == 0
    assert csv.read_text().splitlines()[0].startswith("id,experiment_id,family,")


def test_compare_python_keywords_take_either_name(tmp_path):
    from htaf.api import compare_grid

    assert compare_grid(task="snn").base.family == "snn"
    assert compare_grid(family="snn").base.family == "snn"
    assert compare_grid("snn", task="snn").base.family == "snn"
    with pytest.raises(ConfigError, match="family='dhn' and task='snn'"):
        compare_grid("dhn", task="snn")


# -- htaf.functional is never F -----------------------------------------------------------------
def test_no_module_calls_htaf_functional_F():
    roots = [SRC, SRC.parent / "tests", SRC.parent / "benchmarks"]
    for path in (p for root in roots for p in root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "htaf":
                for alias in node.names:
                    assert not (alias.name == "functional" and alias.asname == "F"), path
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not (alias.name == "htaf.functional" and alias.asname == "F"), path


def test_no_deprecation_warning_from_htaf_itself(tmp_path):
    """htaf's own code never reads the former attribute ``RunConfig.task``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="RunConfig.task", category=DeprecationWarning)
        run = htaf.train_one({"family": "dhn", **FAST}, tmp_path / "r", progress=False)
        htaf.load_run(run.path).model()
    shutil.rmtree(tmp_path / "r")
