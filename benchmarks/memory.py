"""Peak RSS of a short training run on 2,000 versus 20,000 UTKFace images.

  python benchmarks/memory.py [--counts=2000,20000] [--steps=60] [--image_size=64]
      [--caches=disk,none,memory]

Each run is a fresh subprocess: `semiadv-pretrain --net=gender` for `--steps` steps on a
temporary folder of symlinks to the first N UTKFace photos (sorted names; nothing copied),
reporting its own `ru_maxrss`. Cache modes (`--cache`; target: RSS within 10% from 2,000 to
20,000 images):

  disk    the default: photos decoded once into a file of raw rows (in a fresh temporary
          cache dir, so the first decoding is part of the run), read from it every step
  none    photos decoded from JPEG every step
  memory  decoded images held in RAM (budget 1024 MiB), so RSS grows by ~N x H x W x C bytes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _common
from _common import load_average, machine, table, write_results

CHILD = r"""
import json, resource, runpy, sys
sys.argv = ["semiadv-pretrain"] + sys.argv[1:]
try:
    runpy.run_module("semiadv.apps.pretrain_main", run_name="__main__")
except SystemExit as done:
    if done.code not in (None, 0):
        raise
print("RSS_JSON " + json.dumps({"ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="2000,20000")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--caches", default="disk,none,memory")
    parser.add_argument("--faces", default=str(_common.REPO.parent / "shared" / "faces"))
    args = parser.parse_args()

    info = machine()
    utkface = Path(args.faces) / "utkface"
    if not utkface.is_dir():
        sys.exit(f"UTKFace not found at {utkface}")
    photos = sorted(utkface.glob("*.jpg"))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for count in (int(c) for c in args.counts.split(",")):
            folder = Path(scratch) / f"utk{count}"
            folder.mkdir()
            for photo in photos[:count]:
                (folder / photo.name).symlink_to(photo)
            for cache in args.caches.split(","):
                workdir = Path(scratch) / f"run{count}-{cache}"
                command = [sys.executable, "-c", CHILD, f"--dataset=utkface:{folder}",
                           f"--image_size={args.image_size}", "--channels=3",
                           "--batch_size=32", f"--workdir={workdir}", "--net=gender",
                           f"--gender_steps={args.steps}", "--classifier_width=0.5",
                           f"--cache={cache}", f"--cache_dir={workdir / 'decoded'}",
                           "--steps_per_loop=20",
                           f"--checkpoint_every={args.steps}", "--strategy=auto"]
                result = subprocess.run(command, capture_output=True, text=True,
                                        cwd=_common.REPO)
                line = [l for l in result.stdout.splitlines() if l.startswith("RSS_JSON ")]
                if result.returncode or not line:
                    print(result.stderr[-3000:], file=sys.stderr)
                    sys.exit(f"run with {count} images failed ({result.returncode})")
                rss_mb = json.loads(line[0][len("RSS_JSON "):])["ru_maxrss_kb"] / 1024
                rows.append({"images": count, "cache": cache,
                             "image_megabytes": count * args.image_size**2 * 3 / 2**20,
                             "peak_rss_mb": rss_mb, "load_average": load_average()})
                print(f"{count} images, --cache={cache}: peak RSS {rss_mb:.0f} MB", flush=True)
    for cache in {r["cache"] for r in rows}:
        same = [r for r in rows if r["cache"] == cache]
        for row in same:
            row["vs_smallest"] = row["peak_rss_mb"] / same[0]["peak_rss_mb"]
    print(table(rows, ["images", "cache", "image_megabytes", "peak_rss_mb",
                       "vs_smallest"]))
    path = write_results("memory", {"machine": info, "args": vars(args), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
