"""Penultimate-layer (``embedding``) extraction, batched and streamed to disk.

Each split's embeddings go straight from each batch to the end of a ``.npy`` file on disk, so
extraction holds one batch in memory whatever the split's size, and readers map the file
(``mmap_mode="r"``) instead of loading it. A folder holds ``embedding.npy`` (N x D float32), ``p_fake.npy``
(the CNN head's output, N) and ``rows.csv`` (path, label, target: fake = 1, real = 0); it is
written beside its final place and renamed into it, and reused while its rows match.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detection.architectures import EMBEDDING_LAYER
from deepfake_detection.evaluation import fake_labels


@dataclass(frozen=True)
class StoredEmbeddings:
    """A split's embeddings on disk, mapped read-only, and the head's p_fake, in row order."""

    folder: Path
    embedding: np.ndarray  # N x D float32, memory-mapped
    p_fake: np.ndarray  # N float32

    @classmethod
    def open(cls, folder: Path | str) -> StoredEmbeddings:
        folder = Path(folder)
        return cls(folder, np.load(folder / "embedding.npy", mmap_mode="r"), np.load(folder / "p_fake.npy"))


def extract_to(
    folder: Path | str,
    keras_model,
    root,
    rows: pd.DataFrame,
    image_size: int,
    batch_size: int = 64,
    desc: str = "embeddings",
) -> StoredEmbeddings:
    """Write the embeddings and head probabilities of ``rows`` (in order) to ``folder``, batch by batch."""
    import keras
    from tqdm import tqdm

    from deepfake_detection.data.pipeline import make_dataset

    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    layer = keras_model.get_layer(EMBEDDING_LAYER)
    both = keras.Model(keras_model.inputs, [layer.output, keras_model.outputs[0]])
    dimension = int(np.prod(layer.output.shape[1:]))
    p_fake = np.empty(len(rows), dtype=np.float32)
    dataset = make_dataset(root, "", image_size=image_size, batch_size=batch_size, cache=False, manifest=rows)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
    start = 0
    with open(partial / "embedding.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header | {"shape": (len(rows), dimension)})
        for images, _ in tqdm(dataset, total=int(np.ceil(len(rows) / batch_size)), desc=desc, unit="batch"):
            batch_embedding, batch_p = both.predict_on_batch(images)  # a traced function, not eager layer calls
            end = start + len(batch_p)
            handle.write(np.ascontiguousarray(batch_embedding, dtype=np.float32).tobytes())
            p_fake[start:end] = np.asarray(batch_p, dtype=np.float32).reshape(-1)
            start = end
    if start != len(rows):
        raise RuntimeError(f"extracted {start} embeddings for {len(rows)} rows")
    np.save(partial / "p_fake.npy", p_fake)
    pd.DataFrame({"path": rows["path"], "label": rows["label"], "target": fake_labels(rows)}).to_csv(
        partial / "rows.csv", index=False
    )
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return StoredEmbeddings.open(folder)


def cached_extract(
    folder: Path | str, keras_model, root, rows: pd.DataFrame, image_size: int, batch_size: int = 64
) -> StoredEmbeddings:
    """Like :func:`extract_to`, but reuse ``folder`` when it holds exactly ``rows``."""
    folder = Path(folder)
    if (folder / "rows.csv").is_file():
        stored = pd.read_csv(folder / "rows.csv", keep_default_na=False)
        if list(stored["path"]) == list(rows["path"]):
            return StoredEmbeddings.open(folder)
    return extract_to(folder, keras_model, root, rows, image_size, batch_size, desc=folder.name)
