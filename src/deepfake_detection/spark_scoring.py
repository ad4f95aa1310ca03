"""``predict --engine spark``: batch scoring on Apache Spark with MLflow's ``spark_udf``.

Spark's ``binaryFile`` source reads the files (a folder, recursively; a glob; one file; any
URI Spark reads, ``s3a://…`` or ``hdfs://…`` on a cluster) as rows of ``path`` and
``content`` bytes; ``mlflow.pyfunc.spark_udf`` applies the registered pyfunc to
``struct(content AS image)`` in Arrow batches, each worker process loading the model once.
The output has the local engine's columns (``path, p_fake, label, threshold, model_uri,
error``; fake = 1 is the positive class): Parquet (a folder, Spark's layout) or, for a path
ending in ``.csv``, one CSV file gathered on the driver.

How the work divides: ``spark.sql.files.openCostInBytes`` is set to 8 KiB (Spark's 4 MiB
default counts every small image as 4 MiB, making one partition per ~30 images, and so one
model load per ~30 images); partitions then follow the bytes (up to 128 MiB each, at least
one per core). Each partition reaches the UDF in Arrow batches of ``--batch-size`` × 16 rows
(``spark.sql.execution.arrow.maxRecordsPerBatch``), scored by the model in batches of
``--batch-size``, the last one padded so the network is traced once.

Every file gets a row, as on the local engine: Spark leaves zero-byte files out of a file scan
(SPARK-26161), so they are listed through Hadoop's file system and given the local engine's
error row (``empty file (0 bytes)``).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from deepfake_detection.errors import DeepfakeError
from deepfake_detection.inference import COLUMNS, InputError, PredictSummary
from deepfake_detection.model import check_detector

RESULT_TYPE = "struct<p_fake:double,label:string,error:string>"
OPEN_COST_BYTES = 8 * 1024
LOCAL_SCHEMES = ("file:", "/", ".", "~")


class SparkError(DeepfakeError):
    """Spark is missing or the Spark job failed."""


def session(master: str | None = None, batch_rows: int = 1024, app_name: str = "deepfake-detection predict"):
    """A Spark session: ``master`` (else ``SPARK_MASTER`` or ``local[*]``), bound to 127.0.0.1
    when local, workers on this Python."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkError('the spark engine needs PySpark: pip install -e ".[spark]" (and Java 17)') from None
    master = master or os.environ.get("SPARK_MASTER") or "local[*]"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.sql.files.openCostInBytes", str(OPEN_COST_BYTES))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    try:
        return builder.getOrCreate()
    except Exception as error:  # no Java, a master that does not answer, …
        raise SparkError(f"cannot start Spark ({master}): {str(error).splitlines()[0][:300]}") from None


def _is_local(spec: str) -> bool:
    return "://" not in spec or spec.startswith("file://")


def read_files(spark, spec: str):
    """The files of ``spec`` as Spark's ``binaryFile`` rows (``path``, ``content``, …)."""
    from deepfake_detection.inference import collect_inputs

    if _is_local(spec):  # the local engine's errors for a missing path, an empty folder, a pattern matching nothing
        collect_inputs(spec)
    spec = read_path(spec)
    reader = spark.read.format("binaryFile")
    if not _has_glob(spec):
        reader = reader.option("recursiveFileLookup", "true")
    return reader.load(spec)


def _has_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def empty_files(spark, spec: str) -> list[str]:
    """The zero-byte files of ``spec`` (as ``binaryFile`` would list them, hidden ones left out),
    which Spark's file scan skips, listed with the Hadoop file system of ``spec``'s scheme."""
    jvm = spark.sparkContext._jvm
    pattern = jvm.org.apache.hadoop.fs.Path(read_path(spec))
    fs = pattern.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    found = []
    for status in fs.globStatus(pattern) or []:
        if status.isDirectory():
            files = fs.listFiles(status.getPath(), True)
            statuses = []
            while files.hasNext():
                statuses.append(files.next())
        else:
            statuses = [status]
        found += [
            f.getPath().toString()
            for f in statuses
            if f.getLen() == 0 and not f.getPath().getName().startswith((".", "_"))
        ]
    return found


def read_path(spec: str) -> str:
    """``spec`` as ``binaryFile`` is given it: a local path made absolute (unless a glob)."""
    if _is_local(spec) and not _has_glob(spec):
        return str(Path(spec.removeprefix("file://")).expanduser().resolve())
    return spec


def score(spark, spec: str, uri: str, batch_size: int = 64):
    """A Spark DataFrame of ``COLUMNS`` for the files of ``spec``, scored by the model ``uri``."""
    import mlflow
    from pyspark.sql import functions as F

    files = read_files(spark, spec)
    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type=RESULT_TYPE, env_manager="local")
    threshold = float(udf.metadata.metadata["threshold"])
    scored = files.select(F.col("path"), udf(F.struct(F.col("content").alias("image"))).alias("out"))
    p_fake = F.col("out.p_fake")
    rows = scored.select(
        F.col("path"),
        F.when(F.isnan(p_fake), F.lit(None)).otherwise(p_fake).alias("p_fake"),
        F.col("out.label").alias("label"),
        F.lit(threshold).alias("threshold"),
        F.lit(uri).alias("model_uri"),
        F.col("out.error").alias("error"),
    )
    empty = [(path, None, "", threshold, uri, "empty file (0 bytes)") for path in empty_files(spark, spec)]
    if empty:
        rows = rows.unionByName(spark.createDataFrame(empty, rows.schema))
    return rows.withColumn("path", F.regexp_replace("path", "^file:(//)?", ""))


def run_predict_spark(
    input_spec: str,
    model: str,
    output: str | Path,
    batch_size: int = 64,
    alias: str = "champion",
    master: str | None = None,
    spark=None,
) -> PredictSummary:
    """Score every file of ``input_spec`` on Spark; write ``output`` (Parquet folder, or one CSV)
    whole or not at all. Uses ``spark`` when given, else starts a session and stops it after."""
    from deepfake_detection import tracking
    from deepfake_detection.inference import model_uri

    tracking.configure()
    uri = model_uri(model, alias)
    threshold = float(check_detector(uri).metadata["threshold"])
    output = Path(output)
    if output.exists() and output.suffix.lower() != ".csv" and not output.is_dir():
        raise InputError(f"{output} exists and is not a Parquet folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    own = spark is None
    spark = spark or session(master, batch_rows=batch_size * 16)
    started = time.perf_counter()
    try:
        table = score(spark, input_spec, uri, batch_size).cache()
        if output.suffix.lower() == ".csv":
            frame = table.toPandas().sort_values("path", kind="stable")
            frame[list(COLUMNS)].to_csv(partial, index=False)
        else:
            table.write.mode("overwrite").parquet(str(partial))
        counts = {row["label"]: row["count"] for row in table.groupBy("label").count().collect()}
        if output.is_dir():
            shutil.rmtree(output)
        partial.replace(output)
    except DeepfakeError:
        raise
    except Exception as error:
        raise SparkError(f"the Spark job failed: {str(error).splitlines()[0][:500]}") from None
    finally:
        if own:
            spark.stop()
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
    return PredictSummary.of(output, uri, counts, threshold, time.perf_counter() - started)
