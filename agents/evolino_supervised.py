"""Supervised Evolino: ESP evolves an LSTM's memory cells, the pseudo-inverse computes its linear output.

J. Schmidhuber, D. Wierstra & F. Gomez, "Evolino: Hybrid Neuroevolution / Optimal Linear Search for Sequence
Learning", IJCAI 2005; J. Schmidhuber, D. Wierstra, M. Gagliolo & F. Gomez, "Training Recurrent Networks by
Evolino", Neural Computation 19(3), 2007. As published (what the abstracts and IDSIA's Evolino page state):
Enforced SubPopulations evolve the weights of the memory cells, one subpopulation per cell; to score a network,
the training sequences are fed in, the cell activations collected, and the output weights computed optimally by
the Moore-Penrose pseudo-inverse of those activations against the targets; the network's fitness is its error
with those weights. The machinery (ESP, the peephole LSTM of a whole population) is ``rl_lstm.esp``'s.

Read top to bottom: the hyperparameters; :class:`TrainingData` (the two kinds of task: next-symbol prediction
fed the true sequence, and time series whose output is fed back at test time); then one generation of
:meth:`SupervisedEvolino.learn` = run all networks in one batched pass -> collect activations after the washout
-> batched pseudo-inverse -> score (optionally by free-running) -> ``esp.tell``.

The papers' full text was not retrievable while writing this module (only abstracts), so no value below is
taken from them. Where a default has a source it is PyBrain's Evolino (IDSIA's library, Michael Isik:
``pybrain/supervised/trainers/evolino.py`` and its 5-sine example ``examples/supervised/evolino/
superimposed_sine.py``: 40 cells, subpopulations of 20, each chromosome in 1 network per generation, initial
weights in +-0.01, Cauchy mutation of scale 0.001); the values marked OURS were chosen by short runs on the
tasks of ``envs/sequences.py``. Small weights keep the cells near their linear range: with 40 cells the
regression then fits the sines and Mackey-Glass closely, and larger ones (0.1, 1.0) free-ran far worse in our
runs. Deviations and choices, each with its reason:

- The output layer has a bias (a column of ones beside the activations): the sines and Mackey-Glass are not
  zero-mean. Not verified whether the papers use one.
- ``ridge`` > 0 replaces the pseudo-inverse by ridge regression (Tikhonov), for free-running stability; the
  default 0 is the papers' pseudo-inverse.
- ``fitness_horizon`` > 0 (time series only) scores a network by the error of the values it generates (its own
  output fed back as the next input) after warmups ending at ``fitness_starts`` points of the fitted stretch,
  the output weights still being the teacher-forced regression's. PyBrain's Evolino scores by free-running
  over the training stretch like this, and without it the teacher-forced fit (NRMSE ~1e-4) free-ran to test
  NRMSEs of 1 to 300 on the sines in our runs; the default 0 scores the teacher-forced regression error.
- The error is the NRMSE (RMSE over the standard deviation of the fitted targets), a monotone function of the
  MSE, so selection is unchanged; a network whose output is not finite gets error ``NONFINITE_ERROR``.
- ESP's details (one-point crossover, Cauchy mutation of the offspring, burst mutation around the best network)
  are ``rl_lstm.esp``'s; PyBrain clones and mutates the parents without crossover and never bursts by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.sequences import SymbolSequence, TimeSeriesTask
from rl_lstm.agent import resolve_device
from rl_lstm.config import build_config, require
from rl_lstm.errors import CheckpointError, ConfigError
from rl_lstm.esp import EnforcedSubpopulations, LSTMLayout, PopulationLSTM, validate_esp_settings

NONFINITE_ERROR = 1e6
"""The error of a network whose outputs are NaN or inf: worse than any real one, and finite for ESP."""


@dataclass
class SupervisedEvolinoConfig:
    """Hyperparameters of supervised Evolino (sources in the module docstring: PyBrain's or OURS)."""

    num_cells: int = 40  # memory cells = ESP subpopulations (PyBrain's 5-sine example: 40)
    subpopulation_size: int = 20  # chromosomes per subpopulation (PyBrain's sine example: 20)
    trials: int = 1  # networks each chromosome joins per generation (PyBrain's sine example: nCombinations=1)
    init_scale: float = 0.01  # initial weights uniform in [-init_scale, init_scale] (PyBrain's sine example)
    elite_fraction: float = 0.25  # parents: the top quarter of each subpopulation (PyBrain's default n / 4)
    crossover: bool = True  # one-point crossover of two parents (ESP's; PyBrain only mutates clones)
    mutation_scale: float = 0.001  # Cauchy scale of the offspring's mutation (PyBrain's sine example)
    burst_after: int = 20  # burst mutation after this many generations without a better network (OURS)
    burst_scale: float = 0.002  # Cauchy scale of a burst mutation around the best network (OURS)
    ridge: float = 0.0  # 0: the pseudo-inverse (the papers); > 0: ridge regression on the mean Gram matrix
    fitness_horizon: int = 0  # 0: teacher-forced regression error; N > 0: error of N free-running steps (series)
    fitness_starts: int = 1  # free runs scored per network, started evenly over the fitted stretch

    def validate(self) -> None:
        """Range checks: each error names the key and what is allowed."""
        require(self.num_cells >= 1, f"num_cells must be at least 1, got {self.num_cells}")
        validate_esp_settings(self)
        require(self.trials >= 1, f"trials must be at least 1, got {self.trials}")
        require(self.ridge >= 0, f"ridge must be >= 0 (0 is the pseudo-inverse), got {self.ridge}")
        require(self.fitness_horizon >= 0, f"fitness_horizon must be >= 0, got {self.fitness_horizon}")
        require(self.fitness_starts >= 1, f"fitness_starts must be at least 1, got {self.fitness_starts}")


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Training sequences, time-major: ``inputs [T, B, F]``, ``targets [T, B, O]``, ``fitted [T, B]``.

    ``fitted`` marks the steps whose activations enter the regression and the error (after the washout, real
    steps of padded sequences). ``feedback``: the target at step t is the input at step t + 1 (a time series),
    which is what free-running needs.
    """

    inputs: np.ndarray
    targets: np.ndarray
    fitted: np.ndarray
    feedback: bool

    @staticmethod
    def from_symbol_sequences(sequences: Sequence[SymbolSequence]) -> TrainingData:
        """Next-symbol prediction: every string from a fresh state, padded; the scored steps are fitted."""
        length = max(len(sequence.inputs) for sequence in sequences)
        features = sequences[0].inputs.shape[1]
        inputs = np.zeros((length, len(sequences), features), dtype=np.float64)
        targets = np.zeros_like(inputs)
        fitted = np.zeros((length, len(sequences)), dtype=bool)
        for b, sequence in enumerate(sequences):
            steps = len(sequence.inputs)
            inputs[:steps, b], targets[:steps, b] = sequence.inputs, sequence.targets
            fitted[:steps, b] = sequence.scored
        return TrainingData(inputs, targets, fitted, feedback=False)

    @staticmethod
    def from_time_series(task: TimeSeriesTask) -> TrainingData:
        """One-step prediction over the task's training series, fed the true series; washout steps not fitted."""
        inputs, targets = task.training_pairs()  # [T, 1] each
        fitted = np.arange(len(inputs)) >= task.washout
        return TrainingData(
            inputs[:, None].astype(np.float64), targets[:, None].astype(np.float64), fitted[:, None], feedback=True
        )


def solve_output_weights(activations: Tensor, targets: Tensor, ridge: float = 0.0) -> Tensor:
    """Every network's least-squares output weights: ``activations [P, N, H+1]``, ``targets [N, O]`` -> ``[P, H+1, O]``.

    ``ridge`` = 0 is the Moore-Penrose pseudo-inverse (the minimum-norm solution); > 0 adds ``ridge`` times the
    identity to the mean Gram matrix, the bias column (the last) left unpenalized.
    """
    if ridge == 0.0:
        return torch.linalg.pinv(activations) @ targets
    num_samples, width = activations.shape[1], activations.shape[2]
    penalty = torch.eye(width, dtype=activations.dtype, device=activations.device)
    penalty[-1, -1] = 0.0
    gram = activations.transpose(1, 2) @ activations / num_samples + ridge * penalty
    return torch.linalg.solve(gram, activations.transpose(1, 2) @ targets / num_samples)


def _with_bias(h: Tensor) -> Tensor:
    """``h [..., H]`` with a column of ones appended: ``[..., H + 1]``, the regression's design."""
    return torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)


def _nrmse_per_network(predictions: Tensor, targets: Tensor) -> np.ndarray:
    """NRMSE of every network: ``predictions [P, ...]`` against ``targets [...]``; non-finite -> NONFINITE_ERROR."""
    variance = targets.var(unbiased=False).clamp_min(1e-12)
    errors = ((predictions - targets) ** 2).flatten(1).mean(dim=1).div(variance).sqrt().cpu().numpy()
    return np.where(np.isfinite(errors), np.minimum(errors, NONFINITE_ERROR), NONFINITE_ERROR)


def _generate(networks: PopulationLSTM, state: tuple[Tensor, Tensor], output_weights: Tensor, steps: int) -> Tensor:
    """Run freely from ``state`` (after the warmup inputs): the next ``steps`` values, ``[P, B, steps, O]``.

    The first is the prediction from ``state``; every later one is the output after the previous value was fed
    back as the input (so O = F). ``output_weights [P, H+1, O]``.
    """
    value = _with_bias(state[0]) @ output_weights  # [P, B, O]
    values = [value]
    for _ in range(steps - 1):
        h, state = networks.step(value, state)
        value = _with_bias(h) @ output_weights
        values.append(value)
    return torch.stack(values, dim=2)


class SupervisedEvolino:
    """Supervised Evolino: ``SupervisedEvolino(seed=0, device="cpu", **hyperparams)``, ``hyperparams`` the fields of
    the config.

    ``learn(data, generations=..., time_budget=...)`` evolves on :class:`TrainingData`; the best network so far
    (memory cells and its output weights) answers :meth:`predict` and :meth:`generate`. The population runs and its
    output weights are solved on ``device`` ("cpu", "cuda" or "auto"); ESP's chromosomes stay numpy on the host.
    """

    def __init__(self, seed: int = 0, device: str = "cpu", **hyperparams: Any) -> None:
        self.config = build_config(SupervisedEvolinoConfig, hyperparams)
        self.seed = seed
        self.device = resolve_device(device)
        self.rng = np.random.default_rng(seed)
        self.layout: LSTMLayout | None = None
        self.esp: EnforcedSubpopulations | None = None
        self.best_output_weights: np.ndarray | None = None  # [H + 1, O]
        self.best_error = float("inf")

    def _build(self, input_size: int) -> None:
        """The ESP population for ``input_size`` inputs, on first use (the data says how many)."""
        c = self.config
        self.layout = LSTMLayout(input_size, c.num_cells)
        self.esp = EnforcedSubpopulations.from_config(self.layout.chromosome_sizes(), c, self.rng)

    # ---- one generation: run -> regress -> score -> tell ---------------------------------------------------------
    def learn(
        self,
        data: TrainingData,
        generations: int | None = None,
        time_budget: float | None = None,
        callback: Callable[[dict[str, float]], None] | None = None,
    ) -> list[dict[str, float]]:
        """Evolve for ``generations`` or until ``time_budget`` seconds have passed (whichever comes first).

        Returns one record per generation: ``generation``, ``error`` (the generation's best), ``best_error`` (so
        far), ``burst``, ``diversity`` (mean over subpopulations) and ``seconds``.
        """
        if generations is None and time_budget is None:
            raise ConfigError("learn needs generations or time_budget (seconds), or both")
        self._check_data(data)
        if self.esp is None:
            self._build(data.inputs.shape[-1])
        assert self.esp is not None
        history: list[dict[str, float]] = []
        start = time.perf_counter()
        while (generations is None or len(history) < generations) and (
            time_budget is None or time.perf_counter() - start < time_budget
        ):
            members = self.esp.sample_networks(self.config.trials)
            networks = PopulationLSTM(self.layout, self.esp.chromosomes(members), device=self.device)
            errors, output_weights = self._evaluate(networks, data)
            outcome = self.esp.tell(members, -errors)
            best = int(np.argmax(-errors))  # the network esp.tell keeps when it improves
            if errors[best] < self.best_error:
                self.best_error = float(errors[best])
                self.best_output_weights = output_weights[best].cpu().numpy().copy()
            record = {
                "generation": float(self.esp.generation),
                "error": float(errors[best]),
                "best_error": self.best_error,
                "burst": outcome["burst"],
                "diversity": float(np.mean(self.esp.diversity())),
                "seconds": time.perf_counter() - start,
            }
            history.append(record)
            if callback is not None:
                callback(record)
        return history

    def _check_data(self, data: TrainingData) -> None:
        if self.config.fitness_horizon == 0:
            return
        require(
            data.feedback and data.inputs.shape[1] == 1,
            "fitness_horizon > 0 needs one time series to run freely on (TrainingData.from_time_series)",
        )
        first_fitted = int(np.argmax(data.fitted[:, 0]))
        require(
            first_fitted + self.config.fitness_horizon <= len(data.inputs),
            f"fitness_horizon must be at most {len(data.inputs) - first_fitted} (the fitted training stretch), "
            f"got {self.config.fitness_horizon}",
        )

    def _evaluate(self, networks: PopulationLSTM, data: TrainingData) -> tuple[np.ndarray, Tensor]:
        """Every network's error and its output weights ``[P, H+1, O]``, all networks in one batched pass."""
        inputs = self._tensor(data.inputs)
        num_steps, batch = inputs.shape[:2]
        num_networks = networks.num_networks
        starts = self._free_run_starts(data)
        state = networks.initial_state(batch)
        activations, start_states = [], {}
        for t in range(num_steps):
            h, state = networks.step(inputs[t].expand(num_networks, -1, -1), state)
            activations.append(h)
            if t + 1 in starts:
                start_states[t + 1] = state
        fitted = self._tensor(data.fitted.reshape(-1))
        design = _with_bias(torch.stack(activations, dim=1))  # [P, T, B, H + 1]
        design = design.reshape(num_networks, num_steps * batch, -1)[:, fitted]  # [P, N, H + 1]
        targets = self._tensor(data.targets).reshape(num_steps * batch, -1)[fitted]  # [N, O]
        output_weights = solve_output_weights(design, targets, self.config.ridge)
        if not starts:
            return _nrmse_per_network(design @ output_weights, targets), output_weights
        return self._free_run_errors(networks, data, output_weights, start_states, starts), output_weights

    def _free_run_starts(self, data: TrainingData) -> list[int]:
        """Warmup lengths of the scored free runs: evenly spaced, each run's values all fitted steps."""
        horizon = self.config.fitness_horizon
        if horizon == 0:
            return []
        first_fitted = int(np.argmax(data.fitted[:, 0]))
        last_start = len(data.inputs) - horizon + 1
        starts = np.linspace(first_fitted + 1, last_start, self.config.fitness_starts).round()
        return sorted({int(s) for s in starts})

    def _free_run_errors(
        self,
        networks: PopulationLSTM,
        data: TrainingData,
        output_weights: Tensor,
        start_states: dict[int, tuple[Tensor, Tensor]],
        starts: list[int],
    ) -> np.ndarray:
        """Error of every network generating ``fitness_horizon`` values after each warmup (the starts batched).

        A run fed the true inputs of steps 0..s-1 generates the targets of steps s-1 .. s-2+horizon, as
        :meth:`generate` does at test time.
        """
        horizon = self.config.fitness_horizon
        # The state after each warmup, each start a sequence of its own: [P, K, H] (the training series is B = 1).
        state = (
            torch.cat([start_states[s][0] for s in starts], dim=1),
            torch.cat([start_states[s][1] for s in starts], dim=1),
        )
        predictions = _generate(networks, state, output_weights, horizon)  # [P, K, horizon, O]
        truths = torch.stack([self._tensor(data.targets[s - 1 : s - 1 + horizon, 0]) for s in starts])
        return _nrmse_per_network(predictions, truths)  # truths: [K, horizon, O]

    # ---- the best network ------------------------------------------------------------------------------------------
    def _best_network(self) -> tuple[PopulationLSTM, Tensor]:
        """The best network so far as a population of one, and its output weights ``[1, H+1, O]``."""
        if self.esp is None or self.best_output_weights is None:
            raise RuntimeError("no network has been evolved yet; call learn first")
        network = PopulationLSTM(self.layout, self.esp.best_chromosomes(), device=self.device)
        return network, self._tensor(self.best_output_weights)[None]

    def _tensor(self, array: np.ndarray) -> Tensor:
        """A host array as a tensor on the population's device."""
        return torch.as_tensor(array, device=self.device)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The best network's outputs fed ``inputs`` (teacher forcing), from a fresh state per sequence.

        ``inputs [T, F]`` (one sequence) or ``[B, T, F]``; returns ``[T, O]`` or ``[B, T, O]``.
        """
        network, output_weights = self._best_network()
        sequences = self._tensor(np.asarray(inputs, dtype=np.float64))
        single = sequences.dim() == 2
        if single:
            sequences = sequences[None]
        state = network.initial_state(sequences.shape[0])
        outputs = []
        for t in range(sequences.shape[1]):
            h, state = network.step(sequences[None, :, t], state)
            outputs.append(_with_bias(h) @ output_weights)  # [1, B, O]
        predictions = torch.stack(outputs, dim=2)[0].cpu().numpy()  # [B, T, O]
        return predictions[0] if single else predictions

    def generate(self, warmup: np.ndarray, steps: int) -> np.ndarray:
        """Feed ``warmup [B, W, F]`` (the true series), then run freely: the next ``steps`` values ``[B, steps, F]``.

        The first generated value is the prediction made at the last warmup step; each later one is the output
        after the previous generated value was fed back as the input.
        """
        network, output_weights = self._best_network()
        series = self._tensor(np.asarray(warmup, dtype=np.float64))
        state = network.initial_state(series.shape[0])
        for t in range(series.shape[1]):
            _, state = network.step(series[None, :, t], state)
        return _generate(network, state, output_weights, steps)[0].cpu().numpy()

    # ---- checkpoints -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: the config, the input size, ESP's whole state (its RNG included)."""
        return {
            "config": asdict(self.config),
            "seed": self.seed,
            "input_size": None if self.layout is None else self.layout.input_size,
            "esp": None if self.esp is None else self.esp.state_dict(),
            "best_output_weights": None if self.best_output_weights is None else self.best_output_weights.copy(),
            "best_error": self.best_error,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state saved under another config is a CheckpointError."""
        if state["config"] != asdict(self.config):
            changed = sorted(key for key, value in state["config"].items() if asdict(self.config).get(key) != value)
            raise CheckpointError(
                f"the checkpoint was trained with other hyperparameters ({', '.join(changed)}); "
                "build SupervisedEvolino with the checkpoint's config to resume it"
            )
        self.seed = state["seed"]
        if state["esp"] is None:
            self.layout, self.esp = None, None
        else:
            self._build(state["input_size"])
            assert self.esp is not None
            self.esp.load_state_dict(state["esp"])
        weights = state["best_output_weights"]
        self.best_output_weights = None if weights is None else np.array(weights)
        self.best_error = state["best_error"]
