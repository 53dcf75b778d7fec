"""semiadv-train: the main job. Runs every unfinished stage of a SAN in its work dir.

  semiadv-train --flagfile=flags/demo.cfg

prototypes -> gender CNN -> matcher -> autoencoder pre-training -> SAN -> export, then a
held-out summary. Re-running the same command resumes where a killed run stopped.
"""

import json

from absl import app

from semiadv.apps import train_flags
from semiadv import pipeline


def main(argv):
    del argv
    config = train_flags.train_config()
    summary = pipeline.run(config)
    print(f"export: {summary.pop('export')}")
    print("held-out summary (auxiliary networks):")
    print(json.dumps(summary, indent=2))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
