"""The benchmarks' arguments as a user types them (benchmarks/_workspace.py), their results tables
(benchmarks/_report.py), and some scripts run as commands: relative paths and a relative SQLite
store made absolute before any chdir, inputs that are not there refused, a dead server quoted,
``--markdown``. No training and no real server: each script stops at its arguments or runs tiny."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
BENCHMARKS = PROJECT / "benchmarks"
# The scripts whose --data names a prepared dataset (gpu_train only checks that it exists: without a
# GPU it refuses before reading it).
DATA_SCRIPTS = [
    "cross_generator.py",
    "distributed_tuning.py",
    "from_scratch.py",
    "gpu_train.py",
    "image_border.py",
    "input_pipeline.py",
    "multihost_train.py",
    "predict_throughput.py",
    "residual_spectrum.py",
    "robustness.py",
    "serve_load.py",
    "training_input.py",
    "training_speed.py",
]


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """A fresh folder, made the working directory (restored afterwards), as the shell resolves it."""
    monkeypatch.chdir(tmp_path)
    return Path.cwd()


def script(name: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_relative_sqlite_store_becomes_absolute(bench, here):
    workspace, _ = bench
    assert workspace.absolute_store("sqlite:///mlflow.db") == f"sqlite:///{here}/mlflow.db"
    assert workspace.absolute_store("sqlite:///./runs/m.db?timeout=20") == f"sqlite:///{here}/runs/m.db?timeout=20"
    for uri in ("sqlite:////srv/mlflow.db", "http://127.0.0.1:5000", "postgresql://u@db/mlflow", "sqlite:///:memory:"):
        assert workspace.absolute_store(uri) == uri


def test_the_users_store_is_exported_absolute_and_a_missing_one_refused(bench, here, monkeypatch):
    workspace, _ = bench
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    with pytest.raises(SystemExit) as refused:
        workspace.user_store()
    assert f"sqlite:///{here}/mlflow.db" in str(refused.value)
    assert not (here / "mlflow.db").exists()  # MLflow would have created an empty store

    (here / "mlflow.db").touch()
    assert workspace.user_store() == f"sqlite:///{here}/mlflow.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{here}/mlflow.db"
    (here / "other.db").touch()
    assert workspace.user_store("sqlite:///other.db") == f"sqlite:///{here}/other.db"  # an option beats the variable


def test_the_scoring_workspace_keeps_the_users_store_after_its_chdir(bench, here, monkeypatch):
    workspace, _ = bench
    (here / "mlflow.db").touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    folder = workspace.scoring_workspace("test-scoring-", "models:/deepfake-npr@champion")
    try:
        assert Path.cwd() == folder != here
        assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{here}/mlflow.db"
    finally:
        shutil.rmtree(folder)


def test_the_scoring_workspace_refuses_a_missing_store_before_making_anything(bench, here, monkeypatch):
    workspace, _ = bench
    monkeypatch.setattr(tempfile, "tempdir", str(here))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    with pytest.raises(SystemExit, match=f"no tracking store at sqlite:///{here}/mlflow.db"):
        workspace.scoring_workspace("test-scoring-", "models:/deepfake-npr@champion")
    assert list(here.iterdir()) == [] and Path.cwd() == here


def parser_of(workspace) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--data", type=workspace.dataset_path)
    parser.add_argument("--input", type=workspace.existing_path)
    parser.add_argument("--output", type=workspace.user_path)
    parser.add_argument("--model", type=workspace.model_uri)
    return parser


def test_path_arguments_are_absolute_when_parsed(bench, here, monkeypatch):
    workspace, _ = bench
    (here / "data").mkdir()
    (here / "data" / "manifest.csv").write_text("path\n")
    (here / "model").mkdir()
    args = parser_of(workspace).parse_args(["--data", "data", "--input", "model", "--output", "out/m.csv"])
    monkeypatch.chdir(here.parent)  # what a benchmark does next
    assert args.data == here / "data" and args.data.is_absolute() and (args.data / "manifest.csv").is_file()
    assert args.input == here / "model"
    assert args.output == here / "out" / "m.csv"
    assert parser_of(workspace).parse_args(["--model", "models:/deepfake-npr@champion"]).model == (
        "models:/deepfake-npr@champion"
    )
    monkeypatch.chdir(here)
    assert parser_of(workspace).parse_args(["--model", "model"]).model == str(here / "model")


@pytest.mark.parametrize(
    "given, message",
    [
        (["--data", "missing"], "argument --data: no such file or directory: missing ({here}/missing)"),
        (["--data", "."], "argument --data: . is not a prepared dataset (no manifest.csv in {here})"),
        (["--input", "nothing"], "argument --input: no such file or directory: nothing"),
        (["--model", "no/model"], "argument --model: no such file or directory: no/model"),
    ],
)
def test_inputs_that_are_not_there_are_refused_naming_them(bench, here, capsys, given, message):
    workspace, _ = bench
    with pytest.raises(SystemExit) as refused:
        parser_of(workspace).parse_args(given)
    assert refused.value.code == 2
    assert message.format(here=here) in capsys.readouterr().err


@pytest.mark.slow  # one script process each
@pytest.mark.parametrize("name", DATA_SCRIPTS)
def test_each_script_refuses_a_data_that_is_not_there_and_builds_nothing(name, tmp_path):
    done = script(name, "--data", "data/combined-real-vs-fake", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"argument --data: no such file or directory: data/combined-real-vs-fake ({tmp_path.resolve()}/" in (
        done.stderr
    )
    assert "building" not in done.stdout and list(tmp_path.iterdir()) == []


def test_a_script_resolves_a_relative_store_of_the_user_before_using_it(tmp_path):
    done = script("calibration_table.py", cwd=tmp_path, MLFLOW_TRACKING_URI="sqlite:///mlflow.db")
    assert done.returncode == 1
    assert f"no tracking store at sqlite:///{tmp_path.resolve()}/mlflow.db" in done.stderr
    done = script("fit_curves.py", "--tracking-uri", "sqlite:///runs.db", cwd=tmp_path)
    assert done.returncode == 1
    assert f"no tracking store at sqlite:///{tmp_path.resolve()}/runs.db" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_last_lines_and_died_quote_what_a_dead_process_printed(bench, tmp_path):
    workspace, _ = bench
    log = tmp_path / "process.log"
    program = "import sys\nfor i in range(30): print(f'line {i}')\nsys.exit('Error: the model is not there')"
    with log.open("w") as output:
        code = subprocess.run([sys.executable, "-c", program], stdout=output, stderr=subprocess.STDOUT).returncode
    message = str(workspace.died("the thing", code, log))
    assert message.startswith(f"the thing exited with 1 (log: {log}); its last lines:\n")
    quoted = message.split("\n")[1:]
    assert len(quoted) == 20 and quoted[0] == "  | line 11" and quoted[-1] == "  | Error: the model is not there"
    assert workspace.last_lines("a\nloading 10%\rloading 100%\r\nb\r\n\n", 2) == "  | loading 100%\n  | b"
    assert str(workspace.died("quiet", 3, "")) == "quiet exited with 3; it printed nothing"


def test_serve_load_quotes_the_server_that_died(bench, tmp_path, monkeypatch):
    """serve_load.start on a `python -m deepfake_detection` that fails as a server without its model does."""
    fake = tmp_path / "fake" / "deepfake_detection"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        "import sys\nprint('INFO starting')\nsys.exit('Error: cannot load model models:/deepfake-npr@champion')\n"
    )
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # what importing the script sets, undone afterwards
    import serve_load

    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    with pytest.raises(SystemExit) as stopped:
        serve_load.start("models:/deepfake-npr@champion", 1, env, tmp_path / "server.log")
    message = str(stopped.value)
    assert message.startswith("the server exited with 1")
    assert message.endswith("  | INFO starting\n  | Error: cannot load model models:/deepfake-npr@champion")


def test_a_table_prints_and_writes_the_same_cells(bench, tmp_path, monkeypatch):
    _, report = bench
    table = report.Table({"workers": ">7", "model": "<8", "img/s": ">7.1f", "vs exact": ">9"})
    assert table.header() == "workers model      img/s  vs exact"
    assert table.row(2, "a|b", 168.64, "+4.00") == "      2 a|b        168.6     +4.00"
    assert table.row(12, "custom_c", 3.0, "") == "     12 custom_c     3.0"
    assert table.text().splitlines()[1:] == table.lines
    assert table.markdown().splitlines() == [
        "|   workers | model    |   img/s |   vs exact |",
        "|----------:|:---------|--------:|-----------:|",
        "|         2 | a\\|b     |   168.6 |      +4.00 |",
        "|        12 | custom_c |     3.0 |            |",
    ]
    monkeypatch.setattr(sys, "argv", ["/elsewhere/benchmarks/serve_load.py", "--data", "my data", "--markdown", "t.md"])
    report.write_markdown(None, "nothing", table)
    assert list(tmp_path.iterdir()) == []
    report.write_markdown(tmp_path / "docs" / "t.md", "caption", table, "", [], ["one", "two"], "a note")
    written = (tmp_path / "docs" / "t.md").read_text().split("\n\n")
    assert written[0] == "<!-- written by: python benchmarks/serve_load.py --data 'my data' --markdown t.md -->"
    assert written[1:] == ["caption", table.markdown(), "* one\n* two", "a note\n"]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|") if cell.strip()]


@pytest.mark.slow  # runs the script
def test_compare_scale_writes_the_table_it_prints(tmp_path):
    args = ["--sizes", "200,300", "--dim", "16", "--exact-max", "200", "--n-components", "4", "--landmarks", "30"]
    done = script("compare_scale.py", *args, "--markdown", "docs/compare.md", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "docs" / "compare.md").read_text().splitlines()
    assert (
        written[0]
        == f"<!-- written by: python benchmarks/compare_scale.py {' '.join(args)} --markdown docs/compare.md -->"
    )
    printed = done.stdout.splitlines()
    assert printed[0] in written  # the caption
    header = printed.index(next(line for line in printed if line.lstrip().startswith("train rows")))
    rows = [line.split() for line in printed[header + 1 : header + 4]]
    table = [cells(line) for line in written if line.startswith("|")]
    assert table[0] == ["train rows", "method", "fit s", "predict s", "accuracy", "ROC-AUC", "vs exact"]
    assert table[2:] == rows and [row[1] for row in rows] == ["exact", "nystroem", "nystroem"]


@pytest.fixture
def finished_train(tmp_path) -> Path:
    """A tracking store holding what `train` logs that fit_curves and calibration_table read."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("deepfake-detection", artifact_location=(tmp_path / "mlruns").as_uri())
    parent = client.create_run(experiment, tags={"step": "train"}, run_name="train").info.run_id
    for arch, curve, ece in (("npr", [0.61, 0.72, 0.815], 0.081), ("spectrum", [0.55, 0.6, 0.64], 0.052)):
        child = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "architecture": arch}).info.run_id
        client.log_param(child, "fit_epochs", 3)
        for step, value in enumerate(curve):
            client.log_metric(child, "valid_epoch_auc", value, step=step)
        metrics = {"train_seconds": 42.0, "test_roc_auc": curve[-1] + 0.1, "valid_youden_j": 0.4, "temperature": 1.5}
        metrics |= {"test_ece_uncalibrated": 0.2, "test_ece": ece, "test_ece_ci_low": ece - 0.01}
        for key, value in (metrics | {"test_ece_ci_high": ece + 0.01}).items():
            client.log_metric(child, key, value)
    return tmp_path


@pytest.mark.slow  # runs two scripts on a store
def test_fit_curves_and_calibration_table_write_markdown(finished_train):
    done = script(
        "fit_curves.py", "--markdown", "curves.md", cwd=finished_train, MLFLOW_TRACKING_URI="sqlite:///mlflow.db"
    )
    assert done.returncode == 0, done.stderr
    written = (finished_train / "curves.md").read_text().splitlines()
    assert written[0] == "<!-- written by: python benchmarks/fit_curves.py --markdown curves.md -->"
    table = [cells(line) for line in written if line.startswith("|")]
    assert table[0] == ["architecture", "planned epochs", "seconds", "test ROC-AUC", "valid ROC-AUC"]
    assert table[2:] == [
        ["npr", "3", "42", "0.915", "0.610 0.720 0.815"],
        ["spectrum", "3", "42", "0.740", "0.550 0.600 0.640"],
    ]

    done = script(
        "calibration_table.py",
        "--markdown",
        "calibration.md",
        cwd=finished_train,
        MLFLOW_TRACKING_URI="sqlite:///mlflow.db",
    )
    assert done.returncode == 0, done.stderr
    written = (finished_train / "calibration.md").read_text()
    assert written.startswith("<!-- written by: python benchmarks/calibration_table.py --markdown calibration.md -->\n")
    table = [cells(line) for line in written.splitlines() if line.startswith("|")]
    assert table[2:] == [
        ["npr", "0.400", "1.50", "0.200", "0.081 [0.071, 0.091]"],
        ["spectrum", "0.400", "1.50", "0.200", "0.052 [0.042, 0.062]"],
    ]
    assert re.search(r"^train run [0-9a-f]{32}; test split", written, re.MULTILINE)
    assert table[2] == cells(next(line for line in done.stdout.splitlines() if line.startswith("| npr")))


def test_markdown_replaces_only_its_own_section_of_a_page(bench, tmp_path, monkeypatch):
    """A page with the script's markers (BENCHMARKS.md) keeps everything outside them."""
    _, report = bench
    table = report.Table({"rows": ">6", "seconds": ">8.2f"})
    table.row(1000, 0.5)
    begin, end = report.section_markers("compare_scale.py")
    other_begin, other_end = report.section_markers("serve_load.py")
    page = tmp_path / "BENCHMARKS.md"
    page.write_text(f"# Title\n\n{begin}\nold table\n{end}\n\nreading\n\n{other_begin}\nkept\n{other_end}\n")
    monkeypatch.setattr(sys, "argv", ["benchmarks/compare_scale.py", "--markdown", "BENCHMARKS.md"])
    report.write_markdown(page, "caption", table)
    written = page.read_text()
    assert "old table" not in written and table.markdown() in written
    assert written.startswith(f"# Title\n\n{begin}\n<!-- written by: python benchmarks/compare_scale.py")
    assert written.endswith(f"{end}\n\nreading\n\n{other_begin}\nkept\n{other_end}\n")
