import math
from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file
from sklearn.metrics import f1_score
from timm.layers import DropPath

from stockclf.config import ParamsError, load_params
from stockclf.evaluation.scoring import predict
from stockclf.training.batches import TensorBatches, place_split
from stockclf.training.module import NonFiniteLossError, StockClassifier
from stockclf.training.network import StockClassifierNet, load_backbone_weights
from stockclf.training.optim import param_groups, warmup_cosine


def test_network_shapes_channels_and_drop_path(make_params) -> None:
    params = make_params({"model": {"drop_path_rate": 0.25}})
    net = StockClassifierNet(params.model, in_channels=2, num_classes=3)
    assert net.backbone.conv_stem.in_channels == 2 * len(params.model.encodings)
    logits, aux = net(torch.randn(5, 2, 16))
    assert logits.shape == (5, 3) and aux.shape == (5, 3)
    rates = [m.drop_prob for m in net.backbone.modules() if isinstance(m, DropPath)]
    assert rates and math.isclose(max(rates), 0.25, rel_tol=0.2)


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_050", "resnet10t", "dm_nfnet_f0"])
def test_other_timm_families_build_and_run(make_params, backbone: str) -> None:
    params = make_params({"model": {"backbone": backbone, "image_size": 32}})
    net = StockClassifierNet(params.model, in_channels=2, num_classes=4)
    logits, aux = net(torch.randn(2, 2, 32))
    assert logits.shape == (2, 4) and aux.shape == (2, 4)


def test_param_groups_split_lr_and_weight_decay(make_params) -> None:
    params = make_params()
    net = StockClassifierNet(params.model, in_channels=2, num_classes=3)
    groups = {
        g["name"]: g for g in param_groups(net.backbone, net.head_parameters(), 1e-4, 1e-2, 0.05)
    }
    assert groups["backbone"]["lr"] == 1e-4 and groups["head"]["lr"] == 1e-2
    assert groups["backbone"]["weight_decay"] == 0.05
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert groups["head_no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim < 2 for p in groups["backbone_no_decay"]["params"])  # norms, biases
    assert all(p.ndim >= 2 for p in groups["backbone"]["params"])
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    assert len(grouped) == len(set(grouped)) == len(list(net.parameters()))


def test_warmup_then_cosine_to_decay_rate() -> None:
    f = warmup_cosine(warmup_steps=4, total_steps=20, decay_rate=0.1)
    warm = [f(s) for s in range(5)]
    assert warm == sorted(warm) and warm[0] < 0.3
    assert f(4) == pytest.approx(1.0)
    tail = [f(s) for s in range(4, 20)]
    assert tail == sorted(tail, reverse=True)
    assert f(19) == pytest.approx(0.1)
    assert f(500) == pytest.approx(0.1)  # stays at the floor past the end


def test_agc_clips_backbone_not_heads(make_params) -> None:
    params = make_params({"train": {"agc_clip_factor": 0.01}})
    module = StockClassifier(params.model, params.train, in_channels=2, num_classes=3)
    for p in module.parameters():
        p.grad = torch.full_like(p, 100.0)
    module.configure_gradient_clipping(optimizer=None)
    for p in module.net.backbone.parameters():
        if p.ndim > 1:  # unit-wise bound: ||g|| <= clip * max(||w||, eps) per output unit
            dims = tuple(range(1, p.ndim))
            g = torch.linalg.vector_norm(p.grad, dim=dims)
            w = torch.linalg.vector_norm(p.detach(), dim=dims).clamp(min=1e-3)
            assert torch.all(g <= 0.01 * w * 1.0001)
    assert all(torch.all(p.grad == 100.0) for p in module.net.head_parameters())


def test_fit_applies_agc_and_schedule(fit_tiny, make_params, tmp_path: Path, monkeypatch) -> None:
    calls = []
    original = StockClassifier.configure_gradient_clipping

    def spy(self, *args, **kwargs):
        calls.append(self.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StockClassifier, "configure_gradient_clipping", spy)
    params = make_params({"train": {"lr_decay_rate": 0.1, "warmup_epochs": 0}})
    _, trainer, _ = fit_tiny(params)
    steps = trainer.global_step
    assert steps == 2 * params.train.max_train_batches
    assert len(calls) == steps  # AGC ran before every optimizer step
    lrs = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}
    # one step before the end of the cosine: close to lr * decay_rate, well below lr
    assert lrs["head"] < 0.5 * params.train.lr_head
    assert lrs["backbone"] < 0.5 * params.train.lr_backbone
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "f1.tsv").exists()
    assert 0.0 <= float(trainer.callback_metrics["val_f1"]) <= 1.0


def test_non_finite_loss_raises(fit_tiny, make_params) -> None:
    params = make_params({"train": {"lr_head": 1e30, "lr_backbone": 1e30, "agc_clip_factor": 0}})
    with pytest.raises(NonFiniteLossError, match="training loss is"):
        fit_tiny(params)


@pytest.mark.parametrize("keep_by", ["metric", "loss", "last"])
def test_checkpoint_restores_the_kept_epoch(
    fit_tiny, make_params, tiny_prepared: Path, tmp_path: Path, keep_by: str
) -> None:
    params = make_params({"train": {"early_stopping_patience": 5, "keep_epoch_by": keep_by}})
    module, trainer, data = fit_tiny(params, max_epochs=4, checkpoint_dir=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "best.ckpt").exists()
    name = "f1" if keep_by == "metric" else "loss"
    history = (tmp_path / "live" / "plots" / "metrics" / "val" / f"{name}.tsv").read_text()
    per_epoch = [float(row.split("\t")[1]) for row in history.splitlines()[1:]]
    assert len(per_epoch) == 4
    best = float(trainer.checkpoint_callback.best_model_score)
    rule = {"metric": max(per_epoch), "loss": min(per_epoch), "last": per_epoch[-1]}
    assert best == pytest.approx(rule[keep_by])
    # the returned module is the kept epoch's, whatever the last epoch scored
    x_val, y_val = data.tensors("val")
    if keep_by == "metric":
        pred = predict(module, data.val_dataloader())
        assert f1_score(y_val, pred, average="macro") == pytest.approx(best, abs=1e-6)
    else:
        module.eval()
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(module(x_val), y_val)
        assert float(loss) == pytest.approx(best, rel=1e-4)


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_local_pretrained_weights_adapt_stem_and_skip_classifier(
    make_params, tmp_path: Path, fmt: str
) -> None:
    """A full timm model saved for 3 input channels and 1000 classes (like ImageNet
    weights) loads into a backbone with another channel count and no classifier."""
    # two encodings of two channels: 4 stem inputs, not a multiple of RGB's 3, so the
    # repeated filters are also cut
    params = make_params({"model": {"encodings": ["gasf", "mtf"]}})
    source = timm.create_model(params.model.backbone, num_classes=1000, in_chans=3)
    weights = tmp_path / f"weights.{fmt}"
    if fmt == "pt":
        torch.save(source.state_dict(), weights)
    else:
        save_file(source.state_dict(), str(weights))
    target = StockClassifierNet(
        params.model.model_copy(update={"pretrained_path": str(weights)}),
        in_channels=2,
        num_classes=3,
    )
    a, b = source.blocks[0][0].conv_dw.weight, target.backbone.blocks[0][0].conv_dw.weight
    assert torch.equal(a, b)
    stem = target.backbone.conv_stem.weight
    assert stem.shape[1] == 2 * len(params.model.encodings)
    # timm's adapt_input_conv repeats the RGB filters and rescales by 3 / in_chans
    expected = source.conv_stem.weight.repeat(1, 2, 1, 1)[:, :4] * (3 / 4)
    assert torch.allclose(stem, expected)


def test_bad_pretrained_files_are_clear_errors(make_params, tmp_path: Path) -> None:
    params = make_params()
    net = StockClassifierNet(params.model, in_channels=2, num_classes=3)
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        load_backbone_weights(net.backbone, tmp_path / "missing.pt")
    other = tmp_path / "resnet.pt"
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), other)
    with pytest.raises(ParamsError, match="another"):
        load_backbone_weights(net.backbone, other)


def test_tensor_batches_cover_each_sample_once_in_a_seeded_order() -> None:
    x = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1)
    y = torch.arange(50)
    batches = TensorBatches(x, y, batch_size=16, shuffle=True, seed=3)
    assert len(batches) == 4
    epochs = [torch.cat([b for _, b in batches]) for _ in range(2)]
    assert [len(b) for _, b in batches] == [16, 16, 16, 2]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(50))
    assert epochs[0].tolist() != epochs[1].tolist()  # a new order each epoch
    again = TensorBatches(x, y, batch_size=16, shuffle=True, seed=3)
    assert torch.cat([b for _, b in again]).tolist() == epochs[0].tolist()  # seeded
    xb, yb = next(iter(again))
    assert torch.equal(xb[:, 0, 0].long(), yb)  # rows stay paired with their labels
    plain = TensorBatches(x, y, batch_size=16)
    assert torch.cat([b for _, b in plain]).tolist() == list(range(50))


def test_tensor_batches_shard_evenly_across_processes() -> None:
    x, y = torch.zeros(11, 1, 1), torch.arange(11)
    shards = [TensorBatches(x, y, 4, shuffle=True, seed=0, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [1, 1, 1]  # ceil(11 / 3) = 4 samples each
    seen = [torch.cat([b for _, b in s]).tolist() for s in shards]
    assert all(len(s) == 4 for s in seen)
    assert sorted({i for s in seen for i in s}) == list(range(11))  # 1 padded duplicate


def test_place_split_keeps_host_data_for_a_cpu_run() -> None:
    x, y = torch.zeros(4, 2, 3), torch.zeros(4, dtype=torch.int64)
    px, py = place_split(x, y, torch.device("cpu"))
    assert px is x and py is y


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_place_split_on_gpu_when_it_fits_else_pinned() -> None:
    x, y = torch.randn(64, 2, 8), torch.arange(64)
    gx, _ = place_split(x, y, torch.device("cuda"))
    assert gx.is_cuda
    hx, hy = place_split(x, y, torch.device("cuda"), budget_bytes=16)
    assert hx.is_pinned() and hy.is_pinned()
    xb, yb = next(iter(TensorBatches(hx, hy, 8)))
    assert xb.is_pinned() and torch.equal(xb, x[:8]) and torch.equal(yb, y[:8])


def test_removed_num_workers_key_says_what_to_do(tmp_path: Path, repo_params_dict) -> None:
    repo_params_dict["train"]["num_workers"] = 2
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(repo_params_dict))
    with pytest.raises(ParamsError, match=r"train\.num_workers: removed: .*delete the key"):
        load_params(path)
