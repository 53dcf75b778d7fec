"""semiadv-train: the main job. Runs every unfinished stage of a SAN in its work dir.

  semiadv-train --flagfile=flags/demo.cfg

prototypes -> gender CNN -> matcher -> autoencoder pre-training -> SAN -> export, then a
held-out summary: what was trained, where it went, what it does to held-out faces and the
commands to run next. Re-running the same command resumes where a killed run stopped; a rerun
whose flags would change a finished stage refuses (`--retrain_from=STAGE` trains it again:
see semiadv/train/stages.py).
"""

import sys

from absl import flags

from semiadv.apps import cli, common_flags, train_flags
from semiadv.train import main_job
from semiadv.train import run_summary
from semiadv.train import stages


def main(argv):
    del argv
    config = train_flags.checked_train_config()
    stages.retrain(config, train_flags.RETRAIN_FROM.value)
    summary = main_job.run(config)
    # The evaluation reads the same data flags: the next commands repeat this run's
    # flagfiles and the data flags it shares (semiadv-evaluate defines no training flag).
    shared = [flag.name for flag in flags.FLAGS.get_flags_for_module(common_flags)]
    print(run_summary.text(config, summary, cli.arguments_setting(sys.argv[1:], shared)),
          end="")


def run():
    cli.run(main, "semiadv-train",
            key_flag_modules=(sys.modules[__name__], train_flags, common_flags))


if __name__ == "__main__":
    run()
