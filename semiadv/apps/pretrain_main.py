"""semiadv-pretrain: trains one network of the SAN on its own.

  semiadv-pretrain --flagfile=flags/demo.cfg --net=gender       # cross-entropy
  semiadv-pretrain --flagfile=flags/demo.cfg --net=matcher      # triplet loss
  semiadv-pretrain --flagfile=flags/demo.cfg --net=autoencoder  # pixel loss on P_SM
"""

from absl import app, flags

from semiadv.apps import train_flags
from semiadv import pipeline

NET = flags.DEFINE_enum("net", None, ["gender", "matcher", "autoencoder"],
                        "Which network to train.", required=True)


def main(argv):
    del argv
    config = train_flags.train_config()
    strategy = pipeline.setup(config)
    pipeline.pretrain(config, NET.value, strategy)
    print(f"{NET.value}: {pipeline.stage_dir(config, NET.value) / 'model.keras'}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
