"""``train --distribute multi-host``: one model fitted data-parallel by several processes (one per
machine, or per GPU) with Keras 3's distribution API on the JAX backend.

Process 0 hosts the coordinator (``jax.distributed``), runs the hyperparameter search on its own,
then tells the others the hyperparameters and epochs of each final fit. Every process feeds its
own shard of the training and validation files through the same tf.data pipeline,
``batch_size / N`` images per step; ``keras.distribution.DataParallel`` makes the global batch of
``batch_size`` from the N shards and all-reduces the gradients (gloo on CPUs, NCCL on GPUs), so
every process ends with the same weights. Process 0 alone evaluates, logs to MLflow and registers;
the others log nothing and exit 0 when it says it is done.

Faults: a process that cannot reach the coordinator gives up after ``distribute_timeout`` seconds;
a process that dies is declared dead by the others after :data:`HEARTBEAT_SECONDS` (a fit in progress
fails at once, on the closed connection), and process 0 then stops without registering anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, replace

from deepfake_detection.errors import DistributedError, SettingsError

HEARTBEAT_SECONDS = 30  # a process silent this long is declared dead by the coordinator
LEAVE_GRACE_SECONDS = 2.0  # process 0 outlives the others' disconnection by this much (_wait_until_alone)
FAILED_WAIT_SECONDS = 5.0  # after a failed fit, how long process 0 waits for the others to leave
# Settings that must agree across the processes, refused before any run opens where they do not (the
# dataset is compared by its digest, as each machine keeps its copy; work folder, cache budget local).
SHARED_SETTINGS = (
    "arch",
    "image_size",
    "epochs",
    "budget_minutes",
    "max_trials",
    "tuner",
    "executions_per_trial",
    "weights",
    "batch_size",
    "num_samples",
    "seed",
    "patience",
    "augment",
    "augment_recipe",
    "num_processes",
)


def use_jax() -> None:
    """Select the JAX backend for this process; Keras reads it once, at its first import."""
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != "jax":
        raise SettingsError(
            f"--distribute multi-host trains on the JAX backend, but this process already runs Keras on "
            f"{keras.backend.backend()}; start a new process (`deepfake-detection train ...`) or set KERAS_BACKEND=jax"
        )
    os.environ["KERAS_BACKEND"] = "jax"


def parse_coordinator(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (the first of a comma list, as in ``KERAS_DISTRIBUTION_JOB_ADDRESSES``)."""
    first = address.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"--coordinator must be HOST:PORT (process 0's address and a free port), not {address!r}")
    return host.strip("[]"), int(port)


def check(settings) -> None:
    """Refuse a cluster that cannot work, before anything starts."""
    parse_coordinator(settings.coordinator)
    n, i = settings.num_processes, settings.process_id
    if n < 1:
        raise SettingsError(f"--num-processes must be at least 1, not {n}")
    if not 0 <= i < n:
        raise SettingsError(f"--process-id must be in 0..{n - 1} for --num-processes {n}, not {i}")
    if settings.batch_size % n:
        raise SettingsError(
            f"--batch-size {settings.batch_size} is the global batch, split evenly over the processes: "
            f"choose a multiple of --num-processes {n}"
        )
    if settings.distribute_timeout <= 0:
        raise SettingsError(f"--distribute-timeout must be positive, not {settings.distribute_timeout:g}")


@dataclass
class Cluster:
    """This process's place among ``num_processes``, and the messages process 0 sends the others."""

    coordinator: str
    num_processes: int
    process_id: int
    timeout: float
    _sent: int = field(default=0, repr=False)
    _received: int = field(default=0, repr=False)

    @property
    def chief(self) -> bool:
        return self.process_id == 0

    @property
    def name(self) -> str:
        return f"process {self.process_id} of {self.num_processes}"

    # -- joining ----------------------------------------------------------------------------------

    @classmethod
    def join(cls, settings, digest: str) -> Cluster:
        """Start (process 0) or reach the coordinator, bring up JAX's devices and collectives in
        every process, and check that all were given the same settings and dataset."""
        import jax

        host, port = parse_coordinator(settings.coordinator)
        cluster = cls(f"{host}:{port}", settings.num_processes, settings.process_id, settings.distribute_timeout)
        if cluster.chief:
            _check_port_free(port)
            print(
                f"{cluster.name}: coordinator on port {port}; waiting up to {cluster.timeout:g} s "
                f"for the other {cluster.num_processes - 1} process(es)",
                flush=True,
            )
        else:
            _wait_for_port(host, port, cluster.timeout, cluster.name)
            print(f"{cluster.name}: joining the coordinator at {cluster.coordinator}", flush=True)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        # A process that dies must not take process 0 down with it: process 0 reports it instead.
        jax.config.update("jax_enable_recoverability", True)
        jax.distributed.initialize(
            cluster.coordinator,
            cluster.num_processes,
            cluster.process_id,
            initialization_timeout=max(1, round(cluster.timeout)),
            heartbeat_timeout_seconds=HEARTBEAT_SECONDS,
            shutdown_timeout_seconds=max(1, round(cluster.timeout)),
        )
        jax.devices()  # every process publishes its devices now, not at its first computation
        cluster._handshake(_fingerprint(settings, digest))
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("deepfake-detection join")  # opens the collectives' connections
        print(f"{cluster.name}: joined; {len(jax.devices())} device(s) in all: {_devices()}", flush=True)
        return cluster

    def _handshake(self, mine: dict) -> None:
        if self.chief:
            self._set("settings", json.dumps(mine))
            for other in range(1, self.num_processes):
                answer = self._get(f"ready/{other}", self.timeout)
                if answer != "ok":
                    self._wait_until_alone()  # the refusing process disconnects before the coordinator stops
                    raise DistributedError(f"process {other} refused to start: {answer}")
            return
        theirs = json.loads(self._get("settings", self.timeout))
        differ = [f"{k} {mine[k]!r} here, {theirs[k]!r} on process 0" for k in mine if mine[k] != theirs.get(k)]
        self._set(f"ready/{self.process_id}", "ok" if not differ else "settings differ: " + "; ".join(differ))
        if differ:
            self.leave()  # while process 0's coordinator still runs: at exit, JAX would abort this process
            raise DistributedError(f"{self.name}: settings differ from process 0's: " + "; ".join(differ))

    # -- the fit: the placement a final fit is handed (training.fit.Placement) -------------------------

    @property
    def logs(self) -> bool:
        return self.chief  # process 0 alone logs and registers

    @property
    def processes(self) -> int:
        return self.num_processes

    def distribution(self):
        """Data parallelism over every device of every process (each process's GPUs, else its CPU)."""
        import jax
        import keras

        devices = keras.distribution.list_devices(jax.devices()[0].platform)
        return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)

    def feed(self, search):
        """``search`` with this process's shard of train and valid (every N-th file from its
        index; all shards cut to the same length so every process runs the same steps, leaving
        out at most N - 1 files) and its share of the global batch."""
        n, i = self.num_processes, self.process_id
        parts = dict(search.parts)
        for split in ("train", "valid"):
            rows = search.parts[split]
            size = len(rows) // n
            if size == 0:
                raise SettingsError(f"{split} has {len(rows)} images: too few for {n} processes")
            parts[split] = rows.iloc[i::n].iloc[:size]
        settings = replace(search.settings, batch_size=search.settings.batch_size // n)
        return replace(search, parts=parts, settings=settings)

    @contextlib.contextmanager
    def scope(self, name: str):
        """The data-parallel distribution; an error inside (most often another process gone: its
        connection closes) becomes one that says so."""
        try:
            with self.distribution().scope():
                yield
        except Exception as error:
            raise DistributedError(
                f"{self.name}: the data-parallel {name} fit stopped: {type(error).__name__}: {str(error)[:500]} "
                "(when another process stopped, its output says why); nothing is registered"
            ) from error

    def start(self, name: str, best, epochs: int) -> dict:
        """Process 0 asks the others to join this fit (they run :func:`follow`)."""
        if self.chief:
            self.send("fit", architecture=name, hyperparameters=best.get_config(), epochs=epochs)
        return {}

    def checkpoints(self, folder) -> list:
        return []  # saving makes variables, which under a multi-host distribution takes every process

    def finish(self, model, name: str, build):
        """Process 0's local copy of the common weights, once every process has the same."""
        digest = self.agree_on_weights(model, name)
        return local_copy(model, build), digest

    def agree_on_weights(self, model, architecture: str) -> str:
        """The sha256 of the fitted weights; process 0 checks that every process has the same."""
        digest = weights_digest(model)
        key = f"weights/{architecture}/{self._sent if self.chief else self._received}"
        if not self.chief:
            self._set(f"{key}/{self.process_id}", digest)
            return digest
        for other in range(1, self.num_processes):
            theirs = self._get(f"{key}/{other}", self.timeout)
            if theirs != digest:
                raise DistributedError(
                    f"process {other}'s weights after the {architecture} fit differ from process 0's "
                    f"({theirs[:12]} vs {digest[:12]}): nothing is registered"
                )
        return digest

    # -- messages from process 0 --------------------------------------------------------------------

    def send(self, kind: str, **body) -> None:
        self._sent += 1
        self._set(f"step/{self._sent}", json.dumps({"kind": kind, **body}))

    def receive(self) -> dict:
        """Process 0's next message; waits as long as process 0 lives (its search can take hours;
        if it dies, JAX stops this process within the heartbeat timeout)."""
        self._received += 1
        return json.loads(self._get(f"step/{self._received}", None))

    @contextlib.contextmanager
    def leading(self):
        """Process 0: tell the others it is done, or that it failed and why, when the block ends."""
        try:
            yield
        except BaseException as error:
            with contextlib.suppress(Exception):
                self.send("failed", error=f"{type(error).__name__}: {error}"[:2000])
                self._wait_until_alone(timeout=FAILED_WAIT_SECONDS)  # a process that died never answers
            raise
        self.send("done")
        self._wait_until_alone()

    def leave(self) -> None:
        """The others, when process 0 is done or refused them: say so, then disconnect now, while
        its coordinator still runs (at exit, after it has stopped, JAX would abort the process)."""
        import jax

        self._set(f"left/{self.process_id}", "leaving")
        jax.distributed.shutdown()

    def _wait_until_alone(self, timeout: float | None = None) -> None:
        """Process 0: return once every other process has disconnected, so the coordinator does
        not stop under them. Each says it is leaving (:meth:`leave`); one silent for ``timeout``
        s (default: the cluster's) is dead or stuck, and not waited for. The service counts a
        process gone as soon as it receives its shutdown, before that process has its answer:
        stopping the service then aborts it (SIGABRT), so process 0 stays a moment longer."""
        others = list(range(1, self.num_processes))
        try:
            for other in others:
                self._get(f"left/{other}", self.timeout if timeout is None else timeout)
        except DistributedError:
            return
        with contextlib.suppress(Exception):  # the asking process must be among those asked about
            while set(others) & set(self._client().get_live_nodes([self.process_id, *others])):
                time.sleep(0.2)
        time.sleep(LEAVE_GRACE_SECONDS)

    # -- the coordinator's key-value store ----------------------------------------------------------

    @staticmethod
    def _client():
        from jax._src import distributed

        return distributed.global_state.client

    def _set(self, key: str, value: str) -> None:
        self._client().key_value_set(f"deepfake/{key}", value)

    def _get(self, key: str, timeout: float | None) -> str:
        from jax.errors import JaxRuntimeError

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 5.0 if deadline is None else min(5.0, max(0.1, deadline - time.monotonic()))
            try:
                return self._client().blocking_key_value_get(f"deepfake/{key}", int(wait * 1000))
            except JaxRuntimeError as error:
                if "DEADLINE_EXCEEDED" not in str(error):
                    raise DistributedError(f"{self.name}: the coordinator failed: {error}") from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise DistributedError(
                        f"{self.name}: no answer for {key!r} within {timeout:g} s: "
                        "a process stopped or is stuck (see its output)"
                    ) from None


def weights_digest(model) -> str:
    import numpy as np

    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def local_copy(model, build):
    """A copy of a distributed ``model`` on this process's own device (``build()`` makes the same
    architecture), for evaluating and saving without the other processes."""
    import keras

    weights = model.get_weights()  # replicated: every process holds the whole of each
    keras.distribution.set_distribution(None)
    copy = build()
    copy.set_weights(weights)
    return copy


def follow(cluster: Cluster, fit) -> None:
    """Processes other than 0: run each final fit process 0 asks for with ``fit(architecture,
    hyperparameters_config, epochs)`` (which returns the fit), log nothing, and return when
    process 0 is done (raise if it failed)."""
    print(f"{cluster.name}: process 0 searches, logs and registers; this process fits its shard", flush=True)
    while True:
        message = cluster.receive()
        if message["kind"] == "done":
            cluster.leave()
            print(f"{cluster.name}: process 0 is done; nothing was logged here", flush=True)
            return
        if message["kind"] == "failed":
            cluster.leave()
            raise DistributedError(f"process 0 stopped: {message['error']}")
        name = message["architecture"]
        print(f"{cluster.name}: {name}: fitting its shard, {message['epochs']} epoch(s)", flush=True)
        done = fit(name, message["hyperparameters"], message["epochs"])
        print(
            f"{cluster.name}: {name} fitted its shard ({done.epochs_run} epochs, weights sha256 "
            f"{done.weights_sha256[:12]})",
            flush=True,
        )


def _fingerprint(settings, digest: str) -> dict:
    values = asdict(settings)
    return {k: values[k] for k in SHARED_SETTINGS} | {"dataset_digest": digest}


def _devices() -> str:
    import jax

    return ", ".join(f"{d.platform}:{d.id}@{d.process_index}" for d in jax.devices())


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError as error:
            raise DistributedError(
                f"process 0 hosts the coordinator on port {port}, but it is taken ({error.strerror}): "
                "choose another port in --coordinator for every process"
            ) from None


def _wait_for_port(host: str, port: int, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise DistributedError(
                    f"{name}: cannot reach the coordinator {host}:{port} within {timeout:g} s ({error}); "
                    "start process 0 there first and check the address and firewall"
                ) from None
            time.sleep(0.5)
