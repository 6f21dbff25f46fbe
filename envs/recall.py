"""Card-recall memory tasks after POPGym's diagnostic set: RepeatPrevious, RepeatFirst and CountRecall.

Reference: S. Morad, R. Kortvelesy, M. Bettini, S. Liwicki, A. Prorok, "POPGym: Benchmarking Partially
Observable Reinforcement Learning", ICLR 2023; code at github.com/proroklab/popgym
(``popgym/envs/repeat_previous.py``, ``repeat_first.py``, ``count_recall.py``, ``popgym/core/deck.py``).

Every task deals a shuffled pile of ``N = 52 * decks`` cards (13 ranks x 4 suits per deck), one card
per step. The first card shows at reset; each step the agent answers about the cards shown so far and
the next card is dealt. The step that deals the last card terminates the episode (``terminated=True``),
so an episode lasts ``N - 1`` steps. Only one property of a card matters (its *value*): its suit
(spades, diamonds, clubs, hearts), its colour (black, red) or its rank (ace, 2, ..., king).

- ``RepeatPrevious``: answer the suit of the card shown ``k`` steps before the current one. The
  first ``k`` steps have no answer yet: they score 0 and are not counted.
- ``RepeatFirst``: answer the suit of the episode's first card, at every step.
- ``CountRecall``: each step shows a dealt card and a query card (from a second, independently
  shuffled pile); answer how many cards of the query's value have been dealt so far, the current
  dealt card included.

Settings per difficulty (POPGym's ``Easy``/``Medium``/``Hard`` classes):

==============  ==========  =====  =====  ======  ===========  ============
task            difficulty  decks  steps  scored  value, k     answers
==============  ==========  =====  =====  ======  ===========  ============
RepeatPrevious  easy        1      51     47      suit, k=4    Discrete(4)
RepeatPrevious  medium      2      103    71      suit, k=32   Discrete(4)
RepeatPrevious  hard        3      155    91      suit, k=64   Discrete(4)
RepeatFirst     easy        1      51     51      suit         Discrete(4)
RepeatFirst     medium      8      415    415     suit         Discrete(4)
RepeatFirst     hard        16     831    831     suit         Discrete(4)
CountRecall     easy        1      51     51      colour       Discrete(27)
CountRecall     medium      2      103    103     suit         Discrete(27)
CountRecall     hard        4      207    207     rank         Discrete(17)
==============  ==========  =====  =====  ======  ===========  ============

Rewards: ``+1/S`` for a correct answer and ``-1/S`` for a wrong one, ``S`` the number of scored
steps (POPGym's scaling), so a return lies in ``[-1, 1]`` and answering every step right returns 1.
Each reward is computed as the change of ``(right - wrong) / S``, which equals ``+-1/S`` to within one
rounding unit and makes an episode's rewards, summed in order in float64, add up to exactly
``(right - wrong) / S``: the perfect return is exactly ``1.0``. ``info["is_success"]`` at the end of an
episode says every answer was right.

Observations are ``Box(0, 1, float32)`` one-hot codings, so any encoder can read them:

- ``RepeatPrevious``, ``RepeatFirst``: ``[4]``, the suit of the card shown now.
- ``CountRecall``: ``[2 * V]``, the value of the card dealt now (``V`` entries) followed by the value
  of the query card (``V`` entries); ``V`` is 2 colours, 4 suits or 13 ranks.

Value indices follow POPGym's deck: suits spades 0, diamonds 1, clubs 2, hearts 3; colours black 0
(spades, clubs), red 1 (diamonds, hearts); ranks ace 0 up to king 12.

Deviations from POPGym:

- Observations are one-hot ``Box`` codings instead of ``Discrete``/``MultiDiscrete`` indices.
- ``RepeatPrevious``'s ``k`` means "``k`` steps before the current card", as POPGym's docstring
  says; POPGym's code indexes ``hand[-k]``, the card ``k - 1`` steps back. With the same k
  (4, 32, 64) our task needs one step more memory and scores ``N - 1 - k`` steps, not ``N - k``.
- ``CountRecall`` answers are ``Discrete(N / V + 1)`` (counts 0 to ``N / V``); POPGym's
  ``Discrete(N / V)`` cannot express the count once every card of a value has been dealt, which
  happens in the late steps of an episode. POPGym's unused ``error_clamp`` parameter is dropped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedTask, CopyRandom, TaskEnv, TaskVectorEnv
from envs.rendering import Canvas, Color

CARDS_PER_DECK = 52
_CARD_INDEX = np.arange(CARDS_PER_DECK)
# POPGym's deck order: card c has suit c % 4, rank c // 4, and colour c % 2 (spades and clubs black).
CARD_VALUES: dict[str, np.ndarray] = {
    "suit": _CARD_INDEX % 4,
    "colour": _CARD_INDEX % 2,
    "rank": _CARD_INDEX // 4,
}

NO_ANSWER = -1

# Black and red first so that colours look like themselves; then enough distinct colours for 13 ranks.
_PALETTE: tuple[Color, ...] = (
    (25, 25, 25), (205, 35, 35), (35, 145, 65), (235, 125, 25), (40, 90, 200), (150, 60, 180), (0, 165, 165),
    (200, 170, 0), (120, 80, 40), (240, 100, 170), (115, 115, 115), (130, 200, 60), (20, 40, 110),
)
_FRAME_HEIGHT = 96
_FRAME_WIDTH = 232
_CARD_WIDTH = 48
_CARD_TOP, _CARD_BOTTOM = 8, 72
_ANSWER_LEFT = 176


@dataclass(frozen=True)
class CardLevel:
    """The settings of one difficulty: how many decks, which card property counts, and RepeatPrevious's lag k."""

    num_decks: int
    card_value: str
    lag: int = 0

    @property
    def num_cards(self) -> int:
        """Cards per episode: the pile holds ``num_decks`` full decks."""
        return CARDS_PER_DECK * self.num_decks

    @property
    def num_values(self) -> int:
        """How many distinct values a card can have (2 colours, 4 suits or 13 ranks)."""
        return int(CARD_VALUES[self.card_value].max()) + 1


def _draw_card(canvas: Canvas, left: float, value: int, num_values: int) -> None:
    """A card at ``left``: a square in the value's colour over a bar whose length grows with the value."""
    canvas.rectangle(left, _CARD_TOP, left + _CARD_WIDTH, _CARD_BOTTOM, (60, 60, 60))
    canvas.rectangle(left + 2, _CARD_TOP + 2, left + _CARD_WIDTH - 2, _CARD_BOTTOM - 2, (250, 250, 250))
    canvas.rectangle(left + 6, _CARD_TOP + 6, left + _CARD_WIDTH - 6, _CARD_TOP + 42, _PALETTE[value])
    bar_length = (_CARD_WIDTH - 12) * (value + 1) / num_values
    canvas.rectangle(left + 6, _CARD_TOP + 48, left + 6 + bar_length, _CARD_TOP + 56, (60, 60, 60))


class CardRecallTask(BatchedTask):
    """A shuffled pile of cards dealt one per step, with one scored answer per step about the cards seen.

    A subclass names its ``levels`` and ``cards_per_step`` and computes, in :meth:`answers_for`, the
    right answer at every position of freshly dealt piles. The whole pile and its answers are drawn
    at reset, so :meth:`step` and :meth:`observe` are array lookups at each copy's position.
    """

    levels: ClassVar[dict[str, CardLevel]]
    cards_per_step: ClassVar[int] = 1
    answers_are_cards: ClassVar[bool] = True

    def __init__(self, num_copies: int, difficulty: str = "easy"):
        super().__init__(num_copies)
        self.level = self.level_of(difficulty)
        self.num_values = self.level.num_values
        self.num_cards = self.level.num_cards
        self.num_scored_steps = self.num_cards - 1 - self.level.lag
        self.single_observation_space = spaces.Box(
            0.0, 1.0, (self.cards_per_step * self.num_values,), dtype=np.float32
        )
        self.single_action_space = spaces.Discrete(self.num_answers())
        self.pile = np.tile(CARD_VALUES[self.level.card_value], self.level.num_decks)
        self.shown = np.zeros((num_copies, self.num_cards, self.cards_per_step), dtype=np.int16)
        self.answers = np.full((num_copies, self.num_cards), NO_ANSWER, dtype=np.int16)
        self.position = np.zeros(num_copies, dtype=np.int64)
        self.net_score = np.zeros(num_copies, dtype=np.int64)  # right minus wrong answers this episode
        self._rows = np.arange(num_copies)
        self._one_hot = np.eye(self.num_values, dtype=np.float32)

    @classmethod
    def level_of(cls, difficulty: str) -> CardLevel:
        """The settings of ``difficulty``; ``ValueError`` naming the allowed difficulties if it is not one."""
        if difficulty not in cls.levels:
            allowed = ", ".join(repr(name) for name in cls.levels)
            raise ValueError(f"difficulty must be one of {allowed}; got {difficulty!r}")
        return cls.levels[difficulty]

    def num_answers(self) -> int:
        """The size of the answer space; by default an answer names a card value."""
        return self.num_values

    @abstractmethod
    def answers_for(self, shown: np.ndarray) -> np.ndarray:
        """The right answer at each position of piles ``shown[n, num_cards, cards_per_step]``, ``NO_ANSWER`` if none."""

    def reset_copies(self, copies: np.ndarray, random: CopyRandom) -> None:
        """Shuffle a fresh pile per copy (each from its own generator) and work out its answers."""
        for i in copies:
            generator = random.generators[i]
            for pile_index in range(self.cards_per_step):
                self.shown[i, :, pile_index] = generator.permutation(self.pile)
        answers = self.answers_for(self.shown[copies])
        # Dealing the last card ends the episode, so nothing is ever asked while it shows.
        answers[:, -1] = NO_ANSWER
        self.answers[copies] = answers
        self.position[copies] = 0
        self.net_score[copies] = 0

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Score every copy's answer, deal its next card; success means every answer of the episode was right."""
        answers = self.answers[self._rows, self.position]
        points = np.where(answers == NO_ANSWER, 0, np.where(actions == answers, 1, -1))
        previous_score = self.net_score
        self.net_score = previous_score + points
        # The reward is the change of net_score / S, not a fixed +-1/S: consecutive multiples of 1/S are
        # within a factor 2 of each other (or one is 0), so by Sterbenz's lemma the change is exact and an
        # episode's rewards summed in order give exactly net_score / S: a perfect episode returns 1.0, not 1 +- ulp.
        reward = self.net_score / self.num_scored_steps - previous_score / self.num_scored_steps
        # The vector env steps a finished copy once more before resetting it: keep it on its last card.
        self.position = np.minimum(self.position + 1, self.num_cards - 1)
        terminated = self.position == self.num_cards - 1
        success = self.net_score == self.num_scored_steps
        return reward, terminated, np.zeros(self.num_copies, dtype=np.bool_), success

    def observe(self, random: CopyRandom) -> np.ndarray:
        """The one-hot values of the card(s) each copy shows now (the tasks have no observation noise)."""
        cards = self.shown[self._rows, self.position]  # [B, cards_per_step]
        return self._one_hot[cards].reshape(self.num_copies, -1)

    def render_copy(self, index: int) -> np.ndarray:
        """The card(s) shown now, the answer due now (framed, right) and the episode's progress (bottom bar)."""
        canvas = Canvas(_FRAME_HEIGHT, _FRAME_WIDTH)
        position = self.position[index]
        for pile_index, value in enumerate(self.shown[index, position]):
            _draw_card(canvas, 8 + 56 * pile_index, int(value), self.num_values)
        canvas.rectangle(_ANSWER_LEFT - 4, _CARD_TOP - 4, _ANSWER_LEFT + _CARD_WIDTH + 4, _CARD_BOTTOM + 4,
                         (250, 230, 150))
        answer = int(self.answers[index, position])
        if answer != NO_ANSWER and self.answers_are_cards:
            _draw_card(canvas, _ANSWER_LEFT, answer, self.num_values)
        elif answer != NO_ANSWER:
            bar_height = (_CARD_BOTTOM - _CARD_TOP) * answer / (self.num_answers() - 1)
            canvas.rectangle(_ANSWER_LEFT + 12, _CARD_BOTTOM - bar_height, _ANSWER_LEFT + _CARD_WIDTH - 12,
                             _CARD_BOTTOM, (40, 90, 200))
        canvas.rectangle(8, 82, _FRAME_WIDTH - 8, 90, (220, 220, 220))
        progress = position / (self.num_cards - 1)
        canvas.rectangle(8, 82, 8 + (_FRAME_WIDTH - 16) * progress, 90, (40, 90, 200))
        return canvas.pixels


class CardRecallOracle(ABC):
    """A perfect-memory policy for a :class:`CardRecallTask`, reading only observations, over a batch."""

    task_class: ClassVar[type[CardRecallTask]]
    expected_return: float = 1.0

    def __init__(self, num_envs: int, difficulty: str = "easy"):
        self.level = self.task_class.level_of(difficulty)
        self.num_envs = num_envs
        self._rows = np.arange(num_envs)

    def shown_values(self, observations: np.ndarray) -> np.ndarray:
        """Decode the one-hot observations into card values, ``[num_envs, cards_per_step]``."""
        codes = np.asarray(observations).reshape(self.num_envs, self.task_class.cards_per_step, self.level.num_values)
        return codes.argmax(axis=2)

    @abstractmethod
    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """Actions for the batch; ``episode_starts[i]`` says ``observations[i]`` begins an episode."""


class RepeatPreviousTask(CardRecallTask):
    """Answer the suit of the card shown k steps before the current one."""

    levels = {
        "easy": CardLevel(num_decks=1, card_value="suit", lag=4),
        "medium": CardLevel(num_decks=2, card_value="suit", lag=32),
        "hard": CardLevel(num_decks=3, card_value="suit", lag=64),
    }

    def answers_for(self, shown: np.ndarray) -> np.ndarray:
        """The suit ``k`` positions back; the first ``k`` positions have none."""
        lag = self.level.lag
        answers = np.full(shown.shape[:2], NO_ANSWER, dtype=np.int16)
        answers[:, lag:] = shown[:, :-lag, 0]
        return answers


class RepeatFirstTask(CardRecallTask):
    """Answer the suit of the episode's first card at every step."""

    levels = {
        "easy": CardLevel(num_decks=1, card_value="suit"),
        "medium": CardLevel(num_decks=8, card_value="suit"),
        "hard": CardLevel(num_decks=16, card_value="suit"),
    }

    def answers_for(self, shown: np.ndarray) -> np.ndarray:
        """The first card's suit at every position."""
        return np.repeat(shown[:, :1, 0], shown.shape[1], axis=1)


class CountRecallTask(CardRecallTask):
    """Answer how many cards of the query card's value have been dealt so far."""

    levels = {
        "easy": CardLevel(num_decks=1, card_value="colour"),
        "medium": CardLevel(num_decks=2, card_value="suit"),
        "hard": CardLevel(num_decks=4, card_value="rank"),
    }
    cards_per_step = 2
    answers_are_cards = False

    def num_answers(self) -> int:
        """Counts from 0 up to every card of one value (``num_cards / num_values``)."""
        return self.num_cards // self.num_values + 1

    def answers_for(self, shown: np.ndarray) -> np.ndarray:
        """The count, up to and including each position, of dealt cards with the query's value."""
        dealt, queried = shown[:, :, 0], shown[:, :, 1]
        dealt_counts = np.eye(self.num_values, dtype=np.int16)[dealt].cumsum(axis=1)  # [n, num_cards, num_values]
        return np.take_along_axis(dealt_counts, queried[:, :, None].astype(np.intp), axis=2)[:, :, 0]


class RepeatPreviousEnv(TaskEnv):
    """RepeatPrevious as a single gymnasium env (kwarg ``difficulty``)."""

    task_class = RepeatPreviousTask


class RepeatPreviousVectorEnv(TaskVectorEnv):
    """RepeatPrevious as a native vector env (kwargs ``num_envs``, ``difficulty``)."""

    task_class = RepeatPreviousTask


class RepeatFirstEnv(TaskEnv):
    """RepeatFirst as a single gymnasium env (kwarg ``difficulty``)."""

    task_class = RepeatFirstTask


class RepeatFirstVectorEnv(TaskVectorEnv):
    """RepeatFirst as a native vector env (kwargs ``num_envs``, ``difficulty``)."""

    task_class = RepeatFirstTask


class CountRecallEnv(TaskEnv):
    """CountRecall as a single gymnasium env (kwarg ``difficulty``)."""

    task_class = CountRecallTask


class CountRecallVectorEnv(TaskVectorEnv):
    """CountRecall as a native vector env (kwargs ``num_envs``, ``difficulty``)."""

    task_class = CountRecallTask


class RepeatPreviousOracle(CardRecallOracle):
    """Keeps the last k + 1 suits in a ring buffer per env and answers the one k steps back."""

    task_class = RepeatPreviousTask

    def __init__(self, num_envs: int, difficulty: str = "easy"):
        super().__init__(num_envs, difficulty)
        self.lag = self.level.lag
        self.recent_suits = np.zeros((num_envs, self.lag + 1), dtype=np.int64)
        self.cards_seen = np.zeros(num_envs, dtype=np.int64)

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """The suit seen k steps ago (before the k-th step, an unscored leftover from the buffer)."""
        suits = self.shown_values(observations)[:, 0]
        self.cards_seen[np.asarray(episode_starts, dtype=bool)] = 0
        ring_size = self.lag + 1
        self.recent_suits[self._rows, self.cards_seen % ring_size] = suits
        actions = self.recent_suits[self._rows, (self.cards_seen - self.lag) % ring_size]
        self.cards_seen += 1
        return actions


class RepeatFirstOracle(CardRecallOracle):
    """Keeps each env's first suit of the episode and answers it."""

    task_class = RepeatFirstTask

    def __init__(self, num_envs: int, difficulty: str = "easy"):
        super().__init__(num_envs, difficulty)
        self.first_suits = np.zeros(num_envs, dtype=np.int64)

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """The first suit of each env's current episode."""
        starts = np.asarray(episode_starts, dtype=bool)
        self.first_suits[starts] = self.shown_values(observations)[starts, 0]
        return self.first_suits.copy()


class CountRecallOracle(CardRecallOracle):
    """Counts the dealt values per env and answers the query value's count."""

    task_class = CountRecallTask

    def __init__(self, num_envs: int, difficulty: str = "easy"):
        super().__init__(num_envs, difficulty)
        self.dealt_counts = np.zeros((num_envs, self.level.num_values), dtype=np.int64)

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """The number of dealt cards with the query's value, the current one included."""
        values = self.shown_values(observations)
        self.dealt_counts[np.asarray(episode_starts, dtype=bool)] = 0
        self.dealt_counts[self._rows, values[:, 0]] += 1
        return self.dealt_counts[self._rows, values[:, 1]].copy()

