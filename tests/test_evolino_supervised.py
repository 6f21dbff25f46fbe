"""Supervised Evolino: the pseudo-inverse output, learning, free-running, resuming and config errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from agents.evolino_supervised import SupervisedEvolino, TrainingData, solve_output_weights
from envs.sequences import anbncn_training_set
from rl_lstm.errors import CheckpointError, ConfigError
from rl_lstm.esp import PopulationLSTM

# Two cells and larger weights and steps than the defaults (which are for 40 cells): fast, and they learn fast.
SMALL = dict(num_cells=2, subpopulation_size=8, init_scale=0.1, mutation_scale=0.01, burst_scale=0.1)


def double_sine_data(length: int = 200, washout: int = 50) -> TrainingData:
    """sin(0.2 t) + sin(0.311 t), scaled to about unit variance: one-step prediction after ``washout`` steps."""
    steps = np.arange(length)
    series = (np.sin(0.2 * steps) + np.sin(0.311 * steps)) / 1.4
    return TrainingData(series[:-1, None, None], series[1:, None, None], (steps[:-1] >= washout)[:, None], True)


def test_pseudo_inverse_output_weights_equal_each_networks_least_squares_solution() -> None:
    rng = np.random.default_rng(0)
    activations = torch.as_tensor(rng.normal(size=(3, 30, 5)))  # [P, N, H + 1]
    targets = torch.as_tensor(rng.normal(size=(30, 2)))  # [N, O]
    weights = solve_output_weights(activations, targets)
    for network in range(3):
        expected = np.linalg.lstsq(activations[network].numpy(), targets.numpy(), rcond=None)[0]
        np.testing.assert_allclose(weights[network].numpy(), expected, atol=1e-10)


def test_best_networks_output_weights_are_the_least_squares_fit_of_its_activations_after_washout() -> None:
    data = double_sine_data()
    evolino = SupervisedEvolino(seed=0, **SMALL)
    evolino.learn(data, generations=3)
    network = PopulationLSTM(evolino.layout, evolino.esp.best_chromosomes())
    state = network.initial_state(1)
    activations = []
    for t in range(len(data.inputs)):
        h, state = network.step(torch.as_tensor(data.inputs[t])[None], state)
        activations.append(h[0, 0].numpy())
    design = np.column_stack([np.array(activations), np.ones(len(activations))])[data.fitted[:, 0]]
    expected = np.linalg.lstsq(design, data.targets[data.fitted[:, 0], 0], rcond=None)[0]
    np.testing.assert_allclose(evolino.best_output_weights, expected, atol=1e-8)


def test_evolution_improves_a_double_sine_prediction_far_below_predicting_the_mean() -> None:
    data = double_sine_data()
    evolino = SupervisedEvolino(seed=0, **{**SMALL, "subpopulation_size": 20})
    history = evolino.learn(data, generations=100)
    first, last = history[0]["error"], history[-1]["best_error"]
    assert first > 0.05  # two random cells do not predict it ...
    assert last < 0.01 and last < first / 5  # ... evolved ones do (predicting the mean scores 1)
    predictions = evolino.predict(data.inputs[:, 0])[data.fitted[:, 0]]
    truth = data.targets[data.fitted[:, 0]][:, 0]
    nrmse = np.sqrt(np.mean((predictions - truth) ** 2) / np.var(truth))
    assert nrmse == pytest.approx(last, rel=1e-6)


def test_generate_starts_with_the_prediction_of_the_last_warmup_step_then_feeds_its_output_back() -> None:
    data = double_sine_data()
    evolino = SupervisedEvolino(seed=0, **SMALL)
    evolino.learn(data, generations=5)
    warmup = data.inputs[:120, 0]  # [W, 1]
    generated = evolino.generate(warmup[None], steps=4)[0]  # [4, 1]
    assert generated[0] == pytest.approx(evolino.predict(warmup)[-1, 0])
    fed_back = np.concatenate([warmup, generated[:-1]])
    np.testing.assert_allclose(evolino.predict(fed_back)[-4:], generated, atol=1e-12)


def test_free_running_fitness_scores_the_networks_generated_continuation() -> None:
    data = double_sine_data()
    evolino = SupervisedEvolino(seed=0, fitness_horizon=30, **SMALL)
    history = evolino.learn(data, generations=2)
    generated = evolino.generate(data.inputs[None, :51, 0], steps=30)[0, :, 0]  # the first run: warmup 0..50
    truth = data.targets[50:80, 0, 0]
    nrmse = np.sqrt(np.mean((generated - truth) ** 2) / np.var(truth))
    assert nrmse == pytest.approx(history[-1]["best_error"], rel=1e-6)


def test_symbol_sequences_are_padded_and_only_their_scored_steps_fitted() -> None:
    sequences = anbncn_training_set(range(1, 4))
    data = TrainingData.from_symbol_sequences(sequences)
    assert data.inputs.shape == (10, 3, 5)
    for b, sequence in enumerate(sequences):
        np.testing.assert_array_equal(data.fitted[: len(sequence.scored), b], sequence.scored)
        assert not data.fitted[len(sequence.scored) :, b].any()


def test_resuming_from_a_state_dict_continues_exactly_as_an_uninterrupted_run() -> None:
    data = double_sine_data()
    uninterrupted = SupervisedEvolino(seed=3, **SMALL)
    uninterrupted.learn(data, generations=10)
    expected = uninterrupted.learn(data, generations=10)

    first_half = SupervisedEvolino(seed=3, **SMALL)
    first_half.learn(data, generations=10)
    saved = pickle.loads(pickle.dumps(first_half.state_dict()))
    resumed = SupervisedEvolino(seed=99, **SMALL)
    resumed.load_state_dict(saved)
    history = resumed.learn(data, generations=10)

    assert [r["error"] for r in history] == [r["error"] for r in expected]
    np.testing.assert_array_equal(resumed.best_output_weights, uninterrupted.best_output_weights)
    for mine, theirs in zip(resumed.esp.subpopulations, uninterrupted.esp.subpopulations):
        np.testing.assert_array_equal(mine, theirs)


def test_a_state_dict_of_other_hyperparameters_is_refused() -> None:
    trained = SupervisedEvolino(seed=0, **SMALL)
    trained.learn(double_sine_data(), generations=1)
    other = SupervisedEvolino(seed=0, **{**SMALL, "num_cells": 3})
    with pytest.raises(CheckpointError, match="num_cells"):
        other.load_state_dict(trained.state_dict())


@pytest.mark.parametrize(
    ("hyperparams", "key"),
    [
        ({"num_cells": 0}, "num_cells"),
        ({"subpopulation_size": 3}, "subpopulation_size"),
        ({"elite_fraction": 0.9}, "elite_fraction"),
        ({"mutation_scale": -1.0}, "mutation_scale"),
        ({"ridge": -1e-3}, "ridge"),
        ({"fitness_horizon": -1}, "fitness_horizon"),
        ({"mutation_scale": "large"}, "mutation_scale"),
        ({"subpopulation": 10}, "subpopulation_size"),  # unknown key: the message suggests the close one
    ],
)
def test_bad_config_values_raise_a_config_error_naming_the_key(hyperparams: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        SupervisedEvolino(**hyperparams)


def test_a_free_running_horizon_longer_than_the_fitted_stretch_is_a_config_error() -> None:
    evolino = SupervisedEvolino(fitness_horizon=500, **SMALL)
    with pytest.raises(ConfigError, match="fitness_horizon must be at most 149"):
        evolino.learn(double_sine_data(), generations=1)


def test_a_free_running_fitness_on_symbol_strings_is_a_config_error() -> None:
    evolino = SupervisedEvolino(fitness_horizon=2, **SMALL)
    with pytest.raises(ConfigError, match="fitness_horizon > 0 needs one time series"):
        evolino.learn(TrainingData.from_symbol_sequences(anbncn_training_set(range(1, 3))), generations=1)


def test_a_device_torch_does_not_know_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="'cpu', 'cuda' or 'auto'"):
        SupervisedEvolino(seed=0, device="gpu", **SMALL)
