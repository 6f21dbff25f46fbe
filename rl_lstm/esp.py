"""Enforced SubPopulations (ESP) and peephole-LSTM networks evaluated as a whole population, for Evolino.

ESP (F. Gomez and R. Miikkulainen 1997; F. Gomez, "Robust Non-Linear Control through Neuroevolution", PhD
thesis 2003) evolves a network's units, not whole networks: one subpopulation of chromosomes per unit. A network
is assembled by drawing one chromosome from every subpopulation; a chromosome's fitness is the average fitness
of the networks it took part in. Evolino (Wierstra, Gomez & Schmidhuber 2005; Schmidhuber, Wierstra, Gagliolo
& Gomez 2007) applies ESP to the memory cells of an LSTM network.

What this module does per generation, in the order :class:`EnforcedSubpopulations` runs it:

1. ``sample_networks(trials)``: every subpopulation is permuted ``trials`` times, network k of a permutation takes
   member ``perm[k]`` of each subpopulation, so every chromosome joins exactly ``trials`` networks (ESP draws at
   random until each has joined about that many; exact counts make the credit equally noisy for all).
2. ``tell(members, fitness)``: credit the networks' fitness to their chromosomes (the mean), remember the best
   network so far (a tie replaces it: see ``tell``), then either recombine or, after ``burst_after`` generations
   without a better network, burst.
3. Recombination, within each subpopulation sorted by fitness: the top ``elite_fraction`` are the parents; the
   bottom half is replaced by offspring, each a one-point crossover of two distinct parents, every weight then
   perturbed by Cauchy noise of scale ``mutation_scale`` (heavy tails: mostly small steps, now and then a jump).
4. Burst mutation (ESP's escape from stagnation): every subpopulation is rebuilt around the best network's
   chromosome for it, as that chromosome plus Cauchy noise of scale ``burst_scale`` (member 0 keeps it exactly).

The network a chromosome set encodes is :class:`PopulationLSTM`'s: memory cells with forget gates and peepholes
(the equations of ``rl_lstm.cores.PeepholeLSTMCell``), and optionally linear output units with their own
subpopulations (our reinforcement-learning extension; supervised Evolino computes the outputs by pseudo-inverse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rl_lstm.config import require
from rl_lstm.cores import PeepholeLSTMCell
from rl_lstm.errors import CheckpointError, NumericalError

NUM_GATES = 4  # input gate, forget gate, cell input, output gate (nn.LSTM's order)
NUM_PEEPHOLES = 3  # input, forget and output gate see the cell state


def cauchy(rng: np.random.Generator, scale: float, shape: tuple[int, ...]) -> np.ndarray:
    """Cauchy(0, ``scale``) draws: ``scale * tan(pi * (u - 1/2))``, ``u`` uniform."""
    return scale * rng.standard_cauchy(shape)


def validate_esp_settings(config: Any) -> None:
    """Range checks of the ESP keys a trainer's config holds (ConfigError naming the key)."""
    require(config.subpopulation_size >= 4,
            f"subpopulation_size must be at least 4 (parents and offspring), got {config.subpopulation_size}")
    require(config.init_scale > 0, f"init_scale must be positive, got {config.init_scale}")
    require(0 < config.elite_fraction <= 0.5, f"elite_fraction must lie in (0, 0.5], got {config.elite_fraction}")
    require(config.mutation_scale >= 0, f"mutation_scale must be >= 0, got {config.mutation_scale}")
    require(config.burst_after >= 1, f"burst_after must be at least 1, got {config.burst_after}")
    require(config.burst_scale > 0, f"burst_scale must be positive, got {config.burst_scale}")


class EnforcedSubpopulations:
    """The evolutionary state of ESP: one subpopulation ``[subpopulation_size, chromosome_size]`` per unit.

    Fitness is maximized. ``rng`` drives every random choice, so a run repeats exactly under the same seed.
    """

    def __init__(
        self,
        chromosome_sizes: Sequence[int],
        subpopulation_size: int,
        rng: np.random.Generator,
        init_scale: float = 0.5,
        elite_fraction: float = 0.25,
        crossover: bool = True,
        mutation_scale: float = 0.05,
        burst_after: int = 20,
        burst_scale: float = 0.3,
    ) -> None:
        if subpopulation_size < 4:
            raise ValueError(f"subpopulation_size must be at least 4 (parents and offspring), got {subpopulation_size}")
        self.chromosome_sizes = [int(size) for size in chromosome_sizes]
        self.subpopulation_size = subpopulation_size
        self.rng = rng
        self.elite_fraction = elite_fraction
        self.crossover = crossover
        self.mutation_scale = mutation_scale
        self.burst_after = burst_after
        self.burst_scale = burst_scale
        self.subpopulations = [
            rng.uniform(-init_scale, init_scale, (subpopulation_size, size)) for size in self.chromosome_sizes
        ]
        self.fitness = [np.full(subpopulation_size, np.nan) for _ in self.chromosome_sizes]
        self.best_fitness = -np.inf
        self.best_network: list[np.ndarray] | None = None
        self.generation = 0
        self.stagnant_generations = 0
        self.burst_mutations = 0

    @classmethod
    def from_config(cls, chromosome_sizes: Sequence[int], config: Any, rng: np.random.Generator
                    ) -> EnforcedSubpopulations:
        """ESP with the settings a trainer's config holds under this class's own argument names."""
        return cls(
            chromosome_sizes,
            config.subpopulation_size,
            rng,
            init_scale=config.init_scale,
            elite_fraction=config.elite_fraction,
            crossover=config.crossover,
            mutation_scale=config.mutation_scale,
            burst_after=config.burst_after,
            burst_scale=config.burst_scale,
        )

    @property
    def num_subpopulations(self) -> int:
        """How many units (subpopulations) a network has."""
        return len(self.chromosome_sizes)

    # ---- 1. networks -----------------------------------------------------------------------------------------
    def sample_networks(self, trials: int) -> np.ndarray:
        """Member indices ``[trials * subpopulation_size, num_subpopulations]``: each chromosome in ``trials`` nets."""
        n, s = self.subpopulation_size, self.num_subpopulations
        permutations = self.rng.permuted(np.tile(np.arange(n), (trials, s, 1)), axis=-1)  # [trials, s, n]
        return permutations.transpose(0, 2, 1).reshape(trials * n, s)

    def chromosomes(self, members: np.ndarray) -> list[np.ndarray]:
        """The chromosomes of the networks ``members [P, S]``: per subpopulation, ``[P, chromosome_size]``."""
        return [self.subpopulations[s][members[:, s]] for s in range(self.num_subpopulations)]

    def best_chromosomes(self) -> list[np.ndarray]:
        """The best network so far, one chromosome per subpopulation (each ``[1, size]``)."""
        if self.best_network is None:
            raise RuntimeError("no network has been evaluated yet")
        return [chromosome[None] for chromosome in self.best_network]

    def forget_best_fitness(self) -> None:
        """The task changed (a curriculum stage): the next generation's best replaces the best network, whose fitness
        was measured on the old task, and stagnation counts from there."""
        self.best_fitness = -np.inf
        self.stagnant_generations = 0

    def rescore_best(self, fitness: float) -> None:
        """The best network played this generation's episodes again and scored ``fitness``: the mark a network of
        this generation must reach to replace it (instead of the score it once drew on other episodes)."""
        if self.best_network is None:
            raise RuntimeError("no network has been evaluated yet")
        self.best_fitness = fitness

    # ---- 2. credit, then the next generation ------------------------------------------------------------------
    def tell(self, members: np.ndarray, fitness: np.ndarray) -> dict[str, float]:
        """Credit ``fitness [P]`` of the networks ``members [P, S]``, then breed the next generation.

        Returns what happened: ``burst`` (1.0 when this generation ended in a burst mutation, else 0.0).
        """
        fitness = np.asarray(fitness, dtype=np.float64)
        if not np.all(np.isfinite(fitness)):
            raise NumericalError(
                f"{int(np.sum(~np.isfinite(fitness)))} of {len(fitness)} networks scored NaN or inf; the env returned "
                "non-finite rewards. The subpopulations were left unchanged; fix the env's rewards and resume."
            )
        for s in range(self.num_subpopulations):
            totals = np.bincount(members[:, s], weights=fitness, minlength=self.subpopulation_size)
            counts = np.bincount(members[:, s], minlength=self.subpopulation_size)
            # A chromosome that joined no network (possible with hand-made member lists) ranks last.
            self.fitness[s] = np.where(counts > 0, totals / np.maximum(counts, 1), -np.inf)
        best = int(np.argmax(fitness))
        # A network that ties the best replaces it and is not stagnation: once networks reach the task's ceiling
        # (500 on CartPole, 4 on the T-maze) on their episodes, the newer one has survived more selection on
        # fresh episodes, and a burst would scatter a population that is still becoming robust.
        if fitness[best] >= self.best_fitness:
            self.best_fitness = float(fitness[best])
            self.best_network = [chromosomes[0].copy() for chromosomes in self.chromosomes(members[best : best + 1])]
            self.stagnant_generations = 0
        else:
            self.stagnant_generations += 1
        self.generation += 1
        if self.stagnant_generations >= self.burst_after:
            self._burst_mutate()
            return {"burst": 1.0}
        for s in range(self.num_subpopulations):
            self._recombine(s)
        return {"burst": 0.0}

    def _recombine(self, s: int) -> None:
        """Replace the bottom half of subpopulation ``s`` by mutated offspring of its top ``elite_fraction``."""
        order = np.argsort(-self.fitness[s], kind="stable")
        population = self.subpopulations[s][order]
        n, size = population.shape
        num_parents = max(2, int(round(self.elite_fraction * n)))
        num_offspring = n // 2
        first = self.rng.integers(num_parents, size=num_offspring)
        # The second parent is any other parent: shift by 1 .. num_parents - 1 places.
        second = (first + self.rng.integers(1, num_parents, size=num_offspring)) % num_parents
        offspring = population[first].copy()
        if self.crossover and size > 1:
            cut = self.rng.integers(1, size, size=num_offspring)
            from_second = np.arange(size)[None, :] >= cut[:, None]
            offspring[from_second] = population[second][from_second]
        offspring += cauchy(self.rng, self.mutation_scale, offspring.shape)
        population[n - num_offspring :] = offspring
        self.subpopulations[s] = population
        self.fitness[s] = self.fitness[s][order]

    def _burst_mutate(self) -> None:
        """Rebuild every subpopulation around the best network's chromosome for it (ESP's burst mutation)."""
        assert self.best_network is not None
        for s, best in enumerate(self.best_network):
            noise = cauchy(self.rng, self.burst_scale, (self.subpopulation_size, best.size))
            noise[0] = 0.0  # the best chromosome itself survives
            self.subpopulations[s] = best[None, :] + noise
            self.fitness[s] = np.full(self.subpopulation_size, np.nan)
        self.stagnant_generations = 0
        self.burst_mutations += 1

    def diversity(self) -> list[float]:
        """Per subpopulation, the mean over weights of the standard deviation across its chromosomes."""
        return [float(population.std(axis=0).mean()) for population in self.subpopulations]

    # ---- checkpoints --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: every subpopulation, fitness, the best network, counters, the RNG."""
        return {
            "chromosome_sizes": self.chromosome_sizes,
            "subpopulations": [p.copy() for p in self.subpopulations],
            "fitness": [f.copy() for f in self.fitness],
            "best_fitness": self.best_fitness,
            "best_network": None if self.best_network is None else [c.copy() for c in self.best_network],
            "generation": self.generation,
            "stagnant_generations": self.stagnant_generations,
            "burst_mutations": self.burst_mutations,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state of another network shape is a CheckpointError."""
        if list(state["chromosome_sizes"]) != self.chromosome_sizes or len(state["subpopulations"][0]) != len(
            self.subpopulations[0]
        ):
            raise CheckpointError(
                f"the checkpoint's ESP state has chromosome sizes {state['chromosome_sizes']} and subpopulations of "
                f"{len(state['subpopulations'][0])}, but this config builds {self.chromosome_sizes} and "
                f"{self.subpopulation_size}; load it with the config it was trained with"
            )
        self.subpopulations = [np.array(p) for p in state["subpopulations"]]
        self.fitness = [np.array(f) for f in state["fitness"]]
        self.best_fitness = state["best_fitness"]
        self.best_network = None if state["best_network"] is None else [np.array(c) for c in state["best_network"]]
        self.generation = state["generation"]
        self.stagnant_generations = state["stagnant_generations"]
        self.burst_mutations = state["burst_mutations"]
        self.rng.bit_generator.state = state["rng"]


@dataclass(frozen=True)
class LSTMLayout:
    """Where each weight of a peephole-LSTM network lives in its chromosomes.

    A memory cell's chromosome holds, for its 4 units (input gate, forget gate, cell input, output gate) in
    nn.LSTM's order: the input weights ``[4, input_size]``, the recurrent weights from every cell's output
    ``[4, num_cells]``, the biases ``[4]``, then the peepholes ``[3]`` (input, forget, output gate). An output
    unit's chromosome holds its weights from the cell outputs ``[num_cells]`` and its bias.
    """

    input_size: int
    num_cells: int
    num_outputs: int = 0

    @property
    def cell_size(self) -> int:
        """Weights in one memory cell's chromosome."""
        return NUM_GATES * (self.input_size + self.num_cells + 1) + NUM_PEEPHOLES

    @property
    def output_size(self) -> int:
        """Weights in one output unit's chromosome."""
        return self.num_cells + 1

    @property
    def forget_bias_index(self) -> int:
        """Where a memory cell's chromosome holds its forget-gate bias."""
        return NUM_GATES * (self.input_size + self.num_cells) + 1

    @property
    def input_bias_index(self) -> int:
        """Where a memory cell's chromosome holds its input-gate bias."""
        return NUM_GATES * (self.input_size + self.num_cells)

    def chromosome_sizes(self) -> list[int]:
        """One entry per subpopulation: the memory cells, then the output units."""
        return [self.cell_size] * self.num_cells + [self.output_size] * self.num_outputs


class PopulationLSTM:
    """``P`` peephole-LSTM networks, each with its own weights, stepped together by batched matrix products.

    ``step`` maps ``x [P, B, input_size]`` to cell outputs ``h [P, B, num_cells]``: network ``p`` runs ``B``
    sequences of its own. ``outputs(h)`` applies the evolved output units, when the layout has them.
    """

    def __init__(self, layout: LSTMLayout, chromosomes: Sequence[np.ndarray], dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu"):
        """``chromosomes`` as :meth:`EnforcedSubpopulations.chromosomes` returns them: one ``[P, size]`` per unit;
        the networks' weights (and their state) live on ``device``."""
        self.layout = layout
        self.dtype = dtype
        self.device = torch.device(device)
        num_cells, num_inputs = layout.num_cells, layout.input_size
        if len(chromosomes) != num_cells + layout.num_outputs:
            raise ValueError(f"expected {num_cells + layout.num_outputs} chromosome arrays, got {len(chromosomes)}")
        # [P, H, cell_size]
        cells = torch.as_tensor(np.stack(chromosomes[:num_cells], axis=1), dtype=dtype, device=self.device)
        self.num_networks = cells.shape[0]
        split = [NUM_GATES * num_inputs, NUM_GATES * num_cells, NUM_GATES, NUM_PEEPHOLES]
        weight_ih, weight_hh, bias, peephole = cells.split(split, dim=-1)

        def gate_major(weights: Tensor) -> Tensor:
            # [P, H(cell), 4 * K] -> [P, 4 * H, K]: row g * H + j is gate g of cell j, nn.LSTM's layout.
            p, h, _ = weights.shape
            return weights.reshape(p, h, NUM_GATES, -1).transpose(1, 2).reshape(p, NUM_GATES * h, -1)

        self.weight_ih_t = gate_major(weight_ih).transpose(1, 2).contiguous()  # [P, F, 4H]
        self.weight_hh_t = gate_major(weight_hh).transpose(1, 2).contiguous()  # [P, H, 4H]
        self.bias = gate_major(bias).squeeze(-1)[:, None, :].contiguous()  # [P, 1, 4H]
        self.peephole = peephole.transpose(1, 2).contiguous()  # [P, 3, H]
        self.weight_out_t: Tensor | None = None
        if layout.num_outputs:
            # [P, A, H + 1]
            outputs = torch.as_tensor(np.stack(chromosomes[num_cells:], axis=1), dtype=dtype, device=self.device)
            self.weight_out_t = outputs[..., :num_cells].transpose(1, 2).contiguous()  # [P, H, A]
            self.bias_out = outputs[..., num_cells][:, None, :].contiguous()  # [P, 1, A]

    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)``, each ``[P, batch_size, num_cells]``."""
        zeros = torch.zeros(self.num_networks, batch_size, self.layout.num_cells, dtype=self.dtype, device=self.device)
        return zeros, zeros.clone()

    def step(
        self, x: Tensor, state: tuple[Tensor, Tensor], episode_starts: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One timestep of every network: ``x [P, B, F]`` -> ``(h [P, B, H], (h, c))``; state reset at starts."""
        h, c = state
        if episode_starts is not None:
            keep = (~episode_starts.to(torch.bool)).to(self.dtype).unsqueeze(-1)
            h, c = h * keep, c * keep
        gates = torch.baddbmm(self.bias, x.to(self.dtype), self.weight_ih_t).baddbmm_(h, self.weight_hh_t)
        gate_input, gate_forget, cell_input, gate_output = gates.chunk(NUM_GATES, dim=-1)
        peep_input, peep_forget, peep_output = self.peephole[:, 0:1], self.peephole[:, 1:2], self.peephole[:, 2:3]
        input_gate = torch.sigmoid(gate_input + peep_input * c)
        forget_gate = torch.sigmoid(gate_forget + peep_forget * c)
        c = forget_gate * c + input_gate * torch.tanh(cell_input)
        h = torch.sigmoid(gate_output + peep_output * c) * torch.tanh(c)
        return h, (h, c)

    def outputs(self, h: Tensor) -> Tensor:
        """The evolved linear output units applied to ``h [P, B, H]``: ``[P, B, num_outputs]``."""
        if self.weight_out_t is None:
            raise ValueError("this layout has no evolved output units")
        return torch.baddbmm(self.bias_out, h, self.weight_out_t)

    def write_into(self, index: int, cell: PeepholeLSTMCell, output: nn.Linear | None = None) -> None:
        """Copy network ``index`` into a ``PeepholeLSTMCell`` (and its output units into ``output``)."""
        with torch.no_grad():
            cell.weight_ih.copy_(self.weight_ih_t[index].T)
            cell.weight_hh.copy_(self.weight_hh_t[index].T)
            cell.bias.copy_(self.bias[index, 0])
            cell.peephole.copy_(self.peephole[index])
            if output is not None:
                if self.weight_out_t is None:
                    raise ValueError("this layout has no evolved output units to write")
                output.weight.copy_(self.weight_out_t[index].T)
                output.bias.copy_(self.bias_out[index, 0])
