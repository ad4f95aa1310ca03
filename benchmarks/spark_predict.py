"""``predict --engine spark`` (Spark ``local[N]``) next to the local engine, on the same folder.

    python benchmarks/spark_predict.py [--num-images 10000] [--image-size 64] [--arch custom_c]
                                       [--master local[2]] [--batch-size 64] [--repeats 2] [--markdown PATH]
    python benchmarks/spark_predict.py --model models:/deepfake-custom_c@champion --input DIR

Without ``--model`` it builds a benchmark dataset of ``--num-images`` per class (20,000 files
by default) and trains a detector on it (no tuning, 1 epoch) in a temporary tracking store;
that is not timed. Then, ``--repeats`` times each, alternating: the local engine (files → CSV)
and the Spark engine (files → Parquet; session start included, reported apart). Prints
images/s (median), the Spark session's start-up, the Spark/local ratio, and how the work was
divided: partitions of the ``binaryFile`` read and the Arrow batch size given to the UDF.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, existing_path, model_uri, scoring_workspace, trained_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=model_uri, help="Model URI (default: train one here).")
    parser.add_argument("--input", type=existing_path, help="Folder to score (default: the built dataset).")
    parser.add_argument("--arch", default="custom_c")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=10000, help="Bench images per class when building.")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    add_markdown_option(parser)
    args = parser.parse_args()

    from deepfake_detection.inference import collect_inputs, run_predict
    from deepfake_detection.spark_scoring import read_files, run_predict_spark, session

    workspace = scoring_workspace("spark-bench-", args.model)
    uri = args.model
    folder = args.input
    if not uri or folder is None:
        data = bench_data(None, workspace, args.image_size, num_images=args.num_images)
        folder = folder or data
        uri = uri or trained_detector(args.arch, data, args.image_size, workspace)
    files = len(collect_inputs(str(folder)))
    batch_rows = args.batch_size * 16

    run_predict(str(folder), uri, workspace / "warmup.csv", args.batch_size, progress=False)  # caches, tracing
    local, spark_rates, starts = [], [], []
    partitions = None
    for _ in range(args.repeats):
        started = time.perf_counter()
        summary = run_predict(str(folder), uri, workspace / "local.csv", args.batch_size, progress=False)
        local.append(summary.images / (time.perf_counter() - started))

        started = time.perf_counter()
        spark = session(args.master, batch_rows=batch_rows)
        starts.append(time.perf_counter() - started)
        if partitions is None:
            partitions = read_files(spark, str(folder)).rdd.getNumPartitions()
        output = workspace / "spark.parquet"
        shutil.rmtree(output, ignore_errors=True)
        try:
            scored = run_predict_spark(str(folder), uri, output, args.batch_size, spark=spark)
        finally:
            spark.stop()
        spark_rates.append(scored.images / (time.perf_counter() - started))
        assert scored.images == summary.images == files, (scored.images, summary.images, files)

    a, b = statistics.median(spark_rates), statistics.median(local)
    caption = (
        f"model {uri}, {files} files in {folder}, batch {args.batch_size}, {os.cpu_count()} CPUs, "
        f"median of {args.repeats}"
    )
    table = Table({"engine": "<44", "images/s": ">9.1f", "session start s": ">15.1f"})
    table.row("local engine (files -> CSV)", b, "")
    table.row(f"spark engine {args.master} (files -> Parquet)", a, statistics.median(starts))
    ratio = f"spark / local = {a / b:.2f} (the spark rate includes the session start)"
    division = (
        f"work division: {partitions} partitions of the binaryFile read "
        f"(openCostInBytes 8 KiB, maxPartitionBytes 128 MiB); Arrow batches of {batch_rows} rows to the UDF; "
        f"model batches of {args.batch_size}"
    )
    print(f"{caption}\n{table.text()}\n{ratio}\n{division}")
    write_markdown(args.markdown, caption, table, ratio, division)


if __name__ == "__main__":
    main()
