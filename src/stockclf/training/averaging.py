"""An exponential moving average of the weights that the kept checkpoint holds.

Lightning's ``EMAWeightAveraging`` validates with the averaged weights and, in a full
checkpoint, saves them as the ``state_dict``. But Lightning calls a callback's
``on_save_checkpoint`` only for full checkpoints, and the kept checkpoint here is
weights-only (no optimizer state: half the bytes), so it would hold the raw weights of the
last step while its validation scores are the average's. :meth:`averaged_state_dict` gives
the module's ``on_save_checkpoint`` the average to save instead.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch import Tensor


class KeptWeightAverage(EMAWeightAveraging):
    """EMA of the weights (and buffers) with decay ``train.ema_decay``, updated every step."""

    def averaged_state_dict(self) -> dict[str, Tensor] | None:
        """The averaged module's state dict, keyed like the module's own; None before fit.

        ``_average_model`` is the ``torch.optim.swa_utils.AveragedModel`` that Lightning
        keeps; it has no public accessor.
        """
        average = self._average_model
        return None if average is None else average.module.state_dict()


def kept_average(module: L.LightningModule) -> dict[str, Tensor] | None:
    """The averaged weights of the run training ``module``, if it averages them."""
    trainer = module._trainer  # the property raises when the module is not attached
    if trainer is None:
        return None
    for callback in trainer.callbacks:
        if isinstance(callback, KeptWeightAverage):
            return callback.averaged_state_dict()
    return None
