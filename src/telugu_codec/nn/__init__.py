"""Small building blocks: padded/weight-normed convolutions and the Snake activation."""
