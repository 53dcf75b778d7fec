"""semiadv-train: the main job. Runs every unfinished stage of a SAN in its work dir.

  semiadv-train --flagfile=flags/demo.cfg

prototypes -> gender CNN -> matcher -> autoencoder pre-training -> SAN -> export, then a
held-out summary: what was trained, where it went, what it does to held-out faces and the
commands to run next. Re-running the same command resumes where a killed run stopped.
"""

import sys

from absl import app

from semiadv.apps import train_flags
from semiadv import pipeline, run_summary


def main(argv):
    del argv
    config = train_flags.train_config()
    summary = pipeline.run(config)
    # The evaluation reads the same data flags: the next commands repeat this run's flags.
    print(run_summary.text(config, summary, sys.argv[1:]), end="")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
