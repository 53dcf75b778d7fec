"""semiadv-pretrain: trains one network of the SAN on its own.

  semiadv-pretrain --flagfile=flags/demo.cfg --net=gender       # cross-entropy
  semiadv-pretrain --flagfile=flags/demo.cfg --net=gender_1 --gender_ensemble=2
                                                                # Ensemble SAN member 1
  semiadv-pretrain --flagfile=flags/demo.cfg --net=matcher      # triplet loss
  semiadv-pretrain --flagfile=flags/demo.cfg --net=autoencoder  # pixel loss on P_SM
"""

import sys

from absl import flags

from semiadv.apps import cli, common_flags, train_flags
from semiadv.train import main_job
from semiadv.train import stages
from semiadv.train import ensemble

_NETS = ("gender", "matcher", "autoencoder")
NET = flags.DEFINE_string(
    "net", None, "Which network to train: gender, matcher, autoencoder, or gender_<k> "
    "(k = 1..--gender_ensemble: an extra gender classifier of the Ensemble SAN).",
    required=True)


def _member(net):
    """k of --net=gender_<k>, else 0 (None while --net is unset: `required` reports that)."""
    return (ensemble.member_index(net) or 0) if net is not None else 0


flags.register_validator("net", lambda net: net is None or net in _NETS or _member(net) > 0,
                         "--net must be gender, matcher, autoencoder or gender_<k> (k >= 1)")
flags.register_multi_flags_validator(
    ["net", "gender_ensemble"],
    lambda values: _member(values["net"]) <= values["gender_ensemble"],
    "--net=gender_<k> needs --gender_ensemble >= k")


def main(argv):
    del argv
    config = train_flags.checked_train_config()
    stages.retrain(config, train_flags.RETRAIN_FROM.value)
    strategy = main_job.setup(config)
    main_job.pretrain(config, NET.value, strategy)
    print(f"{NET.value}: {main_job.stage_dir(config, NET.value) / 'model.keras'}")


def run():
    cli.run(main, "semiadv-pretrain",
            key_flag_modules=(sys.modules[__name__], train_flags, common_flags))


if __name__ == "__main__":
    run()
