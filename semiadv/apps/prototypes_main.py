"""semiadv-prototypes: computes the male, female and neutral prototypes of a dataset.

  semiadv-prototypes --dataset=utkface:../shared/faces/utkface --image_size=64 --channels=3 \
      --output=models/utkface64/prototypes.npz
"""

from absl import app, flags, logging

from semiadv.apps import common_flags
from semiadv import prototypes_job

OUTPUT = flags.DEFINE_string("output", None, "Where to write the prototypes (.npz); a PNG of "
                             "the three side by side is written next to it.", required=True)
MALE_WEIGHT = flags.DEFINE_float(
    "male_weight", None, "Weight of the male prototype in the neutral one (default: the share "
    "of males in the training split).", lower_bound=0.0, upper_bound=1.0)


def main(argv):
    del argv
    result = prototypes_job.compute_and_save(common_flags.data_config(), OUTPUT.value,
                                             MALE_WEIGHT.value)
    logging.info("Wrote %s (%d male and %d female faces, neutral male weight %.3f)",
                 OUTPUT.value, *result.counts, result.male_weight)
    print(f"prototypes: {OUTPUT.value}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
