"""LightningModule: losses, optimiser, schedule, adaptive gradient clipping, metrics."""

from __future__ import annotations

from typing import NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from timm.utils.agc import adaptive_clip_grad
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from stockclf.config import ModelParams, TrainParams
from stockclf.training.averaging import kept_average
from stockclf.training.ensemble import build_net
from stockclf.training.network import log_mean_probs
from stockclf.training.optim import param_groups, warmup_cosine
from stockclf.training.record import CHECKPOINT_FORMAT, CHECKPOINT_KEY


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf: the run diverged."""


class Losses(NamedTuple):
    total: Tensor  # what training minimises
    main: Tensor  # the main head's cross-entropy (logged: comparable across splits)
    aux: Tensor | None  # the auxiliary head's, in training with aux_loss_weight > 0
    logits: Tensor  # B x num_classes, of the main head


class StockClassifier(L.LightningModule):
    """Trains :class:`StockClassifierNet`; logs ``{train,val,test}_{loss,f1,acc}`` per epoch."""

    def __init__(
        self,
        model_params: ModelParams,
        train_params: TrainParams,
        in_channels: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "model_params": model_params.model_dump(),
                "train_params": train_params.model_dump(),
                "in_channels": in_channels,
                "num_classes": num_classes,
            }
        )
        self.model_params = model_params
        self.train_params = train_params
        # Set by the training run (train_model) from the budget it stretched to min_steps.
        self.warmup_epochs = train_params.warmup_epochs
        # What the checkpoint must carry besides the weights so that the model can be used on
        # new prices (features, window, classes, ...); set by the training run.
        self.data_meta: dict = {}
        # Per-class weights of the training loss; ones unless set_class_weights is called.
        self.register_buffer("class_weight", torch.ones(num_classes))
        self.net = build_net(
            model_params,
            in_channels,
            num_classes,
            members=train_params.ensemble,
            channels_last=train_params.channels_last,
        )
        # Keys end in "_metrics": a ModuleDict key may not shadow nn.Module.train.
        self.metrics = torch.nn.ModuleDict(
            {
                f"{split}_metrics": MetricCollection(
                    {
                        "f1": MulticlassF1Score(num_classes, average="macro"),
                        "acc": MulticlassAccuracy(num_classes, average="micro"),
                    },
                    prefix=f"{split}_",
                )
                for split in ("train", "val", "test")
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[0]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Write what :func:`stockclf.inference.checkpoint.load_classifier` needs, in plain
        types only, so the file loads with ``torch.load(weights_only=True)``."""
        checkpoint[CHECKPOINT_KEY] = {"format": CHECKPOINT_FORMAT, "data": self.data_meta}
        averaged = kept_average(self)
        if averaged is not None:
            checkpoint["state_dict"] = averaged

    def set_class_weights(self, counts: Tensor) -> None:
        """``n / (K * n_k)`` per class k from the training split's class counts (sklearn's
        "balanced"); a class without samples gets weight 0."""
        counts = counts.to(self.class_weight)
        weights = counts.sum() / (len(counts) * counts.clamp(min=1))
        self.class_weight.copy_(torch.where(counts > 0, weights, torch.zeros_like(weights)))

    def _criterion(self, logits: Tensor, y: Tensor) -> Tensor:
        """The training loss of one head: weighted, label-smoothed cross-entropy."""
        return F.cross_entropy(
            logits, y, weight=self.class_weight, label_smoothing=self.train_params.label_smoothing
        )

    def _mixed(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float]:
        """Mixup of the windows (Zhang et al. 2018): ``x' = lam x + (1 - lam) x[perm]``.

        Windows, not images, are mixed: the images are made from them on the device, so
        this costs one extra elementwise op. ``lam`` and ``perm`` come from torch's global
        RNG, which ``seed_everything`` seeds.
        """
        alpha = self.train_params.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(len(y), device=y.device)
        return lam * x + (1 - lam) * x[perm], y[perm], lam

    def losses(self, x: Tensor, y: Tensor) -> Losses:
        """The losses of a batch.

        In training, ``total`` is the weighted, label-smoothed cross-entropy on mixed
        windows (when those options are on) plus the auxiliary head's, weighted by
        ``aux_loss_weight``. ``main`` is always the main head's plain cross-entropy against
        ``y``, so that losses compare across splits and against ln(K).
        """
        if not self.training:
            logits, _ = self.net(x)
            main = F.cross_entropy(logits, y)
            return Losses(main, main, None, logits)
        # An ensemble's members each train on their own mixed batch, each on its own loss
        # (summed, so a member's gradient is what it would be alone). A compiled network
        # (torch.compile in the benchmarks) has no members and is called as one.
        members = getattr(self.net, "members", None) or [self.net]
        per_member = [self._member_losses(net, x, y) for net in members]
        total = torch.stack([m.total for m in per_member]).sum()
        aux = None if per_member[0].aux is None else torch.stack([m.aux for m in per_member]).mean()
        logits = (
            per_member[0].logits
            if len(per_member) == 1
            else log_mean_probs([m.logits for m in per_member])
        )
        return Losses(total, F.cross_entropy(logits.detach(), y), aux, logits)

    def _member_losses(self, net: torch.nn.Module, x: Tensor, y: Tensor) -> Losses:
        """The training losses of one network on its own (mixed) batch."""
        y_mix, lam = y, 1.0
        if self.train_params.mixup_alpha > 0:
            x, y_mix, lam = self._mixed(x, y)
        # Late fusion puts a loss on each main head; otherwise net(x), which torch.compile
        # (the GPU benchmark) may have compiled.
        if getattr(net, "late_fusion", False):
            heads, aux_logits = net.forward_heads(x)
            logits = log_mean_probs(heads)
        else:
            logits, aux_logits = net(x)
            heads = [logits]

        def criterion(out: Tensor) -> Tensor:
            loss = self._criterion(out, y)
            return loss if lam == 1.0 else lam * loss + (1 - lam) * self._criterion(out, y_mix)

        total = torch.stack([criterion(head) for head in heads]).sum()
        if self.model_params.aux_loss_weight <= 0:
            return Losses(total, total, None, logits)
        aux = criterion(aux_logits)
        return Losses(total + self.model_params.aux_loss_weight * aux, total, aux, logits)

    def _step(self, batch: tuple[Tensor, Tensor], split: str) -> Tensor:
        x, y = batch
        losses = self.losses(x, y)
        self.metrics[f"{split}_metrics"].update(losses.logits.detach(), y)
        per_epoch = {"on_step": False, "on_epoch": True, "batch_size": len(y)}
        # the main head's loss is logged: comparable across splits
        self.log(f"{split}_loss", losses.main.detach(), **per_epoch)
        if losses.aux is not None:
            self.log("train_aux_loss", losses.aux.detach(), **per_epoch)
        return losses.total

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, "
                f"step {self.global_step}"
            )
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_epoch_metrics(self, split: str) -> None:
        self.log_dict(self.metrics[f"{split}_metrics"].compute())
        self.metrics[f"{split}_metrics"].reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def optimizer_and_schedule(
        self, total_steps: int, max_epochs: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        """AdamW over the backbone/head groups, and the per-step warmup + cosine schedule."""
        tp = self.train_params
        groups = param_groups(
            self.net.backbone,
            self.net.head_parameters(),
            tp.lr_backbone,
            tp.lr_head,
            tp.weight_decay,
        )
        optimizer = torch.optim.AdamW(groups)
        steps_per_epoch = max(total_steps // max(max_epochs, 1), 1)
        warmup = round(self.warmup_epochs * steps_per_epoch)
        factor = warmup_cosine(warmup, total_steps, tp.lr_decay_rate)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def configure_optimizers(self):
        optimizer, scheduler = self.optimizer_and_schedule(
            int(self.trainer.estimated_stepping_batches), self.trainer.max_epochs or 1
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        # Adaptive gradient clipping (Brock et al. 2021, timm's implementation) on the
        # backbone only: the paper found clipping the final linear layer hurts.
        if self.train_params.agc_clip_factor > 0:
            adaptive_clip_grad(self.net.backbone.parameters(), self.train_params.agc_clip_factor)
