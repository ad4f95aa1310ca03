"""``predict``: score image files with a registered or logged detector and write a CSV.

Input: one file, a folder (searched recursively) or a glob pattern. Output columns:
``path, p_fake, label, threshold, model_uri, error`` — ``p_fake`` is the probability of the
positive class ``fake``; ``label`` is ``fake`` (1) or ``real`` (0) in words; a file that cannot be
read or decoded gets an ``error`` and no score, and the batch goes on.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepfake_detection.data.images import IMAGE_EXTENSIONS
from deepfake_detection.errors import DeepfakeError, MissingModelError

COLUMNS = ("path", "p_fake", "label", "threshold", "model_uri", "error")
MODEL_SCHEMES = ("models:/", "runs:/")


class InputError(DeepfakeError):
    """The files to score do not exist or there are none."""


@dataclass(frozen=True)
class PredictSummary:
    output: Path
    model_uri: str
    images: int
    fake: int
    real: int
    errors: int
    threshold: float
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    @classmethod
    def of(cls, output: Path, uri: str, counts: dict[str, int], threshold: float, seconds: float) -> PredictSummary:
        """From the rows written per label (``fake``, ``real``, ``""`` for unscored): one row per file."""
        fake, real, errors = (counts.get(label, 0) for label in ("fake", "real", ""))
        return cls(output, uri, fake + real + errors, fake, real, errors, threshold, seconds)


def model_uri(spec: str, alias: str = "champion") -> str:
    """``models:/…`` and ``runs:/…`` URIs and local model folders pass through; an architecture
    name means its registered model at ``alias``. Anything else is refused with the accepted forms."""
    spec = spec.strip()
    if spec.startswith(MODEL_SCHEMES) or Path(spec, "MLmodel").is_file():
        return spec  # before the architectures' import: a URI needs no TensorFlow here (serve's supervisor)
    from deepfake_detection.architectures import ARCHITECTURES
    from deepfake_detection.registry import registered_name

    if spec in ARCHITECTURES:
        return f"models:/{registered_name(spec)}@{alias}"
    raise MissingModelError(
        f"{spec!r} is not a model this tool can load: give models:/<name>@<alias>, "
        "models:/<name>/<stage or version>, runs:/<run_id>/<architecture>, a local MLflow model folder, "
        f"or an architecture name ({', '.join(ARCHITECTURES)})"
    )


def collect_inputs(spec: str) -> list[Path]:
    """The image files named by ``spec``: a file, a folder (recursive, image extensions) or a glob."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file())
        files = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
        # Files with other extensions are reported too, so nothing is silently left out.
        others = [p for p in found if p.suffix.lower() not in IMAGE_EXTENSIONS and not p.name.startswith(".")]
        if not files and not others:
            raise InputError(f"{path} has no files to score (searched recursively)")
        return files + others
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"the pattern {spec!r} matches no files")
        return files
    raise InputError(f"{spec} does not exist (give an image file, a folder or a glob pattern)")


def _read(path: Path) -> tuple[bytes | None, str]:
    try:
        return path.read_bytes(), ""
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}"


CHUNK_PIXEL_BYTES = 128 * 2**20  # decoded pixels of one chunk; two chunks are in memory at once


def chunk_files(image_size: int, batch_size: int) -> int:
    """Files per chunk: at most 1,024 and 128 MiB of decoded pixels, a whole number of batches."""
    fits = CHUNK_PIXEL_BYTES // (image_size * image_size * 3 * 4)
    return max(batch_size, min(1024, fits) // batch_size * batch_size)


def predict_files(detector, files: list[Path], uri: str, batch_size: int = 64, progress: bool = True):
    """Yield one DataFrame of ``COLUMNS`` per chunk of files, in order. The next chunk is read,
    checked and decoded in a background thread while the model scores this one."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    chunk = chunk_files(detector.config.image_size, batch_size)
    first = min(chunk, 2 * batch_size)  # a short first chunk: the model starts early, the rest overlaps
    parts = [files[:first]] + [files[start : start + chunk] for start in range(first, len(files), chunk)]
    parts = [part for part in parts if part]

    def load(part: list[Path]):
        blobs, errors = zip(*(_read(p) for p in part))
        return detector.prepare(list(blobs), list(errors))

    with (
        tqdm(total=len(files), unit="img", desc="predict", disable=not progress) as bar,
        ThreadPoolExecutor(1) as reader,
    ):
        ahead = reader.submit(load, parts[0]) if parts else None
        for number, part in enumerate(parts):
            prepared = ahead.result()
            if number + 1 < len(parts):
                ahead = reader.submit(load, parts[number + 1])
            scored = detector.score_prepared(prepared, batch_size=batch_size)
            scored.insert(0, "path", [str(p) for p in part])
            scored.insert(3, "threshold", detector.config.threshold)
            scored.insert(4, "model_uri", uri)
            bar.update(len(part))
            yield scored[list(COLUMNS)]


def run_predict(
    input_spec: str,
    model: str,
    output: str | Path,
    batch_size: int = 64,
    alias: str = "champion",
    progress: bool = True,
) -> PredictSummary:
    """Score every file of ``input_spec`` with ``model``; write ``output`` (CSV) atomically."""
    from deepfake_detection import tracking
    from deepfake_detection.model import load_detector

    files = collect_inputs(input_spec)
    tracking.configure()
    uri = model_uri(model, alias)
    detector = load_detector(uri)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    started = time.perf_counter()
    counts = {"fake": 0, "real": 0, "": 0}
    try:
        for number, scored in enumerate(predict_files(detector, files, uri, batch_size, progress)):
            scored.to_csv(partial, mode="a", header=number == 0, index=False)
            for label, count in scored["label"].value_counts().items():
                counts[label] += int(count)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    summary = PredictSummary.of(output, uri, counts, detector.config.threshold, time.perf_counter() - started)
    if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: keep the predictions with the run
        with tracking.run("predict", tags={"step": "predict", "model_uri": uri}):
            import mlflow

            mlflow.log_params({"predict.input": input_spec, "predict.model_uri": uri, "predict.batch_size": batch_size})
            mlflow.log_metrics(
                {
                    "images": summary.images,
                    "fake": summary.fake,
                    "real": summary.real,
                    "errors": summary.errors,
                    "images_per_second": summary.images_per_second,
                }
            )
            mlflow.log_artifact(str(output))
    return summary


def read_predictions(path: Path | str) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values={"p_fake": [""]})
