"""Authentication and roles on a real shared server: the README's recipe (PostgreSQL, `mlflow server
--app-name deepfake-auth`, no permission by default), users made with `deepfake-detection access`,
and every command run as a separate process with MLflow's credential variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import aliases, tiny_train_args
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from deepfake_detection import registry

PASSWORDS = {"reader": "reader-pw-3141", "trainer": "trainer-pw-2718", "release-manager": "manager-pw-1618"}
NAME = "deepfake-npr"


@pytest.fixture(scope="session")  # its tests run on one worker (conftest's ONE_WORKER_FIXTURES)
def auth_server():
    from tracking_server import tracking_server

    with tracking_server(admin_password="admin-pw-" + os.urandom(6).hex()) as started:
        yield started


def cli(server, user: str | None, *arguments, password: str = "", check_ok: bool = False):
    """``deepfake-detection ARGUMENTS`` as ``user`` (``None``: no credentials at all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = server.url
    if user is not None:
        env["MLFLOW_TRACKING_USERNAME"] = user
        env["MLFLOW_TRACKING_PASSWORD"] = password or (
            server.admin_password if user == "admin" else PASSWORDS.get(user, "none")
        )
    done = subprocess.run(
        [sys.executable, "-m", "deepfake_detection", *map(str, arguments)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check_ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def error_line(done) -> str:
    """The one line a refused command prints (click's ``Error: …``), after checking it is alone."""
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def admin_client(server, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
    return MlflowClient(server.url)


def as_user(monkeypatch, server, user: str) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS[user])
    return MlflowClient(server.url)


@pytest.fixture(scope="session")
def roles(auth_server):
    """`access init` and one user per role, as the admin would from the README."""
    server = auth_server
    made = cli(server, "admin", "access", "init", "--arch", "npr", check_ok=True)
    assert "deepfake-release-manager: READ on experiment deepfake-detection; MANAGE on deepfake-npr" in made.stdout
    again = cli(server, "admin", "access", "init", "--arch", "npr", check_ok=True)  # idempotent
    assert again.stdout == made.stdout
    for user, password in PASSWORDS.items():
        env_password = {"DEEPFAKE_NEW_USER_PASSWORD": password}
        os.environ.update(env_password)
        try:
            done = cli(server, "admin", "access", "grant", user, "--role", user, check_ok=True)
        finally:
            os.environ.pop("DEEPFAKE_NEW_USER_PASSWORD")
        assert f"created user {user}: role deepfake-{user}" in done.stdout
    return server


def _train(server, user, data, work_dir, password: str = ""):
    return cli(server, user, "train", *tiny_train_args(data, work_dir, arch="npr", seed=1), password=password)


def _logged(server, monkeypatch) -> tuple[list, list]:
    """Every run and every version of ``deepfake-npr`` on the server, as the admin sees them."""
    client = admin_client(server, monkeypatch)
    runs = [r.info.run_id for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return sorted(runs), sorted(v.version for v in client.search_model_versions(f"name = '{NAME}'"))


@pytest.mark.server
def test_no_login_a_wrong_password_a_missing_permission_or_role_stop_before_any_work(
    roles, bench_dataset, tmp_path, monkeypatch
):
    before = _logged(roles, monkeypatch)
    anonymous = error_line(_train(roles, None, bench_dataset, tmp_path))
    assert roles.url in anonymous and "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD" in anonymous
    wrong = error_line(_train(roles, "trainer", bench_dataset, tmp_path, password="not-the-password"))
    assert wrong == f"Error: {roles.url} refused the login of user 'trainer': wrong password or no such user"
    reader = error_line(_train(roles, "reader", bench_dataset, tmp_path))
    assert reader.startswith(f"Error: {roles.url}: user 'reader' may not train and register npr: needs EDIT")
    assert "EDIT on experiment 'deepfake-detection' (has READ)" in reader
    assert "EDIT on registered model 'deepfake-npr' (has READ)" in reader
    from mlflow.server.auth.client import AuthServiceClient  # the server extra (Flask-WTF)

    admin_client(roles, monkeypatch)  # the admin makes a login without any role
    AuthServiceClient(roles.url).create_user("nobody", "nobody-pw-1414")
    nobody = error_line(_train(roles, "nobody", bench_dataset, tmp_path, password="nobody-pw-1414"))
    assert "user 'nobody' may not train and register npr: needs EDIT on experiment 'deepfake-detection' (may not" in (
        nobody
    )
    assert "EDIT on registered model 'deepfake-npr' (has NO_PERMISSIONS)" in nobody
    assert _logged(roles, monkeypatch) == before  # no run opened, nothing registered
    assert not any(tmp_path.iterdir())  # and nothing trained
    # Users and roles: the admin's, on a server with authentication.
    refused = error_line(cli(roles, "trainer", "access", "grant", "someone", "--role", "trainer"))
    assert refused == f"Error: {roles.url}: user 'trainer' is not an admin; roles are managed with the admin's login"
    (tmp_path / "local").mkdir()
    local = subprocess.run(
        [sys.executable, "-m", "deepfake_detection", "access", "init"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "local",
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
    )
    assert "is a local store" in error_line(local)
    assert not Path(tmp_path, "local", "mlflow.db").exists()  # refused before anything is made


@pytest.mark.server
@pytest.mark.train
def test_each_role_may_do_its_part_and_is_refused_the_rest(roles, bench_dataset, tmp_path, monkeypatch):
    # Trainer: trains and registers; the election would make the first version champion, but the
    # trainer may not move @champion: challenger / Staging, and the output says who promotes it.
    trained = _train(roles, "trainer", bench_dataset, tmp_path / "outputs")
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "Traceback" not in trained.stderr
    admin = admin_client(roles, monkeypatch)
    (version,) = admin.search_model_versions(f"name = '{NAME}'")
    assert version.tags["degenerate"] == "false", "seed 1 must give a model the election can choose"
    assert (
        f"{NAME} version 1 has the best valid score ({registry.robust_score(version.tags):.3f}) and would be "
        "champion, but this user may not move @champion / Production" in trained.stdout
    )
    assert "A release manager promotes it with `deepfake-detection promote --arch npr --version 1`" in trained.stdout
    assert aliases(admin, NAME) == {"challenger": "1"}
    assert version.current_stage == "Staging" and version.tags["awaiting_release"] == "true"
    runs = admin.search_runs([admin.get_experiment_by_name("deepfake-detection").experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("train", "FINISHED"), ("train-npr", "FINISHED")]
    assert runs[0].data.tags["mlflow.user"] == "trainer"

    # The trainer is refused the release, by the CLI before it starts and by the server itself.
    refused = error_line(cli(roles, "trainer", "promote", "--arch", "npr", "--version", "1"))
    assert "user 'trainer' may not make deepfake-npr version 1 champion: needs MANAGE" in refused
    trainer = as_user(monkeypatch, roles, "trainer")
    with pytest.raises(MlflowException, match="moving the champion alias on registered model 'deepfake-npr' is a"):
        trainer.set_registered_model_alias(NAME, "champion", "1")
    for attempt in (
        lambda: trainer.transition_model_version_stage(NAME, "1", "Production"),
        lambda: trainer.rename_registered_model(NAME, "deepfake-mine"),
        lambda: trainer.delete_model_version(NAME, "1"),
    ):
        with pytest.raises(MlflowException, match="403"):
            attempt()
    trainer.set_registered_model_alias(NAME, "challenger", "1")  # what the trainer may do with aliases

    # Reader: no champion yet, so loading @champion fails clearly; the release is refused too.
    images = bench_dataset / "test"
    missing = error_line(cli(roles, "reader", "predict", "--model", "npr", "--input", images))
    assert "cannot load model models:/deepfake-npr@champion" in missing
    refused = error_line(cli(roles, "reader", "promote", "--arch", "npr", "--version", "1"))
    assert "user 'reader' may not make deepfake-npr version 1 champion: needs MANAGE" in refused
    admin = admin_client(roles, monkeypatch)
    assert aliases(admin, NAME) == {"challenger": "1"}  # nothing moved
    assert [v.version for v in admin.search_model_versions(f"name = '{NAME}'")] == ["1"]  # nothing half-registered

    # Release manager: promotes.
    promoted = cli(roles, "release-manager", "promote", "--arch", "npr", "--version", "1", check_ok=True)
    assert "deepfake-npr version 1 is now champion" in promoted.stdout
    assert aliases(admin, NAME) == {"champion": "1"}
    assert admin.get_model_version(NAME, "1").current_stage == "Production"

    # Reader: predicts with the champion, and compares into its own experiment (not the trainers').
    output = tmp_path / "predictions.csv"
    cli(roles, "reader", "predict", "--model", "npr", "--input", images, "--output", output, check_ok=True)
    predictions = pd.read_csv(output)
    assert len(predictions) == len([f for f in images.rglob("*") if f.is_file()])
    assert set(predictions["model_uri"]) == {"models:/deepfake-npr@champion"}
    assert predictions["p_fake"].between(0, 1).all()
    compare = ["compare", "--models", "npr", "--data", bench_dataset, "--work-dir", tmp_path / "compare"]
    refused = error_line(cli(roles, "reader", *compare))
    assert "user 'reader' may not log compare runs in experiment 'deepfake-detection'" in refused
    assert "--experiment deepfake-comparisons" in refused
    cli(roles, "reader", *compare, "--experiment", "deepfake-comparisons", check_ok=True)
    comparisons = admin.get_experiment_by_name("deepfake-comparisons").experiment_id
    assert {r.data.tags["mlflow.user"] for r in admin.search_runs([comparisons])} == {"reader"}
    shown = cli(roles, "reader", "access", "show", "--arch", "npr", check_ok=True).stdout
    assert "user 'reader', roles: ['deepfake-reader']" in shown and "registered model deepfake-npr: READ" in shown


@pytest.mark.parametrize(
    ("path", "params", "decision"),
    [
        ("/api/2.0/mlflow/registered-models/alias", {"name": NAME, "alias": "champion"}, "moving the champion alias"),
        (
            "/ajax-api/2.0/mlflow/registered-models/alias",
            {"name": NAME, "alias": "champion"},
            "moving the champion alias",
        ),
        ("/api/2.0/mlflow/registered-models/alias", {"name": NAME, "alias": "challenger"}, ""),
        (
            "/api/2.0/mlflow/model-versions/transition-stage",
            {"name": NAME, "stage": "production"},
            "moving a version into Production",
        ),
        ("/api/2.0/mlflow/registered-models/rename", {"name": NAME, "new_name": "x"}, "renaming it"),
        (
            "/api/2.0/mlflow/registered-models/set-tag",
            {"name": NAME, "key": "champion_promoted_by_hand"},
            "changing the record",
        ),
        ("/api/2.0/mlflow/registered-models/set-tag", {"name": NAME, "key": "image_size"}, ""),
        ("/api/2.0/mlflow/registered-models/update", {"name": NAME, "description": "d"}, ""),
    ],
)
def test_which_registry_requests_are_release_decisions(path, params, decision):
    from deepfake_detection.access.server import release_decision

    found = release_decision(path, params)
    assert found.startswith(decision) and bool(found) == bool(decision)
