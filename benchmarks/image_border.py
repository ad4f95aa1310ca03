"""How much of a detector's score comes from the image's border? The test split scored clean,
then with only its outer ring of W pixels changed (each replaced by the nearest pixel of the
interior, as ``numpy.pad(mode="edge")`` extends it): the interior keeps every pixel, at its own
resolution and pixel phase, so a detector that reads the generator's trace where it lives
everywhere in the image loses little, and one that leans on the border loses much. Beside them
the suite's ``crop_0.8`` (the outer 10 % of each side cut, the rest enlarged back by decoding):
the border gone *and* the pixel grid re-sampled. Test ROC-AUC, fake = positive, 95 % stratified
bootstrap intervals.

Before the detector, a probe that uses none: where in the image is the trace? Per band of rings
(pixels at distance 0-1, 2-3, ... from the nearest edge), a logistic regression on that band's
neighbouring-pixel residual (what npr reads: each pixel minus the top-left pixel of its 2x2
cell), summarised per residual phase and colour channel (mean, mean absolute value, log mean
square: 27 numbers), fit on valid and scored on test. A trace spread over the image scores as
well in the interior's bands as in the border's; one the border carries scores higher there.

    python benchmarks/image_border.py --model models:/deepfake-npr@champion [--data DIR]
        [--rings 2,4,6,8] [--bands 0-1,2-3,4-5,6-7,8-15,16-31,6-31] [--markdown PATH]

(after ``make run``, in the folder it ran in: ``--data data/combined-real-vs-fake``).
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from _report import Table, add_markdown_option, write_markdown
from _workspace import dataset_path, model_uri, user_store
from residual_spectrum import as_seen, npr_residual


def ring_replaced(blob: bytes, width: int) -> bytes:
    """The image file ``blob`` with its outer ``width`` pixels replaced by the interior's edge
    pixels, as a lossless PNG; the interior's pixels are unchanged."""
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    inner = pixels[width:-width, width:-width]
    out = io.BytesIO()
    Image.fromarray(np.pad(inner, ((width, width), (width, width), (0, 0)), mode="edge")).save(out, format="PNG")
    return out.getvalue()


def ring_distance(size: int) -> np.ndarray:
    """``(size, size)``: each pixel's distance, in pixels, to the nearest edge (0 on the border)."""
    steps = np.arange(size)
    inward = np.minimum(steps, size - 1 - steps)
    return np.minimum.outer(inward, inward)


def band_features(residual: np.ndarray, band: np.ndarray) -> np.ndarray:
    """``(n, size, size, channels)`` NPR residual, ``(size, size)`` boolean band -> ``(n, 27)``
    for 3 channels: per residual phase (the three pixels of a 2x2 cell that are not its top-left,
    which is 0) and channel, the band's mean, mean absolute value and log mean square."""
    columns = []
    for row, column in ((0, 1), (1, 0), (1, 1)):
        phase = np.zeros(band.shape, bool)
        phase[row::2, column::2] = True
        values = residual[:, band & phase, :]
        columns += [values.mean(axis=1), np.abs(values).mean(axis=1), np.log((values**2).mean(axis=1) + 1e-3)]
    return np.concatenate(columns, axis=1)


def parse_bands(text: str) -> list[tuple[int, int]]:
    """``"0-1,6-31"`` -> ``[(0, 1), (6, 31)]``: inclusive distances from the nearest edge."""
    bands = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, _, high = part.partition("-")
        try:
            band = (int(low), int(high or low))
        except ValueError:
            raise SystemExit(f"--bands: {part!r} is not FIRST-LAST (distances from the edge, e.g. 0-1)") from None
        if band[0] < 0 or band[1] < band[0]:
            raise SystemExit(f"--bands: {part!r} must be 0 <= FIRST <= LAST")
        bands.append(band)
    return bands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=model_uri, required=True, help="A model URI or folder, as predict takes.")
    parser.add_argument("--data", type=dataset_path, default="data/combined-real-vs-fake", help="A prepared dataset.")
    parser.add_argument("--rings", default="2,4,6,8", help="Widths of the outer ring replaced, in pixels.")
    parser.add_argument(
        "--bands", default="0-1,2-3,4-5,6-7,8-15,16-31,6-31", help="Bands of distances from the edge the probe reads."
    )
    add_markdown_option(parser)
    args = parser.parse_args()
    bands = parse_bands(args.bands)

    if args.model.startswith("models:/"):
        user_store()
    from sklearn.metrics import roc_auc_score

    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.degradations import BY_NAME, degrade
    from deepfake_detection.evaluation import fake_labels, roc_auc_interval
    from deepfake_detection.model import load_detector, usable_bytes

    detector = load_detector(args.model)
    test = load_manifest(args.data, "test")
    y = fake_labels(test)
    blobs = [usable_bytes(Path(f).read_bytes()) for f in test["file"]]
    conditions = {"none (clean)": blobs}
    for width in (int(w) for w in args.rings.split(",")):
        conditions[f"outer {width} px replaced"] = [ring_replaced(b, width) for b in blobs]
    conditions["crop_0.8 (suite)"] = [degrade(b, BY_NAME["crop_0.8"]) for b in blobs]

    size = detector.config.image_size
    print(f"where the trace is, no detector: a linear probe on the NPR residual per band ({args.data}, {size} px)")
    probe = band_probe(args.data, size, bands)

    print(f"{args.model} ({detector.config.architecture}, {size} px) on {args.data} test ({len(y)} images)")
    table = Table({"condition": "<24", "ROC-AUC [95 % CI]": ">22"})
    print(table.header())
    for name, files in conditions.items():
        p_fake = detector.predict_encoded(files)
        interval = roc_auc_interval(y, p_fake)
        print(table.row(name, f"{roc_auc_score(y, p_fake):.3f} [{interval.low:.3f}, {interval.high:.3f}]"), flush=True)
    write_markdown(
        args.markdown,
        "linear probe per band of the NPR residual (fit on valid), test ROC-AUC, fake = positive, 95 % intervals",
        probe,
        f"test ROC-AUC of {args.model}, fake = positive, 95 % intervals",
        table,
    )


def band_probe(data, size: int, bands: list[tuple[int, int]]) -> Table:
    """The probe's table, printed row by row: per band, its pixel count and the test ROC-AUC
    [95 % CI] of a logistic regression on :func:`band_features`, fit on valid."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.evaluation import fake_labels, roc_auc_interval

    residual, y = {}, {}
    for split in ("valid", "test"):
        rows = load_manifest(data, split)
        residual[split] = npr_residual(as_seen(list(rows["file"]), None, size, seed=0))
        y[split] = fake_labels(rows)
    distance = ring_distance(size)
    table = Table({"band (px from edge)": "<20", "pixels": ">7", "probe ROC-AUC [95 % CI]": ">24"})
    print(table.header(), flush=True)
    for low, high in bands:
        band = (distance >= low) & (distance <= high)
        if not band.any():
            raise SystemExit(f"--bands: {low}-{high} holds no pixel of a {size} px image")
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(band_features(residual["valid"], band), y["valid"])
        p_fake = probe.predict_proba(band_features(residual["test"], band))[:, 1]
        interval = roc_auc_interval(y["test"], p_fake)
        auc = roc_auc_score(y["test"], p_fake)
        print(
            table.row(f"{low}-{high}", int(band.sum()), f"{auc:.3f} [{interval.low:.3f}, {interval.high:.3f}]"),
            flush=True,
        )
    return table


if __name__ == "__main__":
    main()
