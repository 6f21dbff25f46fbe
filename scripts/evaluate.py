"""Evaluate a saved agent: the same as the ``rl-lstm evaluate`` command (``python scripts/evaluate.py --help``)."""

import sys

from rl_lstm.evaluation import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
