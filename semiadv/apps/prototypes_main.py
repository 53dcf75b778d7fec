"""semiadv-prototypes: computes the male, female and neutral prototypes of a dataset.

  semiadv-prototypes --dataset=utkface:../shared/faces/utkface --image_size=64 --channels=3 \
      --output=models/utkface64/prototypes.npz [--attributes=gender,age_group,race]
"""

import sys
from pathlib import Path

from absl import flags, logging

from semiadv.apps import cli, common_flags
from semiadv.apps import preflight
from semiadv.prototypes import by_attribute
from semiadv.prototypes import job as prototypes_job
from semiadv.errors import UserValueError

OUTPUT = flags.DEFINE_string("output", None, "Where to write the prototypes (.npz); a PNG of "
                             "the prototypes side by side is written next to it.", required=True)
MALE_WEIGHT = flags.DEFINE_float(
    "male_weight", None, "Weight of the male prototype in the neutral one (default: the share "
    "of males in the training split).", lower_bound=0.0, upper_bound=1.0)
ATTRIBUTES = flags.DEFINE_list(
    "attributes", [by_attribute.GENDER], "Whose prototypes to compute, any of "
    f"{','.join(by_attribute.CHOICES)}: gender is always computed (the male, female and "
    "neutral prototypes training reads); age_group and race add the mean face of each value "
    "with faces, and its count, to the same .npz and PNG.")
flags.register_validator(
    "attributes", lambda names: set(names) <= set(by_attribute.CHOICES),
    f"--attributes takes a comma-separated list of {', '.join(by_attribute.CHOICES)}")


def main(argv):
    del argv
    with cli.building_config():
        data_config = common_flags.data_config()
    if Path(OUTPUT.value).suffix != ".npz":
        raise UserValueError(f"--output={OUTPUT.value}: must be a .npz file, e.g. "
                             "models/run/prototypes.npz")
    preflight.dataset(data_config.dataset)
    preflight.writable_dir(Path(OUTPUT.value).parent, "--output")
    attributes = by_attribute.parse_attributes(ATTRIBUTES.value)
    result = prototypes_job.compute_and_save(data_config, OUTPUT.value,
                                             MALE_WEIGHT.value, attributes)
    logging.info("Wrote %s (%d male and %d female faces, neutral male weight %.3f)",
                 OUTPUT.value, *result.counts, result.male_weight)
    for values in result.by_attribute.values():
        missing = ", ".join(values.value_names[value] for value in values.missing)
        print(f"prototypes per {values.describe()}"
              + (f" (no faces: {missing}; left out)" if missing else ""))
    print(f"prototypes: {OUTPUT.value} (figure: {Path(OUTPUT.value).with_suffix('.png')})")


def run():
    cli.run(main, "semiadv-prototypes",
            key_flag_modules=(sys.modules[__name__], common_flags))


if __name__ == "__main__":
    run()
