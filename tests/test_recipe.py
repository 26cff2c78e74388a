"""The training recipe's levers: normalisation, the window branch, the loss options, mixup,
the step budget and the choice of the kept epoch."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stockclf.config import TrainParams
from stockclf.data.store import SplitData, load_split
from stockclf.evaluation.scoring import validation_summary
from stockclf.training.budget import run_budget, steps_per_epoch
from stockclf.training.callbacks import (
    TieBreakCheckpoint,
    TieBreakEarlyStopping,
    improves,
    kept_epoch,
)
from stockclf.training.module import StockClassifier
from stockclf.training.network import StockClassifierNet
from stockclf.tuning.space import with_values


def test_normalisation_standardises_image_and_window_channels(make_params) -> None:
    params = make_params({"model": {"raw_branch": 8}})
    net = StockClassifierNet(params.model, in_channels=2, num_classes=3)
    x = torch.randn(64, 2, 16) * torch.tensor([[0.01], [5.0]]) + torch.tensor([[1.0], [-3.0]])
    net.fit_normalisation(x)
    images = net.encoder(x)
    standard = (images - net.image_mean[:, None, None]) / net.image_std[:, None, None]
    n_images = 2 * len(params.model.encodings)  # one image per encoding and channel
    assert images.shape[1] == n_images
    zeros, ones = torch.zeros(n_images), torch.ones(n_images)
    torch.testing.assert_close(standard.mean(dim=(0, 2, 3)), zeros, atol=1e-4, rtol=0)
    torch.testing.assert_close(standard.std(dim=(0, 2, 3)), ones, atol=1e-3, rtol=0)
    torch.testing.assert_close(net.window_mean, x.mean(dim=(0, 2)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net.window_std, x.std(dim=(0, 2)), atol=1e-5, rtol=1e-5)
    # the statistics are buffers: a state dict carries them to a fresh network
    fresh = StockClassifierNet(params.model, in_channels=2, num_classes=3)
    fresh.load_state_dict(net.state_dict())
    torch.testing.assert_close(fresh.image_std, net.image_std)


def test_normalize_false_keeps_identity_statistics(make_params) -> None:
    params = make_params({"model": {"normalize": False}})
    net = StockClassifierNet(params.model, in_channels=2, num_classes=3)
    net.fit_normalisation(torch.randn(32, 2, 16) * 7 + 2)
    n_images = 2 * len(params.model.encodings)
    assert torch.equal(net.image_mean, torch.zeros(n_images))
    assert torch.equal(net.image_std, torch.ones(n_images))


def test_window_branch_sees_the_level_that_the_images_discard(make_params) -> None:
    """Two windows that differ only by an offset give the same images (GAF is affine
    invariant, MTF rank-based); only the window branch can tell them apart."""
    params = make_params({"model": {"raw_branch": 8, "fusion": "concat"}})
    net = StockClassifierNet(params.model, in_channels=2, num_classes=3).eval()
    x = torch.randn(1, 2, 16)
    both = torch.cat([x, x + 3.0])
    images = net.encoder(both)
    torch.testing.assert_close(images[0], images[1], atol=1e-5, rtol=0)
    assert net.window_branch is not None
    assert net.head.in_features == net.window_branch.out_features + net.backbone.num_features
    logits, _ = net(both)
    assert not torch.allclose(logits[0], logits[1], atol=1e-4)
    assert set(map(id, net.window_branch.parameters())) <= set(map(id, net.head_parameters()))
    without = StockClassifierNet(
        make_params({"model": {"raw_branch": 0}}).model, in_channels=2, num_classes=3
    ).eval()
    assert without.window_branch is None
    logits, _ = without(both)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-4, rtol=0)


def test_late_fusion_gives_the_window_its_own_head_and_loss(make_params) -> None:
    """Under late fusion the prediction is the mean probability of the images' head and the
    window's head, and training puts a loss on each, so neither can crowd the other out."""
    params = make_params({"model": {"raw_branch": 8, "fusion": "late", "aux_loss_weight": 0.0}})
    net = StockClassifierNet(params.model, in_channels=2, num_classes=3).eval()
    assert net.late_fusion and net.window_head is not None and net.window_branch is not None
    assert net.head.in_features == net.backbone.num_features
    assert net.window_head.in_features == net.window_branch.out_features
    assert set(map(id, net.window_head.parameters())) <= set(map(id, net.head_parameters()))
    x = torch.randn(5, 2, 16)
    (image, window), _ = net.forward_heads(x)
    logits, _ = net(x)
    mean = (image.softmax(-1) + window.softmax(-1)) / 2
    torch.testing.assert_close(logits.exp(), mean)

    module = StockClassifier(params.model, params.train, in_channels=2, num_classes=3)
    module.train()
    y = torch.tensor([0, 1, 2, 0, 1])
    torch.manual_seed(0)
    mixed = module.train_params.mixup_alpha > 0
    losses = module.losses(x, y)
    torch.manual_seed(0)
    if mixed:
        x, y_mix, lam = module._mixed(x, y)
    (image, window), _ = module.net.forward_heads(x)

    def criterion(out: torch.Tensor) -> torch.Tensor:
        loss = module._criterion(out, y)
        return lam * loss + (1 - lam) * module._criterion(out, y_mix) if mixed else loss

    torch.testing.assert_close(losses.total, criterion(image) + criterion(window))


def module_for(make_params, **train) -> StockClassifier:
    """One head (concat fusion), so the loss is that head's alone; the late-fusion loss is
    tested above."""
    params = make_params({"train": train, "model": {"aux_loss_weight": 0.0, "fusion": "concat"}})
    return StockClassifier(params.model, params.train, in_channels=2, num_classes=3)


def test_training_loss_is_weighted_and_smoothed_but_main_is_plain(make_params) -> None:
    module = module_for(make_params, label_smoothing=0.2, class_weights="balanced", mixup_alpha=0)
    module.set_class_weights(torch.tensor([10.0, 30.0, 0.0]))
    torch.testing.assert_close(module.class_weight, torch.tensor([40 / 30, 40 / 90, 0.0]))
    x, y = torch.randn(6, 2, 16), torch.tensor([0, 1, 1, 0, 1, 0])
    module.train()
    torch.manual_seed(0)
    losses = module.losses(x, y)
    weighted = F.cross_entropy(losses.logits, y, weight=module.class_weight, label_smoothing=0.2)
    torch.testing.assert_close(losses.total, weighted)
    torch.testing.assert_close(losses.main, F.cross_entropy(losses.logits, y))
    module.eval()
    evaluated = module.losses(x, y)
    torch.testing.assert_close(evaluated.total, F.cross_entropy(evaluated.logits, y))


def test_mixup_mixes_windows_and_targets(make_params, monkeypatch) -> None:
    module = module_for(
        make_params, mixup_alpha=0.4, label_smoothing=0.0, class_weights="none"
    ).train()
    seen: list[torch.Tensor] = []
    monkeypatch.setattr(module.net, "forward", lambda x: seen.append(x) or (x[:, 0, :3],) * 2)
    x = torch.arange(4 * 2 * 16, dtype=torch.float32).reshape(4, 2, 16)
    y = torch.tensor([0, 1, 2, 0])
    torch.manual_seed(3)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(4)
    torch.manual_seed(3)
    losses = module.losses(x, y)
    torch.testing.assert_close(seen[0], lam * x + (1 - lam) * x[perm])
    logits = seen[0][:, 0, :3]
    expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
    torch.testing.assert_close(losses.total, expected)


def test_budget_stretches_small_data_to_min_steps(make_params) -> None:
    # params.yaml's budget: 8 epochs, patience 3, a floor of 400 steps, batch 128
    train = make_params({"train": {"batch_size": 128, "max_train_batches": None}}).train
    train = train.model_copy(
        update={"min_steps": 400, "early_stopping_patience": 3, "max_epochs": 8}
    )
    assert (TrainParams().min_steps, TrainParams().max_epochs) == (400, 8)
    assert steps_per_epoch(40, train) == 1
    small = run_budget(8, 40, train)  # GunPoint: one batch per epoch
    assert small.epochs == 400 and small.patience == 150
    assert small.warmup_epochs == pytest.approx(train.warmup_epochs * 50)
    large = run_budget(8, 6776, train)  # the bundled prices: 53 steps an epoch, 424 in 8
    assert (large.epochs, large.patience) == (8, 3)
    # a tuning trial of 3 epochs gets 3/8 of the floor: 150 steps
    assert run_budget(3, 40, train).epochs == 150
    assert run_budget(3, 6776, train).epochs == 3
    # counted at the drawn batch size, a floor stretches large data too: 14 steps an epoch
    big_batches = train.model_copy(update={"batch_size": 512})
    assert run_budget(3, 6776, big_batches).epochs == 11
    # ... counted at params.yaml's batch size, it does not
    counted_at_128 = big_batches.model_copy(update={"min_steps_batch_size": 128})
    assert run_budget(3, 6776, counted_at_128).epochs == 3
    assert run_budget(20, 40, train).epochs == 400  # a longer run: the whole floor


def test_a_drawn_batch_size_keeps_the_floor_at_params_yaml_batches(make_params) -> None:
    """A trial (or train_best) that draws another batch size trains the epochs params.yaml's
    batch size gives: the floor is for small data, not for large batches."""
    params = make_params(
        {"train": {"batch_size": 128, "min_steps": 400, "max_epochs": 8, "max_train_batches": None}}
    )
    drawn = with_values(params, {"batch_size": 256, "lr_head": 0.001})
    assert drawn.train.batch_size == 256 and drawn.train.min_steps_batch_size == 128
    assert run_budget(3, 6776, drawn.train).epochs == 3  # 53 batches of 128 an epoch
    assert run_budget(3, 6776, with_values(params, {"lr_head": 0.001}).train).epochs == 3
    assert with_values(params, {"lr_head": 0.001}).train.min_steps_batch_size is None
    # a size the user set is kept
    fixed = make_params({"train": {"batch_size": 128, "min_steps_batch_size": 32}})
    assert with_values(fixed, {"batch_size": 256}).train.min_steps_batch_size == 32


def test_train_model_stretches_epochs_on_tiny_data(make_params, fit_tiny, tmp_path) -> None:
    params = make_params({"train": {"min_steps": 12, "max_train_batches": 3}})
    _, trainer, _ = fit_tiny(params, max_epochs=2, checkpoint_dir=tmp_path / "ckpt")
    assert trainer.max_epochs == 4  # 3 batches an epoch, at least 12 steps
    kept = kept_epoch(trainer)
    assert {"val_loss", "val_f1", "val_acc", "epoch"} <= set(kept)
    # keep_epoch_by: loss (the default): the checkpoint holds the lowest validation loss
    assert kept["val_loss"] == pytest.approx(float(trainer.checkpoint_callback.best_model_score))


def test_ties_on_the_metric_go_to_the_lower_validation_loss() -> None:
    best = {"val_f1": 0.9, "val_loss": 0.40}
    assert improves({"val_f1": 0.95, "val_loss": 0.9}, best, "val_f1", "max")
    assert improves({"val_f1": 0.9, "val_loss": 0.35}, best, "val_f1", "max")
    assert not improves({"val_f1": 0.9, "val_loss": 0.40}, best, "val_f1", "max")
    assert not improves({"val_f1": 0.9, "val_loss": 0.45}, best, "val_f1", "max")
    assert not improves({"val_f1": 0.8, "val_loss": 0.01}, best, "val_f1", "max")
    assert improves({"val_loss": 0.3}, {"val_loss": 0.4}, "val_loss", "min")
    assert not improves({"val_loss": 0.4}, {"val_loss": 0.4}, "val_loss", "min")
    assert improves({"val_f1": 0.1}, None, "val_f1", "max")


class _Strategy:
    @staticmethod
    def reduce_boolean_decision(decision: bool, all: bool = True) -> bool:
        return decision


def test_checkpoint_uses_the_tie_break(tmp_path) -> None:
    checkpoint = TieBreakCheckpoint(dirpath=tmp_path, monitor="val_f1", mode="max")
    epochs = [(0.5, 1.0, True), (0.9, 0.5, True), (0.9, 0.6, False), (0.9, 0.4, True)]
    for f1, loss, expected in epochs:
        trainer = SimpleNamespace(
            strategy=_Strategy(),
            callback_metrics={"val_f1": torch.tensor(f1), "val_loss": torch.tensor(loss)},
        )
        assert checkpoint.check_monitor_top_k(trainer, torch.tensor(f1)) is expected


def test_early_stopping_counts_patience_from_the_kept_epoch() -> None:
    """At the ceiling F1 a falling validation loss still counts as progress."""
    stopper = TieBreakEarlyStopping("val_f1", mode="max", patience=2)
    epochs = [(0.5, 1.0), (1.0, 0.6), (1.0, 0.5), (1.0, 0.55), (1.0, 0.4), (0.9, 0.3), (1.0, 0.5)]
    stopped = []
    for epoch, (f1, loss) in enumerate(epochs):
        trainer = SimpleNamespace(
            fast_dev_run=False,
            strategy=_Strategy(),
            current_epoch=epoch,
            should_stop=False,
            callback_metrics={"val_f1": torch.tensor(f1), "val_loss": torch.tensor(loss)},
        )
        stopper._run_early_stopping_check(trainer)
        stopped.append(trainer.should_stop)
    assert stopped == [False, False, False, False, False, False, True]
    assert stopper.kept == pytest.approx({"val_f1": 1.0, "val_loss": 0.4, "epoch": 4.0})
    assert float(stopper.best_score) == 1.0
    assert kept_epoch(SimpleNamespace(early_stopping_callback=stopper))["epoch"] == 4.0
    assert kept_epoch(SimpleNamespace()) == {}


def test_keep_last_keeps_every_epoch_and_never_stops() -> None:
    """``keep_epoch_by: last``: whatever validation says, the last epoch is kept."""
    stopper = TieBreakEarlyStopping("val_loss", mode="min", patience=1, keep_last=True)
    checkpoint = TieBreakCheckpoint(dirpath=".", monitor="val_loss", mode="min", keep_last=True)
    for epoch, loss in enumerate([0.5, 0.9, 1.2, 1.5]):  # each epoch worse than the first
        trainer = SimpleNamespace(
            fast_dev_run=False,
            strategy=_Strategy(),
            current_epoch=epoch,
            should_stop=False,
            callback_metrics={"val_f1": torch.tensor(0.5), "val_loss": torch.tensor(loss)},
        )
        stopper._run_early_stopping_check(trainer)
        assert trainer.should_stop is False
        assert checkpoint.check_monitor_top_k(trainer, torch.tensor(loss)) is True
    assert stopper.kept == pytest.approx({"val_f1": 0.5, "val_loss": 1.5, "epoch": 3.0})
    # the same epochs by loss stop after the first worse one, keeping epoch 0
    by_loss = TieBreakEarlyStopping("val_loss", mode="min", patience=1)
    trainer = SimpleNamespace(
        fast_dev_run=False,
        strategy=_Strategy(),
        current_epoch=0,
        should_stop=False,
        callback_metrics={"val_loss": torch.tensor(0.5)},
    )
    by_loss._run_early_stopping_check(trainer)
    trainer.current_epoch, trainer.callback_metrics = 1, {"val_loss": torch.tensor(0.9)}
    by_loss._run_early_stopping_check(trainer)
    assert trainer.should_stop is True and by_loss.kept["epoch"] == 0.0


def test_validation_summary_compares_with_chance(tiny_prepared) -> None:
    train, val = load_split(tiny_prepared, "train"), load_split(tiny_prepared, "val")
    summary = validation_summary(
        {"val_loss": 0.9, "val_f1": 0.6, "epoch": 3.0}, train, val, n_classes=3, seed=0
    )
    assert summary["ln_classes"] == pytest.approx(math.log(3))
    # Random guesses at train frequencies p on val frequencies q: class k's precision tends
    # to q_k and its recall to p_k, so the expected macro F1 is the mean of 2pq / (p + q).
    p = np.bincount(train.y, minlength=3) / len(train)
    q = np.bincount(val.y, minlength=3) / len(val)
    expected = float(np.mean(2 * p * q / (p + q)))
    assert summary["stratified_val_f1"] == pytest.approx(expected, abs=0.02)
    # many draws, not one: a spread around the mean
    assert summary["stratified_val_f1_low"] < summary["stratified_val_f1"]
    assert summary["stratified_val_f1"] < summary["stratified_val_f1_high"]
    assert summary["val_loss"] == 0.9 and summary["epoch"] == 3
    one_class = SplitData(
        np.zeros((4, 1, 8), np.float32),
        np.zeros(4, np.int64),
        train.dates[:4],
        np.zeros(4, np.int32),
        np.zeros(4),
    )
    assert validation_summary({}, one_class, one_class, 1, 0)["ln_classes"] == 0.0


def test_ema_weights_are_validated_kept_and_returned(make_params, fit_tiny, tmp_path) -> None:
    """With ``train.ema_decay`` the kept checkpoint holds the averaged weights, not the
    last step's, and the returned module is that average; off, there is no average."""
    params = make_params({"train": {"ema_decay": 0.5, "min_steps": 0, "max_train_batches": 3}})
    # one epoch, so both runs keep the same (only) epoch, and the same seed gives both the
    # same steps: a checkpoint of the raw weights would equal the plain run's
    module, _, _ = fit_tiny(params, max_epochs=1, checkpoint_dir=tmp_path / "ema")
    saved = torch.load(tmp_path / "ema" / "best.ckpt", map_location="cpu", weights_only=True)
    name = "net.head.weight"
    torch.testing.assert_close(module.state_dict()[name], saved["state_dict"][name])
    plain = make_params({"train": {"min_steps": 0, "max_train_batches": 3}})
    raw, _, _ = fit_tiny(plain, live="plain", max_epochs=1, checkpoint_dir=tmp_path / "plain")
    saved_raw = torch.load(tmp_path / "plain" / "best.ckpt", map_location="cpu", weights_only=True)
    torch.testing.assert_close(raw.state_dict()[name], saved_raw["state_dict"][name])
    assert not torch.allclose(saved["state_dict"][name], saved_raw["state_dict"][name])
