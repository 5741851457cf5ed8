"""`telugu-codec listen`: a blind MUSHRA test over a report folder, or the summary of one."""

from __future__ import annotations

import argparse

from . import command


def _listen_args(p: argparse.ArgumentParser) -> None:
    # the defaults live in listening.server, which is not imported for --help (it loads torch)
    p.add_argument("report_dir", help="an `evaluate` report folder (with audio/)")
    p.add_argument("--port", type=int, default=None, help="port (default 8765; 0: any free one)")
    p.add_argument(
        "--host", default=None, help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--rater", default="", help="the name the test page suggests")
    p.add_argument(
        "--summary",
        action="store_true",
        help="do not serve: summarise the answers so far (MUSHRA means, 95%% CIs, "
        "post-screening) into REPORT_DIR/mushra.md",
    )


@command("listen", "a blind MUSHRA listening test over a report's audio", _listen_args)
def cmd_listen(args: argparse.Namespace) -> int:
    if args.summary:
        from ..listening.scores import summarise_folder

        _, text, path = summarise_folder(args.report_dir)
        print(text.rstrip())
        print(f"\nwrote {path}")
        return 0
    from ..listening.server import DEFAULT_HOST, DEFAULT_PORT, serve

    host = DEFAULT_HOST if args.host is None else args.host
    port = DEFAULT_PORT if args.port is None else args.port
    try:
        serve(args.report_dir, host=host, port=port, rater=args.rater)
    except KeyboardInterrupt:
        print(f"\nstopped; summarise with: telugu-codec listen {args.report_dir} --summary")
    return 0
