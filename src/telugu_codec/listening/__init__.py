"""Listening to the codec: a blind MUSHRA test (ITU-R BS.1534-3) over an evaluation's audio.

- `plan`: the trials drawn from a report folder (``audio/<file>/*.wav``), the 3.5 kHz
  low-pass anchor, each rater's random order;
- `ratings`: one rater's answers as a JSON file next to the report (atomic, never overwritten);
- `scores`: post-screening (hidden reference < 90 in > 15 % of items) and MUSHRA means with
  95 % intervals per system;
- `server`: the test page over `http.server` (127.0.0.1 by default); the page itself is
  package data in ``static/``.

`telugu-codec listen REPORT_DIR` serves the test; ``--summary`` summarises the answers. The
evaluation's own listening page, report.html, is `evaluation.html_report`.
Nothing is imported here: import from the modules.
"""
