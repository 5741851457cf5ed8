"""Evaluation against real baselines, and reports of training runs.

- `evaluate`: `evaluate()` runs a checkpoint at several bitrates plus the baselines over a set
  of files and writes report.md / report.json / per_file.csv / PNGs / audio;
- `systems`: the rows, our codec at each bitrate (through real `.tcc` bytes) and the baselines;
- `baselines`: Opus (ffmpeg + libopus) and Codec2 (c2enc / c2dec), bitrates measured;
- `intervals`: mean and 95 % Student-t interval over files;
- `results`: the dataclasses of what was measured (`EvaluationReport`, ...);
- `report`: report.md, per_file.csv and the JSON form; `plots`: spectrograms, quality vs kbps;
- `run_report`: `report_run()`, a training run's metrics.jsonl (`run_log`) as plots
  (`run_plots`) and a report.md.

The metrics themselves are in `telugu_codec.metrics`, shared with the trainer's validation.
Nothing is imported here: import from the modules (`telugu_codec.evaluation.evaluate`, ...).
"""
