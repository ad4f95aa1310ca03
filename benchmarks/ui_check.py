"""What a user sees in the MLflow UI after a run, checked in a real browser.

    python benchmarks/ui_check.py --workdir DIR [--screenshots DIR/screenshots] [--chromium /usr/bin/chromium]

``DIR`` holds a finished run: ``DIR/mlflow.db`` with artifacts under ``DIR/mlruns`` (the project
folder after ``make run``, say). Without ``DIR/mlflow.db`` a tiny ``deepfake-detection main``
(32 px, 16 images a class, custom_a and spectrum, 1 epoch) makes one there first.

It starts ``deepfake-detection ui`` (which starts ``mlflow ui``) on 127.0.0.1 and a free port,
checks through the REST API what the pages rely on (the published views, run names and
descriptions, metric keys, plots at the architecture runs' artifact root, registered models
with descriptions, logged models named after their architecture), then opens each page in
headless Chromium (Debian's ``chromium``, driven by Playwright), checks its text and saves a
screenshot. Exits non-zero on the first check that fails; prints one line per page otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import requests
from _workspace import free_port, last_lines, user_path

VIEWPORT = {"width": 1600, "height": 1000}


class UiCheckError(AssertionError):
    pass


def check(condition, message: str) -> None:
    if not condition:
        raise UiCheckError(message)


def tiny_run(workdir: Path) -> None:
    """A small but complete ``main``: benchmark, two architectures trained and registered, compare."""
    command = [
        *("deepfake-detection", "main", "--data", str(workdir / "data"), "--image-size", "32"),
        *("--num-images", "16", "--arch", "custom_a,spectrum", "--epochs", "1", "--max-trials", "0"),
        *("--budget-minutes", "0"),
    ]
    print("making a tiny run:", " ".join(command), flush=True)
    log = workdir / "ui_check_run.log"
    with log.open("w") as out:
        done = subprocess.run(command, cwd=workdir, env=_env(workdir), stdout=out, stderr=subprocess.STDOUT)
    check(done.returncode == 0, f"the tiny run exited with {done.returncode}; its last lines:\n{last_lines(log)}")


def _env(workdir: Path) -> dict:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
    }


class Server:
    """``deepfake-detection ui`` on 127.0.0.1, stopped on exit."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "ui_check_server.log"
        command = ["deepfake-detection", "ui", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=workdir, env=_env(workdir), stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            check(self.process.poll() is None, f"the UI exited; its last lines:\n{last_lines(self.log)}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise UiCheckError(f"the UI did not answer on {self.url} within 120 s")

    def links(self) -> list[str]:
        return [line.strip() for line in self.log.read_text().splitlines() if line.strip().startswith("http")]

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = requests.request(method, f"{self.url}/api/2.0/mlflow/{path}", timeout=30, **kwargs)
        check(response.status_code == 200, f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def rest_checks(server: Server) -> dict:
    """What the pages rely on, through the REST API; returns the facts the browser checks use."""
    experiment = server.api("GET", "experiments/get-by-name", params={"experiment_name": "deepfake-detection"})
    experiment = experiment["experiment"]
    tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
    check(tags.get("mlflow.experimentKind") == "custom_model_development", "experiment not marked as model training")
    board = json.loads(tags.get("mlflow.sharedViewState.leaderboard", "{}"))
    check(board.get("orderByKey") == "metrics.`test_roc_auc`", f"no leaderboard view sorted by test ROC-AUC: {board}")
    exp_id = experiment["experiment_id"]

    def search(filter_string: str, order_by: list[str] | None = None) -> list[dict]:
        body = {"experiment_ids": [exp_id], "filter": filter_string, "max_results": 1000}
        return server.api("POST", "runs/search", json=body | ({"order_by": order_by} if order_by else {})).get(
            "runs", []
        )

    ranked = search(board["searchFilter"], ["metrics.test_roc_auc DESC"])
    check(ranked, f"the leaderboard filter {board['searchFilter']!r} matches no run")
    architectures = []
    for run in ranked:
        name = run["info"]["run_name"]
        metrics = {m["key"] for m in run["data"].get("metrics", [])}
        params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
        check(name == f"train-{params.get('architecture')}", f"architecture run named {name!r}")
        wanted = {c.split("`")[1] for c in board["selectedColumns"] if c.startswith("metrics.")}
        check(wanted <= metrics, f"{name} lacks the leaderboard's metric columns {sorted(wanted - metrics)}")
        files = server.api("GET", "artifacts/list", params={"run_id": run["info"]["run_id"]}).get("files", [])
        check(
            {"roc.png", "confusion_matrix.png"} <= {f["path"] for f in files},
            f"{name}: roc.png / confusion_matrix.png not at the artifact root",
        )
        architectures.append(params["architecture"])
    aucs = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "test_roc_auc") for r in ranked]
    check(aucs == sorted(aucs, reverse=True), "leaderboard not sorted by test ROC-AUC")

    summaries = search("attributes.run_name = 'train'")
    check(summaries, "no train run")
    summary = summaries[0]
    note = {t["key"]: t["value"] for t in summary["data"].get("tags", [])}.get("mlflow.note.content", "")
    check(note.startswith("**Best: "), f"the train run's description does not name the best model: {note[:80]!r}")
    best = {t["key"]: t["value"] for t in summary["data"]["tags"]}["best_architecture"]

    models = {}
    for arch in architectures:
        model = server.api("GET", "registered-models/get", params={"name": f"deepfake-{arch}"})["registered_model"]
        check("positive class" in model.get("description", "").lower(), f"deepfake-{arch} has no description")
        latest = model["latest_versions"][-1]
        version = server.api(
            "GET", "model-versions/get", params={"name": f"deepfake-{arch}", "version": latest["version"]}
        )["model_version"]
        check("ROC-AUC" in version.get("description", ""), f"deepfake-{arch} v{latest['version']} has no description")
        models[arch] = latest["version"]
    logged = requests.post(
        f"{server.url}/api/2.0/mlflow/logged-models/search", json={"experiment_ids": [exp_id]}, timeout=30
    ).json()
    names = {m["info"]["name"] for m in logged.get("models", [])}
    check(set(architectures) <= names, f"logged models not named after their architecture: {sorted(names)}")
    compare_runs = search("tags.step = 'compare-classifier'")
    return {
        "experiment_id": exp_id,
        "architecture_runs": [r["info"]["run_id"] for r in ranked],
        "architectures": architectures,
        "summary_run": summary["info"]["run_id"],
        "best": best,
        "models": models,
        "compare_runs": len(compare_runs),
    }


def close_assistant(page) -> None:
    """MLflow 3.17 opens its assistant panel on a browser's first visit; a user closes it once."""
    close = page.locator("button[aria-label='Close']")
    if close.count() and close.first.is_visible():
        close.first.click()
        page.wait_for_timeout(500)


def browser_checks(server: Server, facts: dict, out: Path, chromium: str) -> list[tuple[str, str]]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    exp = facts["experiment_id"]
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)

        def visit(url: str, expect: list[str], name: str, what: str, full_page: bool = False):
            page.goto(url)
            for text in expect:
                page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
            close_assistant(page)
            page.wait_for_timeout(1500)  # charts and images settle
            page.screenshot(path=str(out / name), full_page=full_page)
            shots.append((name, what))

        board = next(link for link in server.links() if "viewStateShareKey=leaderboard" in link)
        check(board.startswith(server.url) and f"/experiments/{exp}/" in board, f"printed link {board!r}")
        runs = [f"train-{a}" for a in facts["architectures"]]
        visit(board, [*runs, "test_roc_auc", "valid_roc_auc"], "leaderboard.png", "architecture runs by test ROC-AUC")
        order = [page.get_by_text(name, exact=True).first.bounding_box()["y"] for name in runs]
        check(order == sorted(order), "the leaderboard's rows are not in test ROC-AUC order")

        ids = urllib.parse.quote(json.dumps(facts["architecture_runs"]))
        compare = f"{server.url}/#/compare-runs?runs={ids}&experiments={urllib.parse.quote(json.dumps([exp]))}"
        for plot in ("roc.png", "confusion_matrix.png"):
            page.goto(compare)
            page.get_by_text(plot, exact=True).first.dispatch_event("click", timeout=60_000)
            images = page.locator("img[src*='blob'], img[src*='get-artifact']")
            deadline = time.monotonic() + 60
            while images.count() < len(runs) and time.monotonic() < deadline:
                page.wait_for_timeout(500)
            check(images.count() >= len(runs), f"compare view shows {images.count()} of {len(runs)} {plot} images")
            images.first.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / f"compare_{plot}"))
            shots.append((f"compare_{plot}", f"compare-runs page, {plot} of {len(runs)} runs side by side"))

        visit(
            f"{server.url}/#/experiments/{exp}/runs/{facts['summary_run']}",
            [f"Best: {facts['best']}"],
            "train_run.png",
            "the train run's description naming the best model",
        )
        best = facts["best"]
        visit(
            f"{server.url}/#/models/deepfake-{best}",
            ["Positive class", "champion"],
            "registered_model.png",
            f"deepfake-{best}: model description and aliases",
        )
        visit(
            f"{server.url}/#/models/deepfake-{best}/versions/{facts['models'][best]}",
            ["test ROC-AUC"],
            "model_version.png",
            f"deepfake-{best} version {facts['models'][best]}: metrics with intervals",
        )
        if facts["compare_runs"]:
            link = next(link for link in server.links() if "viewStateShareKey=comparison" in link)
            visit(link, ["pca_svm", "roc_auc"], "comparison.png", "compare: each model and classifier by ROC-AUC")
        browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=user_path, help="Folder with mlflow.db and mlruns/.")
    parser.add_argument("--screenshots", type=user_path, help="Where the PNGs go (default WORKDIR/screenshots).")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if not Path(args.chromium).is_file():
        print(f"no Chromium at {args.chromium} (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        if not (workdir / "mlflow.db").is_file():
            tiny_run(workdir)
        server = Server(workdir)
    except UiCheckError as error:
        print(f"UI check failed: {error}", file=sys.stderr)
        return 1
    try:
        facts = rest_checks(server)
        print(
            f"REST: {len(facts['architecture_runs'])} architecture runs ranked, best {facts['best']}, "
            f"{facts['compare_runs']} compare runs, registry descriptions and logged-model names checked"
        )
        shots = browser_checks(server, facts, args.screenshots or workdir / "screenshots", args.chromium)
    except UiCheckError as error:
        print(f"UI check failed: {error}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    for name, what in shots:
        print(f"  {name}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
