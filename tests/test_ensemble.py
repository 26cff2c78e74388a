"""``train.ensemble``: members trained side by side, their probabilities averaged, one
checkpoint that loads and predicts as one model; tuning trials train one network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stockclf.inference.checkpoint import load_classifier
from stockclf.training.ensemble import EnsembleNet, build_net
from stockclf.training.module import StockClassifier
from stockclf.training.network import StockClassifierNet, log_mean_probs


def test_the_ensemble_averages_its_members_probabilities(make_params) -> None:
    params = make_params({"model": {"raw_branch": 8}})
    torch.manual_seed(0)
    net = build_net(params.model, in_channels=2, num_classes=3, members=3).eval()
    assert isinstance(net, EnsembleNet) and len(net.members) == 3
    # drawn one after the other from the RNG: three different initialisations
    heads = [m.head.weight for m in net.members]
    assert not torch.equal(heads[0], heads[1]) and not torch.equal(heads[1], heads[2])
    x = torch.randn(5, 2, 16)
    logits, aux = net(x)
    mean = torch.stack([torch.softmax(m(x)[0], dim=-1) for m in net.members]).mean(dim=0)
    torch.testing.assert_close(torch.softmax(logits, dim=-1), mean)
    mean_aux = torch.stack([torch.softmax(m(x)[1], dim=-1) for m in net.members]).mean(dim=0)
    torch.testing.assert_close(torch.softmax(aux, dim=-1), mean_aux)
    # the heads and window branches of every member train at lr_head
    assert len(net.head_parameters()) == 3 * len(net.members[0].head_parameters())
    assert isinstance(build_net(params.model, 2, 3, members=1), StockClassifierNet)


def test_log_mean_probs_does_not_underflow() -> None:
    big = torch.tensor([[1000.0, 0.0, -1000.0]])
    out = log_mean_probs([big, big - 10])
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.exp().sum(dim=-1), torch.ones(1))


def test_members_share_the_training_split_statistics(make_params) -> None:
    params = make_params({"model": {"raw_branch": 8}})
    net = build_net(params.model, in_channels=2, num_classes=3, members=2)
    net.fit_normalisation(torch.randn(64, 2, 16) * 4 + 1)
    first, second = net.members
    for name in ("image_mean", "image_std", "window_mean", "window_std"):
        torch.testing.assert_close(getattr(first, name), getattr(second, name))
    assert not torch.equal(first.window_std, torch.ones(2))


def test_each_member_trains_on_its_own_loss(make_params) -> None:
    """Without mixup the ensemble's training loss is the sum of its members' losses, each
    what the member would have alone; the logged loss is that of the averaged output.
    (No drop path either: both passes must be deterministic.)"""
    params = make_params(
        {"model": {"drop_path_rate": 0.0}, "train": {"ensemble": 2, "mixup_alpha": 0.0}}
    )
    module = StockClassifier(params.model, params.train, in_channels=2, num_classes=3).train()
    x, y = torch.randn(8, 2, 16), torch.arange(8) % 3
    losses = module.losses(x, y)
    alone = [module._member_losses(net, x, y).total for net in module.net.members]
    torch.testing.assert_close(losses.total, alone[0] + alone[1])
    out = log_mean_probs([net(x)[0] for net in module.net.members])
    torch.testing.assert_close(losses.main, torch.nn.functional.cross_entropy(out, y))


def test_an_ensemble_checkpoint_loads_and_predicts_as_one_model(
    make_params, fit_tiny, tmp_path: Path, tiny_prepared: Path
) -> None:
    params = make_params({"train": {"ensemble": 2, "min_steps": 0, "max_train_batches": 2}})
    module, _, _ = fit_tiny(params, max_epochs=1, checkpoint_dir=tmp_path / "model")
    assert isinstance(module.net, EnsembleNet)
    clf = load_classifier(tmp_path / "model" / "best.ckpt")
    assert isinstance(clf.net, EnsembleNet) and len(clf.net.members) == 2
    x = np.random.default_rng(0).normal(size=(6, 2, 16)).astype(np.float32)
    probs = clf.predict_proba(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)
    with torch.no_grad():
        members = [torch.softmax(m(torch.from_numpy(x))[0].double(), -1) for m in clf.net.members]
    np.testing.assert_allclose(probs, torch.stack(members).mean(0).numpy(), rtol=1e-5, atol=1e-7)


def test_a_tuning_trial_trains_one_network(make_params, tiny_prepared, tmp_path, monkeypatch):
    from stockclf.tuning import objective

    seen = []

    def fake_train_model(params, *args, **kwargs):
        seen.append(params.train.ensemble)
        raise RuntimeError("stop here")

    monkeypatch.setattr(objective, "train_model", fake_train_model)
    params = make_params({"train": {"ensemble": 3}})
    with pytest.raises(RuntimeError, match="stop here"):
        objective.tuning_run(params, tiny_prepared, tmp_path / "live", None, [])
    assert seen == [1] and params.train.ensemble == 3
