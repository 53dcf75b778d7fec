"""semiadv-pretrain: trains one network of the SAN on its own.

  semiadv-pretrain --flagfile=flags/demo.cfg --net=gender       # cross-entropy
  semiadv-pretrain --flagfile=flags/demo.cfg --net=gender_1 --gender_ensemble=2
                                                                # Ensemble SAN member 1
  semiadv-pretrain --flagfile=flags/demo.cfg --net=gender_2 --flow_links=3
                                                                # link 3's classifier
  semiadv-pretrain --flagfile=flags/demo.cfg --net=race --hide_attributes=gender,race
                                                                # a choice SAN's race CNN
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
_ATTRIBUTE_NETS = ("age_group", "race")
NET = flags.DEFINE_string(
    "net", None, "Which network to train: gender, matcher, autoencoder, gender_<k> "
    "(k = 1..--gender_ensemble + --flow_links - 1: an extra gender classifier of the "
    "Ensemble SAN, then those of the links of a sequential SAN), or age_group or race (the "
    "auxiliary classifiers of a choice-conditioned SAN, named in --hide_attributes).",
    required=True)


def _member(net):
    """k of --net=gender_<k>, else 0 (None while --net is unset: `required` reports that)."""
    return (ensemble.member_index(net) or 0) if net is not None else 0


flags.register_validator(
    "net", lambda net: net is None or net in _NETS + _ATTRIBUTE_NETS or _member(net) > 0,
    "--net must be gender, matcher, autoencoder, gender_<k> (k >= 1), age_group or race")
# The extra classifiers are the ensemble's members 1..E, then those of links 2..L of a
# sequential SAN, E + 1..E + L - 1 (`flow.gender_stages`), as main_job.pretrain checks.
flags.register_multi_flags_validator(
    ["net", "gender_ensemble", "flow_links"],
    lambda values: _member(values["net"]) <= values["gender_ensemble"] + values["flow_links"] - 1,
    "--net=gender_<k> needs k <= --gender_ensemble + --flow_links - 1 (the ensemble's members, "
    "then one classifier per link after the first)")
flags.register_multi_flags_validator(
    ["net", "hide_attributes"],
    lambda values: values["net"] not in _ATTRIBUTE_NETS
    or values["net"] in (values["hide_attributes"] or ()),
    "--net=age_group and --net=race need that attribute in --hide_attributes")


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
