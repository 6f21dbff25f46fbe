"""Behaviour of the Evolino sequence-task generators: a^n b^n c^n, Mackey-Glass, superimposed sines, NRMSE."""

from __future__ import annotations

import numpy as np
import pytest

from envs.sequences import (
    ANBNCN_TRAIN_RANGE,
    MACKEY_GLASS_HORIZON,
    MACKEY_GLASS_TEST_RUNS,
    MACKEY_GLASS_TEST_WARMUP,
    MACKEY_GLASS_TRAIN_LENGTH,
    MACKEY_GLASS_WASHOUT,
    SINE_FREQUENCIES,
    SINE_TEST_END,
    SINE_TRAIN_END,
    SINE_WASHOUT,
    SINE_WAVE_COUNTS,
    SYMBOLS,
    anbncn_largest_generalized_n,
    anbncn_prediction_correct,
    anbncn_sequence,
    anbncn_string,
    anbncn_training_set,
    mackey_glass,
    mackey_glass_task,
    nrmse,
    superimposed_sines,
    superimposed_sines_task,
)


def symbols_of(one_hot: np.ndarray) -> str:
    assert np.all(one_hot.sum(axis=1) == 1.0), "every step must be exactly one-hot"
    return " ".join(SYMBOLS[i] for i in one_hot.argmax(axis=1))


def counting_oracle(inputs: np.ndarray, fails_from_n: int | None = None) -> np.ndarray:
    """Predict the next symbol by counting a's; from ``fails_from_n`` on, wrongly predict T instead of the first c."""
    a, b, c, end = (SYMBOLS.index(symbol) for symbol in "abcT")
    seen = inputs.argmax(axis=1)
    n = int(np.sum(seen == a))
    outputs = np.zeros_like(inputs)
    b_count = c_count = 0
    for step, symbol in enumerate(seen):
        if symbol == SYMBOLS.index("S") or symbol == a:
            guess = a
        elif symbol == b:
            b_count += 1
            guess = b if b_count < n else c
            if guess == c and fails_from_n is not None and n >= fails_from_n:
                guess = end
        else:
            c_count += 1
            guess = c if c_count < n else end
        outputs[step, guess] = 1.0
    return outputs


# --- a^n b^n c^n -------------------------------------------------------------------------------------------


def test_anbncn_string_for_n3_is_exact_one_hot() -> None:
    string = anbncn_string(3)
    assert string.shape == (11, 5) and string.dtype == np.float32
    assert symbols_of(string) == "S a a a b b b c c c T"


def test_anbncn_sequence_inputs_and_next_symbol_targets() -> None:
    sequence = anbncn_sequence(3)
    assert symbols_of(sequence.inputs) == "S a a a b b b c c c"
    assert symbols_of(sequence.targets) == "a a a b b b c c c T"


def test_anbncn_legal_next_symbols_follow_the_language() -> None:
    legal = anbncn_sequence(3).legal_next
    legal_sets = ["".join(SYMBOLS[i] for i in np.flatnonzero(row)) for row in legal]
    assert legal_sets == ["a", "ab", "ab", "ab", "b", "b", "c", "c", "c", "T"]


def test_anbncn_scores_exactly_the_steps_from_the_first_b() -> None:
    sequence = anbncn_sequence(4)
    scored_inputs = symbols_of(sequence.inputs[sequence.scored])
    assert scored_inputs == "b b b b c c c c"
    # On every scored step the next symbol is forced: exactly one legal symbol, the target.
    assert np.array_equal(sequence.legal_next[sequence.scored], sequence.targets[sequence.scored].astype(bool))


def test_anbncn_training_set_covers_the_papers_range() -> None:
    training_set = anbncn_training_set()
    assert list(ANBNCN_TRAIN_RANGE) == list(range(1, 11))
    assert [sequence.n for sequence in training_set] == list(range(1, 11))
    assert [len(sequence.inputs) for sequence in training_set] == [3 * n + 1 for n in range(1, 11)]


def test_largest_generalized_n_of_a_perfect_predictor_is_n_max() -> None:
    assert anbncn_largest_generalized_n(counting_oracle, n_max=40) == 40


def test_largest_generalized_n_stops_before_the_first_failure() -> None:
    assert anbncn_largest_generalized_n(lambda inputs: counting_oracle(inputs, fails_from_n=7), n_max=40) == 6
    assert anbncn_largest_generalized_n(lambda inputs: counting_oracle(inputs, fails_from_n=1), n_max=40) == 0


def test_unforced_steps_are_not_scored_but_forced_ones_are() -> None:
    sequence = anbncn_sequence(5)
    outputs = counting_oracle(sequence.inputs)
    wrong_before_first_b = outputs.copy()
    wrong_before_first_b[1:4] = np.eye(5)[SYMBOLS.index("T")]
    assert anbncn_prediction_correct(wrong_before_first_b, sequence)
    wrong_final_symbol = outputs.copy()
    wrong_final_symbol[-1] = np.eye(5)[SYMBOLS.index("c")]
    assert not anbncn_prediction_correct(wrong_final_symbol, sequence)


@pytest.mark.parametrize("bad_n", [0, -3, 2.5, True])
def test_anbncn_rejects_bad_n(bad_n: object) -> None:
    with pytest.raises(ValueError, match="integer >= 1"):
        anbncn_sequence(bad_n)  # type: ignore[arg-type]


def test_predictor_output_of_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        anbncn_largest_generalized_n(lambda inputs: inputs[:-1], n_max=3)


# --- Mackey-Glass ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_mackey_glass() -> np.ndarray:
    return mackey_glass(5000)


def test_mackey_glass_stays_in_the_attractor_range(long_mackey_glass: np.ndarray) -> None:
    assert long_mackey_glass.shape == (5000,)
    assert 0.2 < long_mackey_glass.min() < 0.5
    assert 1.2 < long_mackey_glass.max() < 1.4


def test_mackey_glass_matches_the_known_attractor_statistics(long_mackey_glass: np.ndarray) -> None:
    assert long_mackey_glass.mean() == pytest.approx(0.92, abs=0.03)
    assert long_mackey_glass.std() == pytest.approx(0.23, abs=0.03)


def test_mackey_glass_is_neither_constant_nor_periodic(long_mackey_glass: np.ndarray) -> None:
    # A series with period p (p <= 1000) would repeat itself exactly at lag p.
    mean_gaps = [np.mean(np.abs(long_mackey_glass[lag:] - long_mackey_glass[:-lag])) for lag in range(10, 1001)]
    assert min(mean_gaps) > 0.02


def test_mackey_glass_does_not_depend_on_the_integration_step() -> None:
    default_step = mackey_glass(500, transient=100)
    half_step = mackey_glass(500, transient=100, step=0.05)
    quarter_step = mackey_glass(500, transient=100, step=0.025)
    assert np.max(np.abs(default_step - quarter_step)) < 1e-3
    assert np.max(np.abs(half_step - quarter_step)) < np.max(np.abs(default_step - quarter_step))


def test_mackey_glass_euler_discretization_stays_on_the_same_attractor(long_mackey_glass: np.ndarray) -> None:
    euler = mackey_glass(5000, method="euler")
    assert euler.mean() == pytest.approx(long_mackey_glass.mean(), abs=0.01)
    assert euler.std() == pytest.approx(long_mackey_glass.std(), abs=0.01)


def test_mackey_glass_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="length must be an integer >= 0"):
        mackey_glass(-1)
    with pytest.raises(ValueError, match="method must be one of"):
        mackey_glass(10, method="midpoint")
    with pytest.raises(ValueError, match="sampling interval 1 must be a whole multiple"):
        mackey_glass(10, step=0.3)
    with pytest.raises(ValueError, match="tau must be a whole multiple"):
        mackey_glass(10, tau=17.05)
    with pytest.raises(ValueError, match="at least 3 steps"):
        mackey_glass(10, tau=0.2)


def test_mackey_glass_task_splits() -> None:
    task = mackey_glass_task()
    assert (MACKEY_GLASS_TRAIN_LENGTH, MACKEY_GLASS_WASHOUT) == (3000, 1000)
    assert (MACKEY_GLASS_TEST_RUNS, MACKEY_GLASS_TEST_WARMUP, MACKEY_GLASS_HORIZON) == (50, 1000, 84)
    assert task.train_series.shape == (3000, 1) and task.train_series.dtype == np.float32
    assert task.washout == 1000
    assert task.test_runs.shape == (50, 1084, 1) and task.test_runs.dtype == np.float32
    assert task.test_warmup == 1000 and task.free_run_steps == 84
    inputs, targets = task.training_pairs()
    assert inputs.shape == targets.shape == (2999, 1)
    assert np.array_equal(inputs[1:], targets[:-1])
    # The test runs continue the training sequence on one trajectory.
    assert np.allclose(task.test_runs[0, 0, 0], mackey_glass(3001)[-1], atol=1e-6)


def test_mackey_glass_task_scores_only_the_84th_free_running_step() -> None:
    task = mackey_glass_task()
    truths = task.test_runs[:, task.test_warmup :]
    wrong_before_the_horizon = truths.copy()
    wrong_before_the_horizon[:, :-1] += 1.0
    assert task.score(wrong_before_the_horizon) == 0.0
    mean_guess = np.full_like(truths, truths[:, -1].mean())
    assert task.score(mean_guess) == pytest.approx(np.std(truths[:, -1]) / np.sqrt(task.target_variance), rel=1e-5)


# --- Superimposed sines ------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_waves", SINE_WAVE_COUNTS)
def test_sines_equal_the_analytic_sum(num_waves: int) -> None:
    times = np.arange(SINE_TEST_END)
    expected = sum(np.sin(frequency * times) for frequency in SINE_FREQUENCIES[:num_waves])
    assert np.allclose(superimposed_sines(num_waves, SINE_TEST_END), expected, atol=1e-12)
    assert SINE_FREQUENCIES == (0.2, 0.311, 0.42, 0.51, 0.74)


@pytest.mark.parametrize("num_waves", SINE_WAVE_COUNTS)
def test_sines_spectrum_has_one_peak_per_wave(num_waves: int) -> None:
    length = 8192
    spectrum = np.abs(np.fft.rfft(superimposed_sines(num_waves, length) * np.hanning(length)))
    inner = spectrum[1:-1]
    is_peak = (inner > spectrum[:-2]) & (inner > spectrum[2:]) & (inner > 0.1 * spectrum.max())
    peak_frequencies = 2 * np.pi * (np.flatnonzero(is_peak) + 1) / length
    assert len(peak_frequencies) == num_waves
    assert np.allclose(peak_frequencies, SINE_FREQUENCIES[:num_waves], atol=2 * np.pi / length)


@pytest.mark.parametrize("bad_count", [1, 6, 0, 2.0])
def test_sines_reject_unknown_wave_counts(bad_count: object) -> None:
    with pytest.raises(ValueError, match=r"num_waves must be one of \(2, 3, 4, 5\)"):
        superimposed_sines(bad_count, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_waves must be one of"):
        superimposed_sines_task(bad_count)  # type: ignore[arg-type]


def test_sines_reject_negative_length() -> None:
    with pytest.raises(ValueError, match="length must be an integer >= 0"):
        superimposed_sines(2, -5)


def test_sines_task_splits() -> None:
    task = superimposed_sines_task(3)
    assert (SINE_WASHOUT, SINE_TRAIN_END, SINE_TEST_END) == (100, 400, 700)
    assert task.train_series.shape == (400, 1) and task.washout == 100
    assert task.test_runs.shape == (1, 700, 1) and task.test_warmup == 400 and task.free_run_steps == 300
    assert np.array_equal(task.test_runs[0, :400], task.train_series)
    assert np.allclose(task.test_runs[0, :, 0], superimposed_sines(3, 700), atol=1e-6)


def test_sines_task_scores_the_whole_free_run() -> None:
    task = superimposed_sines_task(2)
    truths = task.test_runs[:, task.test_warmup :]
    assert task.score(truths) == 0.0
    assert task.score(np.full_like(truths, truths.mean())) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="shape"):
        task.score(truths[:, :-1])


# --- NRMSE -------------------------------------------------------------------------------------------------


def test_nrmse_is_zero_for_a_perfect_prediction() -> None:
    targets = np.sin(np.arange(100.0))
    assert nrmse(targets, targets) == 0.0


def test_nrmse_is_one_for_predicting_the_mean() -> None:
    targets = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 1))
    assert nrmse(np.full_like(targets, targets.mean()), targets) == pytest.approx(1.0)


def test_nrmse_uses_a_given_variance() -> None:
    targets = np.array([0.0, 1.0, 2.0])
    assert nrmse(targets + 0.5, targets, variance=0.25) == pytest.approx(1.0)


def test_nrmse_rejects_mismatched_shapes_and_constant_targets() -> None:
    with pytest.raises(ValueError, match="same shape"):
        nrmse(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="variance must be positive"):
        nrmse(np.zeros(3), np.ones(3))
