"""Where a model checkpoint keeps stockclf's own record (features, window, classes, data
params) and the version of its layout: a reader refuses any other version instead of
guessing. Apart from the module that writes it so that reading a checkpoint needs no
Lightning."""

CHECKPOINT_KEY = "stockclf"
CHECKPOINT_FORMAT = 1
