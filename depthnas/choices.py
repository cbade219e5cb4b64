"""The names a configuration chooses among, in a module that imports nothing heavy.

The config check (`config_checks.validate`) reads them here, so a typo is refused
in a fraction of a second rather than after the seconds torch takes to load; the
modules that act on them (runtime, ssi_loss, task) take them from here too, so the
two cannot drift apart."""

PRECISIONS: tuple[str, ...] = ("fp32", "bf16")  # bf16: autocast, fp32 weights and optimizer state

# Each depth loss (ssi_loss.build_loss) with what its validation score is called for
# people (DepthTask.score_name, the report's column).
DEPTH_LOSS_SCORES: dict[str, str] = {"ssi": "SSI loss", "ssi-image": "SSI loss (image mean)",
                                     "ssitrim": "trimmed SSI loss"}
DEPTH_LOSSES: tuple[str, ...] = tuple(DEPTH_LOSS_SCORES)

# TrainConfig.loss defaults to the depth loss "ssi"; for a classifier it means "the
# task's own loss", so a classification config need not change it.
CLASSIFICATION_LOSSES: tuple[str, ...] = ("ce", "cross_entropy", "ssi")
