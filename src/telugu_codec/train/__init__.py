"""GAN training: the loop (`trainer`), validation, the collapse guard, checkpoints and rollback."""
