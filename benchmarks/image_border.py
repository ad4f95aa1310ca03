"""How much of a detector's score comes from the image's border? The test split scored clean,
then with only its outer ring of W pixels changed (each replaced by the nearest pixel of the
interior, as ``numpy.pad(mode="edge")`` extends it): the interior keeps every pixel, at its own
resolution and pixel phase, so a detector that reads the generator's trace where it lives
everywhere in the image loses little, and one that leans on the border loses much. Beside them
the suite's ``crop_0.8`` (the outer 10 % of each side cut, the rest enlarged back by decoding):
the border gone *and* the pixel grid re-sampled. Test ROC-AUC, fake = positive, 95 % stratified
bootstrap intervals.

    python benchmarks/image_border.py --model models:/deepfake-npr@champion [--data DIR]
        [--rings 2,4,6,8] [--markdown PATH]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=model_uri, required=True, help="A model URI or folder, as predict takes.")
    parser.add_argument("--data", type=dataset_path, default="data/combined-real-vs-fake", help="A prepared dataset.")
    parser.add_argument("--rings", default="2,4,6,8", help="Widths of the outer ring replaced, in pixels.")
    add_markdown_option(parser)
    args = parser.parse_args()

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
    print(f"{args.model} ({detector.config.architecture}, {size} px) on {args.data} test ({len(y)} images)")
    table = Table({"condition": "<24", "ROC-AUC [95 % CI]": ">22"})
    print(table.header())
    for name, files in conditions.items():
        p_fake = detector.predict_encoded(files)
        interval = roc_auc_interval(y, p_fake)
        print(table.row(name, f"{roc_auc_score(y, p_fake):.3f} [{interval.low:.3f}, {interval.high:.3f}]"), flush=True)
    write_markdown(args.markdown, f"test ROC-AUC of {args.model}, fake = positive, 95 % intervals", table)


if __name__ == "__main__":
    main()
