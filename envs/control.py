"""Position-only CartPole and Pendulum: gymnasium's dynamics with the velocities hidden.

The dynamics, constants, initial-state distributions and rewards are those of gymnasium's
``CartPole-v1`` and ``Pendulum-v1`` (same random draws under the same seed, so a test can step
both side by side). Only the observation differs: CartPole shows ``[x, theta]`` (no cart or pole
velocity), Pendulum shows ``[cos(theta), sin(theta)]`` (no angular velocity). A policy must
integrate positions over time to recover the velocities: the classic "velocity is never observed"
memory task (used by sb3-contrib's ``CartPoleNoVel`` and POPGym's ``PositionOnly`` tasks).

``noise_std > 0`` adds Gaussian noise of that standard deviation to every observed component,
so the velocities must be filtered from noisy positions (POPGym's ``Noisy`` variants).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedTask, CopyRandom, TaskEnv, TaskVectorEnv
from envs.rendering import Canvas


def _check_noise_std(noise_std: float) -> float:
    if not isinstance(noise_std, (int, float)) or not math.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0 (0 means no noise), got {noise_std!r}")
    return float(noise_std)


def _noisy_box(high: np.ndarray, noise_std: float) -> spaces.Box:
    """The observation space: gymnasium's bounds without noise, unbounded with it (noise has no bound)."""
    if noise_std > 0:
        high = np.full_like(high, np.inf)
    return spaces.Box(-high, high, dtype=np.float32)


class CartPolePositionOnlyTask(BatchedTask):
    """gymnasium's CartPole-v1 over a batch of copies, observing only cart position and pole angle."""

    render_fps = 50
    gravity = 9.8
    cart_mass = 1.0
    pole_mass = 0.1
    total_mass = pole_mass + cart_mass
    pole_half_length = 0.5
    pole_mass_length = pole_mass * pole_half_length
    force_magnitude = 10.0
    seconds_per_step = 0.02
    angle_limit = 12 * 2 * math.pi / 360
    position_limit = 2.4

    def __init__(self, num_copies: int, noise_std: float = 0.0):
        super().__init__(num_copies)
        self.noise_std = _check_noise_std(noise_std)
        self.single_observation_space = _noisy_box(
            np.array([self.position_limit * 2, self.angle_limit * 2], dtype=np.float32), self.noise_std
        )
        self.single_action_space = spaces.Discrete(2)
        self.state = np.zeros((num_copies, 4))  # x, x_dot, theta, theta_dot (float64, as gymnasium)

    def reset_copies(self, copies: np.ndarray, random: CopyRandom) -> None:
        for i in copies:
            self.state[i] = random.generators[i].uniform(low=-0.05, high=0.05, size=(4,))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(actions == 1, self.force_magnitude, -self.force_magnitude)
        x_acceleration, theta_acceleration = self.accelerations(theta, theta_dot, force)
        # Explicit Euler in gymnasium's order, so trajectories agree with CartPole-v1 to the bit.
        self.state = np.stack(
            (
                x + self.seconds_per_step * x_dot,
                x_dot + self.seconds_per_step * x_acceleration,
                theta + self.seconds_per_step * theta_dot,
                theta_dot + self.seconds_per_step * theta_acceleration,
            ),
            axis=1,
        )
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (
            (x < -self.position_limit)
            | (x > self.position_limit)
            | (theta < -self.angle_limit)
            | (theta > self.angle_limit)
        )
        # gymnasium pays 1 for every step, the terminating one included.
        reward = np.ones(self.num_copies)
        return reward, terminated, np.zeros(self.num_copies, dtype=bool), None

    @classmethod
    def accelerations(
        cls, theta: np.ndarray, theta_dot: np.ndarray, force: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cart and pole accelerations (Florian 2007's corrected equations, as gymnasium)."""
        cos_theta = np.cos(theta)
        sin_theta = np.sin(theta)
        temp = (force + cls.pole_mass_length * np.square(theta_dot) * sin_theta) / cls.total_mass
        theta_acceleration = (cls.gravity * sin_theta - cos_theta * temp) / (
            cls.pole_half_length * (4.0 / 3.0 - cls.pole_mass * np.square(cos_theta) / cls.total_mass)
        )
        x_acceleration = temp - cls.pole_mass_length * theta_acceleration * cos_theta / cls.total_mass
        return x_acceleration, theta_acceleration

    def observe(self, random: CopyRandom) -> np.ndarray:
        positions = self.state[:, [0, 2]]  # [B, 2]: x, theta
        if self.noise_std > 0:
            positions = positions + self.noise_std * random.normal((2,))
        return positions.astype(np.float32)

    def render_copy(self, index: int) -> np.ndarray:
        height, width = 200, 300
        scale = width / (self.position_limit * 2)
        canvas = Canvas(height, width)
        track_y = 0.7 * height
        canvas.line(0, track_y, width, track_y, 1, (0, 0, 0))
        x, _, theta, _ = self.state[index]
        cart_x = x * scale + width / 2
        canvas.rectangle(cart_x - 20, track_y - 10, cart_x + 20, track_y + 10, (0, 0, 0))
        pole_length = 2 * self.pole_half_length * scale * 0.5
        tip_x = cart_x + pole_length * math.sin(theta)
        tip_y = track_y - pole_length * math.cos(theta)
        canvas.line(cart_x, track_y, tip_x, tip_y, 6, (202, 152, 101))
        canvas.circle(cart_x, track_y, 3, (129, 132, 203))
        return canvas.pixels


def _angle_normalize(angle: np.ndarray) -> np.ndarray:
    return ((angle + np.pi) % (2 * np.pi)) - np.pi


class PendulumPositionOnlyTask(BatchedTask):
    """gymnasium's Pendulum-v1 over a batch of copies, observing only ``cos(theta), sin(theta)``."""

    render_fps = 30
    max_speed = 8.0
    max_torque = 2.0
    seconds_per_step = 0.05
    gravity = 10.0
    mass = 1.0
    length = 1.0

    def __init__(self, num_copies: int, noise_std: float = 0.0):
        super().__init__(num_copies)
        self.noise_std = _check_noise_std(noise_std)
        self.single_observation_space = _noisy_box(np.ones(2, dtype=np.float32), self.noise_std)
        self.single_action_space = spaces.Box(-self.max_torque, self.max_torque, shape=(1,), dtype=np.float32)
        self.state = np.zeros((num_copies, 2))  # theta, theta_dot
        self.last_torque = np.zeros(num_copies)

    def reset_copies(self, copies: np.ndarray, random: CopyRandom) -> None:
        high = np.array([np.pi, 1.0])
        for i in copies:
            self.state[i] = random.generators[i].uniform(low=-high, high=high)
        self.last_torque[copies] = 0.0

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
        theta, theta_dot = self.state.T
        torque = np.clip(np.asarray(actions, dtype=np.float32).reshape(self.num_copies, -1), -self.max_torque,
                         self.max_torque)[:, 0]
        self.last_torque = torque
        costs = _angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * (torque**2)
        g, m, length, dt = self.gravity, self.mass, self.length, self.seconds_per_step
        new_theta_dot = theta_dot + (3 * g / (2 * length) * np.sin(theta) + 3.0 / (m * length**2) * torque) * dt
        new_theta_dot = np.clip(new_theta_dot, -self.max_speed, self.max_speed)
        self.state = np.stack((theta + new_theta_dot * dt, new_theta_dot), axis=1)
        no_end = np.zeros(self.num_copies, dtype=bool)
        return -costs, no_end, no_end.copy(), None

    def observe(self, random: CopyRandom) -> np.ndarray:
        theta = self.state[:, 0]
        positions = np.stack((np.cos(theta), np.sin(theta)), axis=1)  # [B, 2]
        if self.noise_std > 0:
            positions = positions + self.noise_std * random.normal((2,))
        return positions.astype(np.float32)

    def render_copy(self, index: int) -> np.ndarray:
        size = 250
        canvas = Canvas(size, size)
        center = size / 2
        rod = 0.4 * size
        theta = self.state[index, 0]
        # Pendulum's theta = 0 is upright.
        tip_x, tip_y = center + rod * math.sin(theta), center - rod * math.cos(theta)
        canvas.line(center, center, tip_x, tip_y, 10, (204, 77, 77))
        canvas.circle(center, center, 5, (0, 0, 0))
        torque_bar = self.last_torque[index] / self.max_torque * (size / 2 - 10)
        canvas.rectangle(min(center, center + torque_bar), size - 14, max(center, center + torque_bar), size - 8,
                         (60, 60, 200))
        return canvas.pixels


class CartPolePositionOnlyEnv(TaskEnv):
    """Position-only CartPole (``rl_lstm/CartPolePositionOnly-v0``); ``noise_std`` adds observation noise."""

    task_class = CartPolePositionOnlyTask


class CartPolePositionOnlyVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`CartPolePositionOnlyEnv`."""

    task_class = CartPolePositionOnlyTask


class PendulumPositionOnlyEnv(TaskEnv):
    """Position-only Pendulum (``rl_lstm/PendulumPositionOnly-v0``); ``noise_std`` adds observation noise."""

    task_class = PendulumPositionOnlyTask


class PendulumPositionOnlyVectorEnv(TaskVectorEnv):
    """Native vector version of :class:`PendulumPositionOnlyEnv`."""

    task_class = PendulumPositionOnlyTask


def _kalman_gains(
    transition: np.ndarray,
    observation: np.ndarray,
    process_noise: np.ndarray,
    observation_noise: np.ndarray,
    initial_covariance: np.ndarray,
    steps: int,
) -> np.ndarray:
    """The gain of a linear Kalman filter at each step of an episode, ``[steps, state, observed]``.

    The covariance recursion does not depend on the data, so one sequence serves every copy.
    """
    covariance = initial_covariance
    gains = []
    for _ in range(steps):
        innovation = observation @ covariance @ observation.T + observation_noise
        gain = covariance @ observation.T @ np.linalg.inv(innovation)
        gains.append(gain)
        covariance = (np.eye(transition.shape[0]) - gain @ observation) @ covariance
        covariance = transition @ covariance @ transition.T + process_noise
    return np.stack(gains)


class CartPolePositionOnlyOracle:
    """Balances position-only CartPole: a Kalman filter on CartPole's equations recovers the velocities.

    Its memory is the state estimate and its own last action: each step it predicts the next
    state with CartPole's equations and corrects the prediction with the observed positions;
    a linear state feedback then picks the push.
    """

    # A linear state feedback that keeps the pole up and the cart near the centre for 500 steps.
    feedback_gains = np.array([0.2, 0.5, 10.0, 2.0])

    def __init__(self, num_envs: int, noise_std: float = 0.0, **_: Any):
        task = CartPolePositionOnlyTask
        self.expected_return = 500.0
        self.estimate = np.zeros((num_envs, 4))
        self.last_action = np.zeros(num_envs, dtype=np.int64)
        self.steps_seen = np.zeros(num_envs, dtype=np.int64)
        dt = task.seconds_per_step
        # Linearized around upright at rest: theta_acc = a * theta + ..., x_acc = -(m_p l / M) a * theta + ...
        a = task.gravity / (task.pole_half_length * (4.0 / 3.0 - task.pole_mass / task.total_mass))
        transition = np.array(
            [
                [1, dt, 0, 0],
                [0, 1, -task.pole_mass_length * a / task.total_mass * dt, 0],
                [0, 0, 1, dt],
                [0, 0, a * dt, 1],
            ]
        )
        noise_variance = max(noise_std, 1e-4) ** 2
        self.gains = _kalman_gains(
            transition,
            observation=np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0]]),
            process_noise=1e-6 * np.eye(4),
            observation_noise=noise_variance * np.eye(2),
            initial_covariance=0.05**2 / 3 * np.eye(4),  # gymnasium's initial state: uniform in [-0.05, 0.05]
            steps=500,
        )

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """Push right when the estimated state leans right."""
        task = CartPolePositionOnlyTask
        x, x_dot, theta, theta_dot = self.estimate.T
        force = np.where(self.last_action == 1, task.force_magnitude, -task.force_magnitude)
        x_acceleration, theta_acceleration = task.accelerations(theta, theta_dot, force)
        dt = task.seconds_per_step
        predicted = np.stack(
            (x + dt * x_dot, x_dot + dt * x_acceleration, theta + dt * theta_dot, theta_dot + dt * theta_acceleration),
            axis=1,
        )
        predicted[episode_starts] = 0.0  # the prior mean of a new episode
        self.steps_seen = np.where(episode_starts, 0, self.steps_seen + 1)
        gains = self.gains[np.minimum(self.steps_seen, len(self.gains) - 1)]  # [B, 4, 2]
        innovation = observations.astype(np.float64) - predicted[:, [0, 2]]
        self.estimate = predicted + np.einsum("bso,bo->bs", gains, innovation)
        self.last_action = (self.estimate @ self.feedback_gains > 0).astype(np.int64)
        return self.last_action


class PendulumPositionOnlyOracle:
    """Swings position-only Pendulum up and holds it: energy pumping far from the top, a PD law near it.

    Its memory is the angle and velocity estimate and its own last torque: a Kalman filter on the
    pendulum's equations recovers the angular velocity from successive angles.
    """

    def __init__(self, num_envs: int, noise_std: float = 0.0, **_: Any):
        task = PendulumPositionOnlyTask
        self.expected_return = -200.0
        self.estimate = np.zeros((num_envs, 2))  # theta, theta_dot
        self.last_torque = np.zeros(num_envs)
        self.steps_seen = np.zeros(num_envs, dtype=np.int64)
        dt = task.seconds_per_step
        # The angle is read as atan2(sin, cos): its noise is about the noise of each component.
        noise_variance = max(noise_std, 1e-4) ** 2
        self.gains = _kalman_gains(
            transition=np.array([[1.0, dt], [0.0, 1.0]]),
            observation=np.array([[1.0, 0.0]]),
            process_noise=np.diag([1e-6, 1e-3]),  # the linear model ignores gravity's pull on the velocity
            observation_noise=noise_variance * np.eye(1),
            initial_covariance=np.diag([np.pi**2 / 3, 1 / 3]),  # gymnasium's initial state: uniform, [pi, 1]
            steps=200,
        )[:, :, 0]

    def act(self, observations: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """Torques for the batch, ``[B, 1]``."""
        task = PendulumPositionOnlyTask
        dt = task.seconds_per_step
        gravity_term = 3 * task.gravity / (2 * task.length)
        torque_term = 3.0 / (task.mass * task.length**2)
        theta, theta_dot = self.estimate.T
        predicted_theta_dot = np.clip(
            theta_dot + (gravity_term * np.sin(theta) + torque_term * self.last_torque) * dt,
            -task.max_speed, task.max_speed,
        )
        predicted = np.stack((theta + predicted_theta_dot * dt, predicted_theta_dot), axis=1)
        predicted[episode_starts] = 0.0  # the prior mean of a new episode
        self.steps_seen = np.where(episode_starts, 0, self.steps_seen + 1)
        gains = self.gains[np.minimum(self.steps_seen, len(self.gains) - 1)]  # [B, 2]
        measured_theta = np.arctan2(observations[:, 1], observations[:, 0]).astype(np.float64)
        innovation = _angle_normalize(measured_theta - predicted[:, 0])
        self.estimate = predicted + gains * innovation[:, None]
        theta, theta_dot = self.estimate.T

        angle_from_top = _angle_normalize(theta)
        # Energy relative to resting upright, in the units of the dynamics (theta_acc = 15 sin(theta) + 3 u).
        energy = 0.5 * theta_dot**2 + gravity_term * (np.cos(theta) - 1.0)
        pumping = np.sign(theta_dot + 1e-9) * np.clip(-energy, 0.0, None)
        holding = -(12.0 * angle_from_top + 3.0 * theta_dot)
        near_top = np.abs(angle_from_top) < 0.6
        self.last_torque = np.clip(np.where(near_top, holding, pumping), -task.max_torque, task.max_torque)
        return self.last_torque[:, None].astype(np.float32)
