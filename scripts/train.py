"""Train an agent: the same as the ``rl-lstm train`` command (``python scripts/train.py --help``)."""

import sys

from rl_lstm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
