"""Synthesise the Telugu demo corpora with espeak-ng and Festival (a thin CLI over
`telugu_codec.data.synth_corpus`).

Two corpora (docs/data.md):

- default: the bundled `data/demo-te`, the 308 sentences of scripts/demo_sentences_te.txt in
  espeak-ng's Telugu voice (about 16 minutes);
- `--two-voice`: the git-ignored `data/te-2voice`, every sentence of demo_sentences_te.txt and
  sentences_te_extra.txt in espeak-ng and in Festival's festvox-te-nsk voice (about an hour
  each); without Festival, a one-line notice and espeak-ng only.

Usage:
    python scripts/make_demo_corpus.py [--out data/demo-te] [--seed 0]
    python scripts/make_demo_corpus.py --two-voice [--limit N] [--voices espeak festival]

The same synthesiser versions and seed give the same files. Every 10th sentence goes to the
validation split; the voice settings are drawn per sentence from the seed (see the corpus README).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from telugu_codec.data import synth_corpus as sc
from telugu_codec.errors import CodecError

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--two-voice", action="store_true", help="both sentence lists, both voices")
    p.add_argument("--sentences", type=Path, nargs="+", help="sentence lists, read in order")
    p.add_argument("--out", type=Path, help="default data/demo-te, or data/te-2voice")
    p.add_argument("--voices", nargs="+", choices=sc.VOICES, help="default: espeak, or both")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N sentences")
    p.add_argument("--workers", type=int, default=sc.MAX_WORKERS, help="at most 2")
    p.add_argument("--sample-rate", type=int, default=16000)
    args = p.parse_args(argv)
    sentences = args.sentences or (sc.SENTENCE_FILES if args.two_voice else (sc.DEMO_SENTENCES,))
    out = args.out or (sc.TWO_VOICE_DIR if args.two_voice else ROOT / "data" / "demo-te")
    voices = args.voices or (None if args.two_voice else ("espeak",))
    try:
        texts = sc.read_sentences(*sentences)[: args.limit]
        voices = sc.resolve_voices(voices)
        given = sys.argv[1:] if argv is None else argv
        command = shlex.join(["python", "scripts/make_demo_corpus.py", *given])
        sc.build_corpus(
            out, texts, args.seed, voices, args.sample_rate, workers=args.workers, command=command
        )
    except CodecError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
