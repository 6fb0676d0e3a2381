"""The demonstration TDIL learns from, as tensors, and the hard negatives from the replay buffer.

``ExpertBuffer`` lays the expert's trajectories (the demonstration and, with ``mirror``, its
mirror image) end to end: states, actions, which indices start a transition, where each
trajectory ends and whether that end was a termination, and how close to the final state counts
as having ended there. ``multi_step_pairs`` draws state pairs two to five steps apart from the
agent's own episodes in SB3's replay buffer: the transition discriminator's hardest negatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs

from agents.demos import Trajectory
from agents.errors import DemoError
from simulator.sensors import STATE_FIELDS

# Whether an episode ended where the demonstration did: the distance to the goal, and ending
# closer than the expert did counts too. Not the goal's direction in the vehicle's frame: the goal
# is a disc, reached from any side, and with the direction most successful endings that arrive
# from the side would be scored as crashes.
END_STATE_FIELD = "goal_distance"


def has_simulator_state(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Dict)
        and "state" in space.spaces
        and space["state"].shape == (len(STATE_FIELDS),)
    )


def end_features(obs, space: spaces.Space) -> torch.Tensor:
    """(B, F) floats that say where an episode ended: the distance to the goal
    (``END_STATE_FIELD``) of the simulator's state, or else the whole observation."""
    if has_simulator_state(space):
        column = STATE_FIELDS.index(END_STATE_FIELD)
        return obs["state"][:, column : column + 1].float()
    features = preprocess_obs(obs, space)
    parts = features.values() if isinstance(features, dict) else [features]
    return torch.cat([part.float().flatten(1) for part in parts], dim=1)


@dataclass
class ExpertBuffer:
    """The expert's trajectories end to end (``from_trajectories``); index ``i`` is a state.

    ``transitions`` are the indices ``i`` whose next state ``i + 1`` is in the same trajectory;
    ``state_count``/``owner_start`` give, per state, its trajectory's length and first index;
    ``ends_by_termination`` marks the last transition of a successful trajectory; ``final`` the
    last state of each; ``end_radius`` how close to a final state counts as having ended there.
    """

    states: Any  # a tensor, or a dict of tensors for a Dict observation space
    actions: torch.Tensor
    transitions: torch.Tensor
    state_count: torch.Tensor
    owner_start: torch.Tensor
    ends_by_termination: torch.Tensor
    final: torch.Tensor
    end_features: torch.Tensor
    end_radius: torch.Tensor

    @classmethod
    def from_trajectories(
        cls,
        used: list[Trajectory],
        space: spaces.Space,
        scale_action: Callable[[np.ndarray], np.ndarray],
        device,
        end_window: int,
    ) -> ExpertBuffer:
        to_tensor = lambda a: torch.as_tensor(np.asarray(a), device=device)  # noqa: E731
        parts = [_demo_observations(demo, space) for demo in used]
        if isinstance(parts[0], dict):
            states = {key: to_tensor(np.concatenate([p[key] for p in parts])) for key in parts[0]}
        else:
            states = to_tensor(np.concatenate(parts))
        actions, transitions, state_count, owner_start, ends, final = [], [], [], [], [], []
        start = 0
        for demo in used:
            n = len(demo)
            scaled = scale_action(np.asarray(demo.actions, dtype=np.float32))
            actions += [scaled, np.zeros((1, scaled.shape[1]), np.float32)]  # none after the last
            transitions.append(start + np.arange(n))
            state_count.append(np.full(n + 1, n + 1))
            owner_start.append(np.full(n + 1, start))
            # the last transition of a successful episode ends it (a termination)
            ends.append(np.arange(n + 1) == (n - 1 if demo.success else -1))
            final.append(start + n)
            start += n + 1
        features = end_features(states, space)
        # how close to the final state counts as having ended there: as close as the expert was
        # ``end_window`` steps before its own end
        n = len(used[0])
        window = min(end_window, n)
        return cls(
            states=states,
            actions=to_tensor(np.concatenate(actions)).float(),
            transitions=to_tensor(np.concatenate(transitions)).long(),
            state_count=to_tensor(np.concatenate(state_count)).long(),
            owner_start=to_tensor(np.concatenate(owner_start)).long(),
            ends_by_termination=to_tensor(np.concatenate(ends)),
            final=to_tensor(np.array(final)).long(),
            end_features=features,
            end_radius=torch.linalg.vector_norm(features[n] - features[n - window]),
        )

    def states_at(self, index) -> Any:
        """The expert states at ``index`` (a slice, or a tensor of indices)."""
        states = self.states
        return (
            {k: v[index] for k, v in states.items()} if isinstance(states, dict) else states[index]
        )

    def sample(self, count: int) -> torch.Tensor:
        """Indices of ``count`` random expert transitions (state ``i`` to ``i + 1``)."""
        picks = torch.randint(0, len(self.transitions), (count,), device=self.transitions.device)
        return self.transitions[picks]


def _demo_observations(demo: Trajectory, space: spaces.Space):
    """``demo``'s observations laid out as the observation space (a dict or an array)."""
    if isinstance(space, spaces.Dict):
        missing = [key for key in space.spaces if key not in demo.observations]
        if missing:
            raise DemoError(f"the demonstration lacks observation key(s) {missing}")
        return {key: _as_space_layout(demo.observations[key], space[key]) for key in space.spaces}
    return _as_space_layout(next(iter(demo.observations.values())), space)


def _as_space_layout(array: np.ndarray, space: spaces.Box) -> np.ndarray:
    """Demo arrays are as the env emits them; SB3 may have transposed images to channels-first."""
    if array.shape[1:] == space.shape:
        return array
    if array.ndim == 4 and array.shape[1:] == (space.shape[1], space.shape[2], space.shape[0]):
        return np.transpose(array, (0, 3, 1, 2))
    raise DemoError(
        f"demonstration observations of shape {array.shape[1:]} do not fit {space.shape}"
    )


def multi_step_pairs(buffer, count: int, max_gap: int = 5):
    """``(s_t, s_{t+k})`` of the agent's own episodes in SB3's replay ``buffer``,
    ``2 <= k <= max_gap``: the hardest negatives for the transition discriminator (close, but not
    one step apart). Pairs that cross an episode's end are dropped, so fewer than ``count`` (or
    None) may come back."""
    size = buffer.buffer_size if buffer.full else buffer.pos
    rng = np.random.default_rng(int(torch.randint(0, 2**31, ()).item()))
    gaps = rng.integers(2, max_gap + 1, count)
    starts = rng.integers(0, max(1, size - max_gap), count)
    ends = starts + gaps - 1  # next_observations[end] is s_{start + gap}
    envs = rng.integers(0, buffer.n_envs, count)
    done_before = np.concatenate([np.zeros((1, buffer.n_envs)), np.cumsum(buffer.dones, 0)])
    keep = done_before[ends, envs] == done_before[starts, envs]  # no episode end in between
    if buffer.full:  # the oldest and newest steps meet at pos
        keep &= ~((starts < buffer.pos) & (ends >= buffer.pos))
    if not keep.any():
        return None
    starts, ends, envs = starts[keep], ends[keep], envs[keep]

    def take(storage, index):
        if isinstance(storage, dict):
            return {key: buffer.to_torch(value[index, envs]) for key, value in storage.items()}
        return buffer.to_torch(storage[index, envs])

    return take(buffer.observations, starts), take(buffer.next_observations, ends)
