"""Using a trained model outside the pipeline: load it, predict with it, describe it,
export it."""
