"""The codec model: encoder, decoder, residual vector quantizer, discriminators."""
