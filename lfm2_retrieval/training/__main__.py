"""python -m lfm2_retrieval.training CONFIG [--set key=value ...]"""

import argparse

from .config import TrainConfig
from .trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lfm2_retrieval.training", description=__doc__)
    parser.add_argument("config", nargs="?", help="a .toml or .json file of TrainConfig settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    args = parser.parse_args()
    Trainer(TrainConfig.load(args.config, args.set)).train()


if __name__ == "__main__":
    main()
