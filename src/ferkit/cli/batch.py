"""`ferkit batch`: recognition over whole archives of photos and videos on Ray (ferkit.batch)."""

from __future__ import annotations

import sys

from ferkit.cli.arguments import add_recognition_options, positive_int
from ferkit.errors import FerkitError


def add_batch(sub) -> None:
    p = sub.add_parser(
        "batch", help="recognise faces over whole archives of photos and videos, on Ray (this machine or a cluster)",
        description="The recognition of `ferkit predict` as a Ray Data pipeline (read → recognise → write), into "
                    "Parquet tables in --out: faces/ (one row per face), inputs/ (one row per input: ok or error) "
                    "and tracks/ (one row per face track of a video). Runs on a local Ray it starts itself, or on a "
                    "cluster with --address. Bad inputs become error rows; the same command again resumes.")
    p.add_argument("inputs", nargs="+",
                   help="image or video files, folders (searched recursively), glob patterns, or @LIST.txt")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier run's)")
    add_recognition_options(p)
    p.add_argument("--max-frames", type=positive_int, help="stop each video after this many frames")
    p.add_argument("--address", metavar="ADDR",
                   help="join a Ray cluster: auto (the one `ray start` made here), HOST:PORT, or ray://HOST:10001 "
                        "(default: start a local Ray of this job's own)")
    p.add_argument("--workers", type=positive_int, help="recognition workers (default: as many as the CPUs hold)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0,
                   help="CPUs each worker takes, fractions allowed (default 1; its ONNX Runtime threads follow)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs each worker takes, fractions allowed (0.25: four workers share a GPU); use with "
                        "--device cuda")
    p.add_argument("--batch-size", type=positive_int, default=16,
                   help="photos a worker takes at once and classifies together (default 16; videos go one by one)")
    p.add_argument("--retry-errors", action="store_true",
                   help="when resuming, run again the inputs an earlier run recorded as errors")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args) -> int:
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
    except ImportError as exc:
        raise FerkitError(f"ferkit batch needs {exc.name}: pip install 'ray[data]' pyarrow") from None
    from ferkit.batch.job import BatchOptions, recognition_settings, run_batch

    settings = recognition_settings(args.model, args.detector, args.threshold, args.min_face, args.preprocess,
                                    args.tta, args.align, args.backend, args.precision, args.device, args.max_frames)
    options = BatchOptions(args.inputs, args.out, settings, address=args.address, workers=args.workers,
                           cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
                           batch_size=args.batch_size, progress=args.progress, retry_errors=args.retry_errors)
    summary = run_batch(options)
    print_summary(summary)
    return 1 if summary["errors"] else 0


def print_summary(summary: dict) -> None:
    out = summary["out"]
    for video in summary["videos"]:
        tracks = [t for t in summary["tracks"] if t["source"] == video["source"]]
        print(f"{video['source']}: {video['frames']} frames, {len(tracks)} face track(s)")
        for track in sorted(tracks, key=lambda t: t["track"]):
            shares = sorted(((k[6:], v) for k, v in track.items() if k.startswith("share_") and v),
                            key=lambda kv: -kv[1])
            shown = ", ".join(f"{k} {v:.0%}" for k, v in shares[:3])
            print(f"  face #{track['track']}: frames {track['first_frame']}-{track['last_frame']} "
                  f"({track['frames']} seen), mostly {track['emotion']} ({track['score']:.2f}); shown as {shown}")
    print(f"{summary['inputs']} input(s): {summary['ok']} ok, {len(summary['errors'])} error(s); "
          f"{summary['faces']} face(s); {summary['seconds']:.1f} s. Tables in {out}/faces, {out}/inputs, "
          f"{out}/tracks (pandas.read_parquet)")
    if summary["errors"]:
        print(f"{len(summary['errors'])} input(s) could not be read:", file=sys.stderr)
        for row in summary["errors"][:20]:
            print(f"  {row['source']}: {row['error']}", file=sys.stderr)
        if len(summary["errors"]) > 20:
            print(f"  … and {len(summary['errors']) - 20} more (status = 'error' in {out}/inputs)", file=sys.stderr)
