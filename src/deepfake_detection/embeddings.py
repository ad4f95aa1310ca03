"""Penultimate-layer (``embedding``) extraction, batched, cached by model version + dataset digest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detection.architectures import EMBEDDING_LAYER
from deepfake_detection.evaluation import fake_labels


def extract(keras_model, root, rows: pd.DataFrame, image_size: int, batch_size: int = 64, desc: str = "embeddings"):
    """Embeddings and head probabilities ``(N x D float32, N float32)`` for ``rows``, in order."""
    import keras
    from tqdm import tqdm

    from deepfake_detection.data.pipeline import make_dataset

    both = keras.Model(keras_model.inputs, [keras_model.get_layer(EMBEDDING_LAYER).output, keras_model.outputs[0]])
    dataset = make_dataset(root, "", image_size=image_size, batch_size=batch_size, cache=False, manifest=rows)
    embeddings, probabilities = [], []
    for images, _ in tqdm(dataset, total=int(np.ceil(len(rows) / batch_size)), desc=desc, unit="batch"):
        embedding, p_fake = both.predict_on_batch(images)  # a traced function, not layer-by-layer eager calls
        embeddings.append(np.asarray(embedding, dtype=np.float32))
        probabilities.append(np.asarray(p_fake, dtype=np.float32).reshape(-1))
    return np.concatenate(embeddings), np.concatenate(probabilities)


def cached_extract(cache: Path, keras_model, root, rows: pd.DataFrame, image_size: int, batch_size: int = 64):
    """Like :func:`extract`, but reuse ``cache`` (a ``.npz`` with path and label) when it matches ``rows``."""
    cache = Path(cache)
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if list(stored["path"]) == list(rows["path"]):
            return stored["embedding"], stored["p_fake"]
    embedding, p_fake = extract(keras_model, root, rows, image_size, batch_size, desc=cache.stem)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez_compressed(
        partial,
        embedding=embedding,
        p_fake=p_fake,
        path=rows["path"].to_numpy(dtype=str),
        label=rows["label"].to_numpy(dtype=str),
        target=fake_labels(rows),
    )
    partial.replace(cache)
    return embedding, p_fake
