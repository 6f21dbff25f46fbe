"""Supervised sequence tasks of the Evolino papers: a^n b^n c^n, Mackey-Glass and superimposed sines.

Plain numpy generators (not RL environments) for the three benchmark domains of Evolino:

* Schmidhuber, Wierstra & Gomez, "Evolino: Hybrid Neuroevolution / Optimal Linear Search for Sequence
  Learning", IJCAI 2005, pp. 853-858 (abstract: "1) context-sensitive languages, 2) multiple superimposed
  sine waves, and 3) the Mackey-Glass system").
* Wierstra, Gomez & Schmidhuber, "Modeling Systems with Internal State using Evolino", GECCO 2005.
* Schmidhuber, Wierstra, Gagliolo & Gomez, "Training Recurrent Networks by Evolino", Neural Computation
  19(3):757-779, 2007.

The full text of the Evolino papers could not be retrieved while writing this module (only their
abstracts), so every split below says where it comes from, and what is our own choice is marked CHOSEN.

1. Context-sensitive language a^n b^n c^n (next-symbol prediction).
   Strings ``S a^n b^n c^n T``, symbols one-hot in the order :data:`SYMBOLS`; at each step the network
   sees one symbol and predicts the next. The benchmark comes from Gers & Schmidhuber, "LSTM recurrent
   networks learn simple context-free and context-sensitive languages", IEEE TNN 12(6), 2001, which
   trains on n = 1..10 (:data:`ANBNCN_TRAIN_RANGE`) and measures generalization as the largest N such
   that every string with n = 1..N is predicted correctly. Before the first ``b`` the next symbol is not
   determined (after an ``a`` both ``a`` and ``b`` are legal); from the first ``b`` on every next symbol
   follows from the count of ``a``'s. Evolino fits its linear output by regression, so it is scored on
   that deterministic part only: :attr:`SymbolSequence.scored` marks it, :attr:`SymbolSequence.legal_next`
   keeps the Gers-style set of legal next symbols for every step. CHOSEN: a prediction is the output unit
   with the largest activation (winner-take-all), and a string is correct when that unit names the true
   next symbol at every scored step.

2. Mackey-Glass, tau = 17: dx/dt = 0.2 x(t - tau) / (1 + x(t - tau)^10) - 0.1 x(t).
   Parameters, splits and error measure follow Jaeger, "The echo state approach to analysing and
   training recurrent neural networks", GMD Report 148, 2001, section 6 (the ESN benchmark Evolino
   compares itself with; also Jaeger & Haas, Science 304, 2004): training sequences of 3000 unit-time
   samples of which the first 1000 are discarded as washout; NRMSE84 from 50 runs, each teacher-forced
   for 1000 steps and then free-running 84 steps, the runs being 50 consecutive 1084-step blocks of one
   long trajectory; NRMSE84 = sqrt(sum_i (y_i(n+84) - yhat_i(n+84))^2 / (50 sigma^2)) with sigma^2 the
   variance of the attractor signal (Jaeger quotes ~0.067; our trajectory's is ~0.051, and
   :func:`mackey_glass_task` uses the variance of its own test material). Jaeger discretizes with
   forward Euler at step 1/10 and subsamples by 10; that recipe is ``method="euler"``. The default
   ``method="rk4"`` is classical Runge-Kutta at step 1/10 with the delayed value read from the stored
   trajectory (cubic interpolation at half steps): its series agrees with a 4x finer step to ~1e-4 over
   hundreds of time units, where Euler at 1/10 is off by ~5e-2. CHOSEN: constant history x = 1.2 for
   t <= 0 and a 1000-time-unit transient dropped before the first sample; the test blocks follow the
   training sequence on the same trajectory. Jaeger squashes the series with tanh(x - 1) for his ESN;
   that is a learner's preprocessing and is left to the trainer.

3. Multiple superimposed sine waves: y(t) = sum_k sin(w_k t), t = 0, 1, 2, ...
   Frequencies w = 0.2, 0.311, 0.42, 0.51, 0.74 rad/step, the first num_waves of them for the "double"
   to "quintuple" sine task (:data:`SINE_FREQUENCIES`, from the Evolino example of PyBrain, the IDSIA
   library Evolino was released in: pybrain/examples/supervised/evolino/superimposed_sine.py; the pair
   0.2, 0.311 is Jaeger's two-sine task the ESN fails on). Note that the later 8-wave "MSO" benchmark
   inserts 0.63 between 0.51 and 0.74; Evolino's fifth wave is 0.74. CHOSEN (as in third-party
   reproductions of Evolino, not verified against the paper): the network is fed the true series for
   the first 400 steps, of which the first 100 are washout and steps 100..399 train the output, then it
   runs freely (its output fed back as its next input) for steps 400..699, scored by NRMSE against the
   variance of that test stretch.

:func:`nrmse` is sqrt(mean squared error / variance of the target), so a perfect prediction scores 0 and
predicting the target's mean scores 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SYMBOLS = ("S", "a", "b", "c", "T")
"""The a^n b^n c^n alphabet in one-hot order: start, a, b, c, end."""

ANBNCN_TRAIN_RANGE = range(1, 11)
"""The n of the a^n b^n c^n training strings: n = 1..10 (Gers & Schmidhuber 2001)."""

MACKEY_GLASS_TAU = 17.0
MACKEY_GLASS_BETA = 0.2
MACKEY_GLASS_GAMMA = 0.1
MACKEY_GLASS_EXPONENT = 10
MACKEY_GLASS_TRAIN_LENGTH = 3000
"""Samples in the Mackey-Glass training sequence (Jaeger 2001, section 6.1)."""
MACKEY_GLASS_WASHOUT = 1000
"""Leading training samples run but not fitted (Jaeger 2001, section 6.3.1)."""
MACKEY_GLASS_HORIZON = 84
"""Free-running steps before the Mackey-Glass prediction is scored: NRMSE84."""
MACKEY_GLASS_TEST_WARMUP = 1000
"""Teacher-forced steps of each Mackey-Glass test run before it runs freely (Jaeger 2001)."""
MACKEY_GLASS_TEST_RUNS = 50
"""Test runs whose 84-step predictions make one NRMSE84 (Jaeger 2001; Jaeger & Haas 2004 use 100)."""
MACKEY_GLASS_INITIAL_VALUE = 1.2
MACKEY_GLASS_TRANSIENT = 1000
"""Time units integrated and dropped before the first sample, so the series starts on the attractor."""

SINE_FREQUENCIES = (0.2, 0.311, 0.42, 0.51, 0.74)
"""Angular frequencies (rad per step) of the superimposed sines; a task with k waves uses the first k."""
SINE_WAVE_COUNTS = (2, 3, 4, 5)
"""The numbers of superimposed waves of the Evolino tasks: double to quintuple sines."""
SINE_WASHOUT = 100
SINE_TRAIN_END = 400
"""The true series is fed for steps 0..399: washout 0..99, output fitted on 100..399."""
SINE_TEST_END = 700
"""Free-running test steps are 400..699."""

_MACKEY_GLASS_METHODS = ("rk4", "euler")


@dataclass(frozen=True, eq=False)
class SymbolSequence:
    """One a^n b^n c^n string as a next-symbol prediction sequence of 3n + 1 steps."""

    n: int
    inputs: np.ndarray
    """[3n + 1, 5] float32, one-hot symbols S a^n b^n c^n."""
    targets: np.ndarray
    """[3n + 1, 5] float32, one-hot next symbols a^n b^n c^n T."""
    legal_next: np.ndarray
    """[3n + 1, 5] bool, every symbol the language allows next after the prefix seen so far."""
    scored: np.ndarray
    """[3n + 1] bool, the steps whose next symbol is determined: from the first ``b`` on."""


@dataclass(frozen=True, eq=False)
class TimeSeriesTask:
    """A one-dimensional series to learn with its output fed back, and the test that scores it.

    Training: feed ``train_series`` one step at a time and fit the output to the next value, skipping the
    first ``washout`` steps (:meth:`training_pairs`). Test: for each run of ``test_runs``, feed its first
    ``test_warmup`` values, then let the network run freely for the rest and score with :meth:`score`.
    """

    name: str
    train_series: np.ndarray
    """[T, 1] float32."""
    washout: int
    test_runs: np.ndarray
    """[R, test_warmup + free-running steps, 1] float32."""
    test_warmup: int
    score_final_step_only: bool
    """Mackey-Glass scores only the 84th free-running step of each run; the sines score every step."""
    target_variance: float
    """The variance that normalizes the test error."""

    def training_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Teacher-forced next-step pairs over the training series: inputs [T-1, 1], targets [T-1, 1]."""
        return self.train_series[:-1], self.train_series[1:]

    @property
    def free_run_steps(self) -> int:
        """How many steps each test run runs freely after its warmup."""
        return self.test_runs.shape[1] - self.test_warmup

    def score(self, free_run_predictions: np.ndarray) -> float:
        """NRMSE of free-running predictions [R, free_run_steps, 1] against the test runs' continuations."""
        expected_shape = (self.test_runs.shape[0], self.free_run_steps, 1)
        predictions = np.asarray(free_run_predictions, dtype=np.float64)
        if predictions.shape != expected_shape:
            raise ValueError(f"free_run_predictions must have shape {expected_shape}, got {predictions.shape}")
        truths = self.test_runs[:, self.test_warmup :].astype(np.float64)
        if self.score_final_step_only:
            predictions, truths = predictions[:, -1], truths[:, -1]
        return nrmse(predictions, truths, variance=self.target_variance)


def nrmse(predictions: np.ndarray, targets: np.ndarray, variance: float | None = None) -> float:
    """Root mean squared error over the target variance's square root (default: the targets' own variance)."""
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if predictions.shape != targets.shape:
        raise ValueError(
            f"predictions and targets must have the same shape, got {predictions.shape} and {targets.shape}"
        )
    if targets.size == 0:
        raise ValueError("nrmse needs at least one target")
    normalizer = float(np.var(targets)) if variance is None else float(variance)
    if not normalizer > 0.0:
        raise ValueError(f"variance must be positive, got {normalizer}")
    return float(np.sqrt(np.mean((predictions - targets) ** 2) / normalizer))


def _one_hot(symbol_indices: np.ndarray) -> np.ndarray:
    return np.eye(len(SYMBOLS), dtype=np.float32)[symbol_indices]


def _check_integer(value: int, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def anbncn_string(n: int) -> np.ndarray:
    """The string S a^n b^n c^n T, one-hot: [3n + 2, 5] float32."""
    _check_integer(n, "n", 1)
    start, a, b, c, end = range(len(SYMBOLS))
    symbols = np.concatenate([[start], np.full(n, a), np.full(n, b), np.full(n, c), [end]])
    return _one_hot(symbols)


def anbncn_sequence(n: int) -> SymbolSequence:
    """The next-symbol prediction sequence of a^n b^n c^n: inputs, next symbols, legal sets and scored steps."""
    string = anbncn_string(n)
    symbol_a, symbol_b = SYMBOLS.index("a"), SYMBOLS.index("b")
    legal_next = string[1:].astype(bool)
    # After an a either another a or the first b may follow; every other next symbol is forced.
    after_a = slice(1, n + 1)
    legal_next[after_a, symbol_a] = True
    legal_next[after_a, symbol_b] = True
    scored = np.zeros(3 * n + 1, dtype=bool)
    scored[n + 1 :] = True
    return SymbolSequence(n=n, inputs=string[:-1], targets=string[1:], legal_next=legal_next, scored=scored)


def anbncn_training_set(n_values: range = ANBNCN_TRAIN_RANGE) -> list[SymbolSequence]:
    """One sequence per n of the training range (by default the papers' n = 1..10)."""
    for n in n_values:
        _check_integer(n, "every n of n_values", 1)
    return [anbncn_sequence(n) for n in n_values]


def anbncn_prediction_correct(outputs: np.ndarray, sequence: SymbolSequence) -> bool:
    """Whether the largest output names the true next symbol at every scored step of the sequence."""
    outputs = np.asarray(outputs)
    if outputs.shape != sequence.targets.shape:
        raise ValueError(f"outputs must have shape {sequence.targets.shape} for n={sequence.n}, got {outputs.shape}")
    predicted = np.argmax(outputs[sequence.scored], axis=1)
    expected = np.argmax(sequence.targets[sequence.scored], axis=1)
    return bool(np.array_equal(predicted, expected))


def anbncn_largest_generalized_n(predict_fn: Callable[[np.ndarray], np.ndarray], n_max: int) -> int:
    """The largest N <= n_max such that every string with n = 1..N is predicted correctly (0 if n = 1 fails).

    ``predict_fn`` maps one string's inputs [3n + 1, 5] to outputs of the same shape, starting from a fresh
    network state each call.
    """
    _check_integer(n_max, "n_max", 1)
    for n in range(1, n_max + 1):
        sequence = anbncn_sequence(n)
        if not anbncn_prediction_correct(predict_fn(sequence.inputs), sequence):
            return n - 1
    return n_max


def _mackey_glass_production(delayed: np.ndarray) -> np.ndarray:
    return MACKEY_GLASS_BETA * delayed / (1.0 + delayed**MACKEY_GLASS_EXPONENT)


def _advance(
    method: str,
    x: float,
    drive_start: np.ndarray | float,
    drive_mid: np.ndarray | float,
    drive_end: np.ndarray | float,
    step: float,
) -> np.ndarray | float:
    """One integration step of dx/dt = drive(t) - gamma x, the drive sampled at the step's start, middle, end."""
    if method == "euler":
        return x + step * (drive_start - MACKEY_GLASS_GAMMA * x)
    k1 = drive_start - MACKEY_GLASS_GAMMA * x
    k2 = drive_mid - MACKEY_GLASS_GAMMA * (x + 0.5 * step * k1)
    k3 = drive_mid - MACKEY_GLASS_GAMMA * (x + 0.5 * step * k2)
    k4 = drive_end - MACKEY_GLASS_GAMMA * (x + step * k3)
    return x + step / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _whole_multiple(value: float, unit: float, what: str) -> int:
    count = round(value / unit)
    if count < 1 or abs(count * unit - value) > 1e-9 * max(1.0, value):
        raise ValueError(f"{what} must be a whole multiple of step={unit}, got {value}")
    return count


def mackey_glass(
    length: int,
    tau: float = MACKEY_GLASS_TAU,
    step: float = 0.1,
    method: str = "rk4",
    transient: int = MACKEY_GLASS_TRANSIENT,
    initial_value: float = MACKEY_GLASS_INITIAL_VALUE,
) -> np.ndarray:
    """The Mackey-Glass series sampled at unit time steps after ``transient`` time units: [length] float64.

    ``method`` is "rk4" (accurate) or "euler" (Jaeger's discretization); ``step`` must divide both 1 and
    ``tau``, and the history before t = 0 is constant at ``initial_value``.
    """
    _check_integer(length, "length", 0)
    _check_integer(transient, "transient", 0)
    if method not in _MACKEY_GLASS_METHODS:
        raise ValueError(f"method must be one of {_MACKEY_GLASS_METHODS}, got {method!r}")
    if not step > 0.0:
        raise ValueError(f"step must be positive, got {step}")
    steps_per_sample = _whole_multiple(1.0, step, "the sampling interval 1")
    delay_steps = _whole_multiple(tau, step, "tau")
    if delay_steps < 3:
        raise ValueError(f"tau must span at least 3 steps, got tau={tau} with step={step}")
    if length == 0:
        return np.empty(0)

    total_steps = (transient + length - 1) * steps_per_sample
    # trajectory[origin + k] holds x at time k * step; everything from index 0 to origin is the constant
    # history, one point further back than the delay so the half-step interpolation has its left neighbour.
    origin = delay_steps + 1
    trajectory = np.empty(origin + total_steps + 1)
    trajectory[: origin + 1] = initial_value
    # Once x(t - tau) is known the equation is linear in x, so one step is x_next = decay * x + kick: the
    # stages applied to x = 1 with no drive give decay, applied to x = 0 with the drive give kick. A block of
    # steps only needs delayed values already computed, so it is solved at once in closed form.
    decay = _advance(method, 1.0, 0.0, 0.0, 0.0, step)
    block_size = delay_steps - 1
    for block_start in range(0, total_steps, block_size):
        block_end = min(block_start + block_size, total_steps)
        lagged = origin + np.arange(block_start, block_end) - delay_steps
        left, here, right, further = (trajectory[lagged + shift] for shift in (-1, 0, 1, 2))
        midpoint = (9.0 * (here + right) - left - further) / 16.0
        kicks = _advance(
            method,
            0.0,
            _mackey_glass_production(here),
            _mackey_glass_production(midpoint),
            _mackey_glass_production(right),
            step,
        )
        decay_powers = decay ** np.arange(1, block_end - block_start + 1)
        start_value = trajectory[origin + block_start]
        trajectory[origin + block_start + 1 : origin + block_end + 1] = decay_powers * (
            start_value + np.cumsum(kicks / decay_powers)
        )
    first_sample = origin + transient * steps_per_sample
    return trajectory[first_sample::steps_per_sample][:length].copy()


def mackey_glass_task() -> TimeSeriesTask:
    """The Mackey-Glass tau = 17 task: 3000 training samples (washout 1000) and 50 NRMSE84 test runs."""
    run_length = MACKEY_GLASS_TEST_WARMUP + MACKEY_GLASS_HORIZON
    series = mackey_glass(MACKEY_GLASS_TRAIN_LENGTH + MACKEY_GLASS_TEST_RUNS * run_length)
    test_material = series[MACKEY_GLASS_TRAIN_LENGTH:]
    return TimeSeriesTask(
        name="mackey_glass_tau17",
        train_series=series[:MACKEY_GLASS_TRAIN_LENGTH, None].astype(np.float32),
        washout=MACKEY_GLASS_WASHOUT,
        test_runs=test_material.reshape(MACKEY_GLASS_TEST_RUNS, run_length, 1).astype(np.float32),
        test_warmup=MACKEY_GLASS_TEST_WARMUP,
        score_final_step_only=True,
        target_variance=float(np.var(test_material)),
    )


def _check_wave_count(num_waves: int) -> None:
    if isinstance(num_waves, bool) or not isinstance(num_waves, (int, np.integer)) or num_waves not in SINE_WAVE_COUNTS:
        raise ValueError(f"num_waves must be one of {SINE_WAVE_COUNTS}, got {num_waves!r}")


def superimposed_sines(num_waves: int, length: int) -> np.ndarray:
    """sum_k sin(SINE_FREQUENCIES[k] * t) over the first ``num_waves`` frequencies, t = 0..length-1: float64."""
    _check_wave_count(num_waves)
    _check_integer(length, "length", 0)
    times = np.arange(length, dtype=np.float64)
    return np.sin(np.outer(times, SINE_FREQUENCIES[:num_waves])).sum(axis=1)


def superimposed_sines_task(num_waves: int) -> TimeSeriesTask:
    """The Evolino superimposed-sines task: true series for steps 0..399 (washout 100), free run 400..699."""
    series = superimposed_sines(num_waves, SINE_TEST_END)
    return TimeSeriesTask(
        name=f"superimposed_sines_{num_waves}",
        train_series=series[:SINE_TRAIN_END, None].astype(np.float32),
        washout=SINE_WASHOUT,
        test_runs=series[None, :, None].astype(np.float32),
        test_warmup=SINE_TRAIN_END,
        score_final_step_only=False,
        target_variance=float(np.var(series[SINE_TRAIN_END:])),
    )
