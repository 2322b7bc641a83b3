"""How a run spreads over devices and processes (``TrainConfig.distribute``).

* ``none``: one device.
* ``mirrored`` (TensorFlow): every local GPU (or every logical CPU device) of one machine,
  through ``tf.distribute.MirroredStrategy``.
* ``data_parallel`` (JAX): every local device of one process, through
  ``keras.distribution.DataParallel``.
* ``multiprocess`` (JAX): every device of every process (one process per GPU or per
  machine), through ``jax.distributed`` and ``keras.distribution.DataParallel``. The processes
  find each other through a coordinator (``HOST:PORT`` of process 0), given as a
  :class:`Cluster` or by JAX's cluster auto-detection (SLURM, Open MPI, Cloud TPU...). Each
  process reads its own part of every global batch (see
  :mod:`keras_mlrs.data.shards.batches`); process 0 alone writes the run directory.

TensorFlow's ``MultiWorkerMirroredStrategy`` is not offered: Keras 3 does not support it
(keras-team/keras#20585); multi-machine training in Keras 3 is JAX's.
"""

import atexit
import os
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import keras

from keras_mlrs.errors import DistributedError, InvalidParameterError

#: the backend each choice of ``TrainConfig.distribute`` needs (the others run on any)
BACKEND = {"mirrored": "tensorflow", "data_parallel": "jax", "multiprocess": "jax"}
#: the environment variables that stand in for :class:`Cluster`'s fields
ENVIRONMENT = {"coordinator": "MLRS_COORDINATOR", "num_processes": "MLRS_NUM_PROCESSES",
               "process_id": "MLRS_PROCESS_ID"}
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class Cluster:
    """Where the processes of a ``multiprocess`` run meet: the coordinator's ``HOST:PORT``
    (process 0 listens there), the number of processes and this one's index. All None:
    JAX detects the cluster (SLURM, Open MPI...). ``timeout`` bounds, in seconds, the wait
    for the others at the start and for a stopped process during the run."""

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    timeout: int = 120

    @classmethod
    def from_environment(cls, **given) -> "Cluster":
        """The given fields, each one missing taken from its :data:`ENVIRONMENT` variable."""
        values = {}
        for name, variable in ENVIRONMENT.items():
            value = given.get(name)
            if value is None and os.environ.get(variable):
                value = os.environ[variable]
                if name != "coordinator":
                    try:
                        value = int(value)
                    except ValueError:
                        raise InvalidParameterError(f"{variable} must be a whole number, got {value!r}.") from None
            values[name] = value
        if given.get("timeout") is not None:
            values["timeout"] = given["timeout"]
        return cls(**values)

    def check(self) -> None:
        """A one-line error for an impossible cluster, before any process waits for another."""
        given = [self.coordinator is not None, self.num_processes is not None, self.process_id is not None]
        if any(given) and not all(given):
            raise InvalidParameterError(
                "a multiprocess run needs all of `coordinator` (HOST:PORT), `num_processes` and `process_id` "
                f"(or none of them, for JAX's cluster detection); missing: "
                f"{', '.join(f'`{n}`' for n, g in zip(ENVIRONMENT, given) if not g)}.")
        if self.coordinator is not None:
            match = _ADDRESS.match(self.coordinator)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise InvalidParameterError(f"`coordinator` must be HOST:PORT (e.g. node0:12355), got "
                                            f"{self.coordinator!r}.")
            if not isinstance(self.num_processes, int) or self.num_processes < 1:
                raise InvalidParameterError(f"`num_processes` must be >= 1, got {self.num_processes!r}.")
            if not isinstance(self.process_id, int) or not 0 <= self.process_id < self.num_processes:
                raise InvalidParameterError(f"`process_id` must be in 0..{self.num_processes - 1} for "
                                            f"{self.num_processes} processes, got {self.process_id!r}.")
        if not isinstance(self.timeout, int) or self.timeout < 1:
            raise InvalidParameterError(f"`timeout` must be a whole number of seconds >= 1, got {self.timeout!r}.")


class Parallelism:
    """The run's devices and processes: ``replicas`` devices in all, ``processes``
    processes of which this one is ``index``; ``scope()`` is where the model is built."""

    def __init__(self, replicas=1, processes=1, index=0, strategy=None):
        self.replicas, self.processes, self.index, self.strategy = replicas, processes, index, strategy

    @property
    def chief(self) -> bool:
        """Whether this process writes the run directory."""
        return self.index == 0

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else nullcontext()


def check_backend(distribute: str) -> None:
    """A one-line error when ``distribute`` needs another Keras backend."""
    needed = BACKEND.get(distribute)
    backend = keras.backend.backend()
    if needed is not None and backend != needed:
        names = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
        other = {"tensorflow": "mirrored", "jax": "multiprocess or data_parallel"}.get(backend)
        raise InvalidParameterError(
            f"`distribute='{distribute}'` needs the {names[needed]} backend (KERAS_BACKEND={needed}); under "
            f"{names.get(backend, backend)} " + (f"use {other} instead." if other else
                                                 "keras-mlrs trains on one device (distribute='none')."))


def start(distribute: str, cluster: Cluster | None = None) -> Parallelism:
    """Set the run's parallelism up (for ``multiprocess``: join the other processes, at most
    ``cluster.timeout`` seconds) and return it. Call :func:`stop` when the run ends."""
    check_backend(distribute)
    if distribute == "none":
        return Parallelism()
    if distribute == "mirrored":
        import tensorflow as tf  # tf.distribute: the TensorFlow side of training

        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return Parallelism(replicas=strategy.num_replicas_in_sync, strategy=strategy)
    import jax  # keras.distribution's engine: the JAX side of training

    if distribute == "multiprocess":
        _join(cluster or Cluster.from_environment())
    devices = keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    distribution.auto_shard_dataset = False  # each process reads its own part (data.load's `process`)
    keras.distribution.set_distribution(distribution)
    return Parallelism(replicas=len(devices), processes=jax.process_count(), index=jax.process_index())


def _join(cluster: Cluster) -> None:
    import jax  # jax.distributed: the processes of the run

    cluster.check()
    state = jax._src.distributed.global_state  # whether this process joined a cluster already
    if state.client is not None:
        if cluster.num_processes not in (None, state.num_processes) or cluster.process_id not in (None, state.process_id):
            raise DistributedError(f"this process already joined a cluster as process {state.process_id} of "
                                   f"{state.num_processes}; start a new process for another one.")
        return
    if cluster.coordinator is None and not _detected():
        raise InvalidParameterError("`distribute='multiprocess'` needs `coordinator`, `num_processes` and "
                                    "`process_id` (or MLRS_COORDINATOR, MLRS_NUM_PROCESSES, MLRS_PROCESS_ID), or "
                                    "a cluster JAX detects (SLURM, Open MPI); see docs/scaling.md.")
    global _LIFELINE
    if cluster.coordinator is not None:  # every process is up and agrees before JAX waits for any
        _LIFELINE = _Lifeline(cluster)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices of several processes
    jax.distributed.initialize(coordinator_address=cluster.coordinator, num_processes=cluster.num_processes,
                               process_id=cluster.process_id, initialization_timeout=cluster.timeout,
                               heartbeat_timeout_seconds=max(10, cluster.timeout))
    if _LIFELINE is None:  # a cluster JAX detected: every process has joined, at the address JAX chose
        _LIFELINE = _Lifeline(Cluster(state.coordinator_address, jax.process_count(), jax.process_index(),
                                      cluster.timeout))
    atexit.register(_exit_unfinished)  # after JAX's own exit handler, so it runs before it


#: this process's :class:`_Lifeline` to the others of its multiprocess run, once joined
_LIFELINE = None


class _Lifeline:
    """A TCP connection between process 0 and each other process (on the coordinator's port
    + 1), watched by a thread in each: when a process stops without saying it is done (killed,
    crashed), the kernel closes its connections and the others end at once with one line,
    instead of waiting in a collective until JAX's heartbeat timeout aborts them with a C++
    stack trace. Under JAX's cluster detection (SLURM, Open MPI) it is set up once JAX has
    joined the processes, at the coordinator address JAX derived."""

    DONE = b"done"

    def __init__(self, cluster: Cluster):
        self.cluster, self.done, self.sockets, self.cleanups = cluster, False, [], []
        host, port = cluster.coordinator.rsplit(":", 1)
        address, deadline = (host.strip("[]"), int(port) + 1), time.monotonic() + cluster.timeout
        hello = f"{cluster.num_processes} {cluster.process_id}\n".encode()
        if cluster.process_id == 0:
            self._gather(address[1], deadline)
        elif cluster.num_processes > 1:
            while True:
                try:
                    connection = socket.create_connection(address, timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise DistributedError(
                            f"process {cluster.process_id} could not reach process 0 at {cluster.coordinator} "
                            f"(port {address[1]}) within {cluster.timeout} s; start process 0 with the same "
                            "`coordinator`, or raise `timeout`.") from None
                    time.sleep(0.2)
            connection.settimeout(cluster.timeout)
            try:
                connection.sendall(hello)
                answer = connection.makefile("rb").readline().decode(errors="replace").strip()
            except OSError:
                answer = "process 0 did not answer"
            if answer != "ok":
                connection.close()
                raise DistributedError(f"process {cluster.process_id} cannot join the run at {cluster.coordinator}: "
                                       f"{answer}.")
            self.sockets.append(connection)
        for connection in self.sockets:
            connection.settimeout(None)
            threading.Thread(target=self._watch, args=(connection,), daemon=True).start()

    def _gather(self, port: int, deadline: float) -> None:
        """Process 0: accept every other process, check that they agree, answer each."""
        cluster, seen = self.cluster, {}
        server = socket.create_server(("", port))
        with server:
            while len(seen) < cluster.num_processes - 1:
                server.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    connection = server.accept()[0]
                except TimeoutError:
                    missing = sorted(set(range(1, cluster.num_processes)) - set(seen))
                    raise DistributedError(
                        f"process 0 waited {cluster.timeout} s for process(es) {', '.join(map(str, missing))} of "
                        f"{cluster.num_processes}; start every process with `coordinator={cluster.coordinator!r}` "
                        f"and `num_processes={cluster.num_processes}`, or raise `timeout`.") from None
                connection.settimeout(cluster.timeout)
                try:
                    count, index = map(int, connection.makefile("rb").readline().split())
                except (OSError, ValueError):
                    connection.close()
                    continue  # not one of ours
                problem = (f"it was started for {count} processes, the run has {cluster.num_processes}; give every "
                           "process the same `num_processes`" if count != cluster.num_processes
                           else f"process {index} has already joined" if index in seen or index == 0 else None)
                connection.sendall(f"{problem or 'ok'}\n".encode())
                if problem:
                    connection.close()
                    continue
                seen[index] = connection
        self.sockets = list(seen.values())

    def _watch(self, connection) -> None:
        try:
            said = connection.recv(len(self.DONE))
        except OSError:
            said = b""
        if said != self.DONE and not self.done:  # the other end stopped without finishing
            for undo in list(self.cleanups):
                undo()
            sys.stderr.write(f"error: another process of the multiprocess run stopped; process "
                             f"{self.cluster.process_id} stops too. Continue the run with --resume once every "
                             "process can start again.\n")
            sys.stderr.flush()
            os._exit(1)

    def abandon(self) -> None:
        """This process stops without finishing: the others see it go at once."""
        for connection in self.sockets:
            try:
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            except OSError:
                pass

    def release(self) -> None:
        """This process is done: the others may see it go."""
        self.done = True
        for connection in self.sockets:
            try:
                connection.sendall(self.DONE)
            except OSError:
                pass


def _exit_unfinished() -> None:
    """At exit, a process whose part of the run did not finish exits at once with status 1:
    JAX's own exit handler would wait for the other processes (which stop too) at a shutdown
    barrier, then abort with a C++ stack trace."""
    if _LIFELINE is not None and not _LIFELINE.done:
        _LIFELINE.abandon()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def abandon() -> None:
    """This process's part of a multiprocess run failed: the other processes stop at once,
    each with one line (instead of waiting in a collective until JAX's heartbeat timeout)."""
    if _LIFELINE is not None and not _LIFELINE.done:
        _LIFELINE.abandon()


def _detected() -> bool:
    """Whether JAX can detect the cluster from the environment (SLURM, Open MPI, MPI)."""
    return any(v in os.environ for v in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"))


@contextmanager
def cleanup_if_lost(undo):
    """Within the block, ``undo()`` runs before this process ends because another process of
    its multiprocess run stopped (e.g. remove a run directory with no completed epoch)."""
    if _LIFELINE is None:
        yield
        return
    _LIFELINE.cleanups.append(undo)
    try:
        yield
    finally:
        _LIFELINE.cleanups.remove(undo)


def stop(parallelism: Parallelism, finished: bool = False) -> None:
    """Undo :func:`start`'s global setting (the Keras distribution). ``finished``: this
    process of a multiprocess run completed its part, so the others may see it exit; the
    processes stay joined until they exit."""
    if parallelism.strategy is None and (parallelism.replicas > 1 or parallelism.processes > 1):
        keras.distribution.set_distribution(None)
    if finished and _LIFELINE is not None:
        _LIFELINE.release()


__all__ = ["BACKEND", "ENVIRONMENT", "Cluster", "Parallelism", "abandon", "check_backend", "cleanup_if_lost", "start",
           "stop"]
