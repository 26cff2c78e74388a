"""Several tuning workers on this machine: spawned processes, each with its share of the
CPU threads (and one GPU each when there are several)."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Callable, Iterator, Sequence

from stockclf.tuning.signals import StopSignals, TuneInterrupted
from stockclf.tuning.worker import WorkerSpec, worker_main


def visible_gpus(accelerator: str) -> list[str]:
    """The CUDA devices workers may be spread over (empty on CPU-only runs)."""
    if accelerator in ("cpu", "mps"):
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    import torch  # only here: importing torch costs ~2 s

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_environment(index: int, n_workers: int, gpus: Sequence[str]) -> dict[str, str]:
    """Per-worker environment: a share of the CPU threads, and one GPU each when there are
    several. Measured on 2 busy cores: two workers with 2 OpenMP threads each ran a tiny
    trial in 8-23 s, with 1 thread each in 1.6-1.9 s (spinning threads fight for cores)."""
    env = {}
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n_workers))
    if len(gpus) > 1:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_processes(
    spec: WorkerSpec,
    n_workers: int,
    stops: StopSignals,
    on_poll: Callable[[], None] = lambda: None,
) -> list[tuple[str, int | None]]:
    """Run ``n_workers`` worker processes (spawned: no state shared with this one, safe
    with CUDA) and wait for them; return (name, exit code) of those that failed.

    A signal to this process is passed on to them as SIGTERM; each fails its running trial
    and exits, then :class:`TuneInterrupted` is raised here.
    """
    ctx = multiprocessing.get_context("spawn")
    gpus = visible_gpus(spec.params.train.accelerator)
    procs = []
    for index in range(n_workers):
        with environment(worker_environment(index, n_workers, gpus)):
            proc = ctx.Process(
                target=worker_main, args=(spec, index), name=f"stockclf-tune-{index}"
            )
            proc.start()
        procs.append(proc)
    forwarded = False
    while alive := [p for p in procs if p.is_alive()]:
        if stops.signum is not None and not forwarded:
            for proc in alive:
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(proc.pid, signal.SIGTERM)  # type: ignore[arg-type]
            forwarded = True
        multiprocessing.connection.wait([p.sentinel for p in alive], timeout=1.0)
        on_poll()
    on_poll()
    if stops.signum is not None:
        raise TuneInterrupted(stops.signum)
    return [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
