"""GAN training: the step loop, checkpoints and resume, health monitoring and the collapse guard."""
