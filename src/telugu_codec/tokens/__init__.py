"""The codec as a tokenizer for speech language models.

- `sources`: the items of the data arguments `train --data` accepts, in a fixed order;
- `shards`: token shards (Parquet or WebDataset tar) with the codec's metadata, read and
  written deterministically;
- `tokenize`: a corpus -> token shards, bucketed, resumable, split over ranks, one index;
- `layouts`: flatten, delay (MusicGen) and parallel LM layouts with exact inverses;
- `vocab`: per-stream id offsets and special tokens as JSON, to extend an LM tokenizer;
- `sanitize`: LM output -> codes a decoder can use (out-of-range ids, specials, partial
  frames, wrong n_q), each problem reported, then repaired or refused;
- `stats`: tokens/s, bits/s, per-codebook usage, entropy, perplexity, bigram entropy.

See docs/tokens.md.
"""
