"""Same params and seed, same bytes: prepare outputs and CPU training are reproducible."""

import hashlib
from pathlib import Path

import torch

from stockclf.config import load_params
from stockclf.data.prepare import prepare
from stockclf.evaluation.scoring import predict

#: torch's thread count at import, before any fixture changes it
DEFAULT_THREADS = torch.get_num_threads()


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_prepare_is_byte_identical(repo_root: Path, tmp_path: Path) -> None:
    params = load_params(repo_root / "params.yaml").data
    first = prepare(params, tmp_path / "a", repo_root / "data" / "sample")
    second = prepare(params, tmp_path / "b", repo_root / "data" / "sample")
    assert first == second
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert len(a) >= 16 and a == b  # same md5 per file = the same DVC hashes


def test_cpu_training_is_deterministic(fit_tiny, make_params) -> None:
    # torch's own thread count, as a user's run has it (fit_tiny sets one thread): two runs
    # on several threads must give the same bytes too
    torch.set_num_threads(DEFAULT_THREADS)
    params = make_params({"model": {"drop_path_rate": 0.2}})  # randomness inside the model too
    runs = []
    for name in ("a", "b"):
        module, trainer, data = fit_tiny(params, live=name)
        runs.append(
            (
                {k: float(v) for k, v in trainer.callback_metrics.items()},
                module.state_dict(),
                predict(module, data.test_dataloader()),
            )
        )
    (metrics_a, state_a, pred_a), (metrics_b, state_b, pred_b) = runs
    assert metrics_a == metrics_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert (pred_a == pred_b).all()
    different = make_params({"model": {"drop_path_rate": 0.2}, "seed": 7})
    module, _, _ = fit_tiny(different, live="c")
    assert not all(torch.equal(module.state_dict()[k], state_a[k]) for k in state_a)
