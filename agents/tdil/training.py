"""TDIL's learner: SAC with the transition discriminator's rewards, started from behaviour cloning.

See the package docstring for the method. ``TDIL`` subclasses SB3's SAC, so the replay buffer,
VecEnv handling, callbacks and TensorBoard logging are SB3's; what changes is ``train``: each
gradient step trains the discriminators on the batch, appends demonstration transitions to it,
replaces the environment's reward by TDIL's and adds a BC term to the actor's loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from agents.base import SB3AgentMixin
from agents.demos import Trajectory, load_demos, mirror_trajectory
from agents.errors import AgentError, DemoError
from agents.sb3 import SACAgent
from agents.tdil.buffer import ExpertBuffer, end_features, has_simulator_state, multi_step_pairs
from agents.tdil.networks import (
    DISCRIMINATOR_FEATURES,
    PairDiscriminator,
    bce,
    discriminator_columns,
)

# How a termination is valued. "expert_end": absorbing with the largest per-step reward forever
# if the state it ends in is as close to the demonstration's final state as the expert was
# ``end_window`` steps before it, with zero reward forever otherwise (a crash); "surrogate": keeps
# paying the reward of the state it ends in (DAC's absorbing state).
TERMINAL_RULES = ("expert_end", "surrogate")
# SAC settings TDIL changes: the actor, pre-trained by BC, acts from the first batches instead of
# after 1000 uniform actions, and the entropy coefficient starts at 0.01 instead of 1 (it is still
# tuned from there): at 1 the soft value's entropy bonus would outweigh TDIL's rewards, which are
# probabilities, until the coefficient had decayed.
SAC_SETTINGS: dict[str, Any] = {"learning_starts": 256, "ent_coef": "auto_0.01"}


class TDIL(SAC):
    """SAC learning from one demonstration with TDIL's rewards (see the package docstring).

    The defaults here are the only ones: ``TDILAgent`` adds the project's SAC defaults.
    ``irl_weight`` is 0 (the IRL reward is off; the critic chased it as it moved) and ``mirror``
    is on (the demonstration's mirror image is a second expert trajectory).
    """

    def __init__(
        self,
        policy,
        env,
        demos: str | Path | list[Trajectory] | None = None,
        td_weight: float = 1.0,
        irl_weight: float = 0.0,
        bc_weight: float = 1.0,
        bc_pretrain_steps: int = 3000,
        discriminator_lr: float = 3e-4,
        discriminator_features: str = "egocentric",
        terminal: str = "expert_end",
        end_window: int = 3,
        multi_step_negatives: bool = True,
        gradient_penalty: float = 10.0,
        demo_fraction: float = 0.5,
        mirror: bool = True,
        **kwargs,
    ):
        if discriminator_features not in DISCRIMINATOR_FEATURES:
            raise AgentError(
                f"discriminator_features={discriminator_features!r}: "
                f"choose one of {', '.join(DISCRIMINATOR_FEATURES)}"
            )
        if terminal not in TERMINAL_RULES:
            raise AgentError(f"terminal={terminal!r}: choose one of {', '.join(TERMINAL_RULES)}")
        self.discriminator_features = discriminator_features
        self.terminal = terminal
        self.end_window = end_window
        self.multi_step_negatives = multi_step_negatives
        self.gradient_penalty = gradient_penalty
        self.demo_fraction = demo_fraction
        self.mirror = mirror
        self.td_weight = td_weight
        self.irl_weight = irl_weight
        self.bc_weight = bc_weight
        self.bc_pretrain_steps = bc_pretrain_steps
        self.discriminator_lr = discriminator_lr
        self._pending_demos = demos
        super().__init__(policy, env, **{**SAC_SETTINGS, **kwargs})

    def _setup_model(self) -> None:
        super()._setup_model()
        space = self.observation_space
        columns = discriminator_columns(space, self.discriminator_features)
        self.transition_discriminator = PairDiscriminator(space, columns).to(self.device)
        self.expert_discriminator = PairDiscriminator(space, columns).to(self.device)
        self.discriminator_optimizer = torch.optim.Adam(
            list(self.transition_discriminator.parameters())
            + list(self.expert_discriminator.parameters()),
            lr=self.discriminator_lr,
        )
        self._expert: ExpertBuffer | None = None
        if self._pending_demos is not None:  # a new agent (load() restores a trained actor)
            self.set_demonstrations(self._pending_demos)
            self._pretrain_actor(self.bc_pretrain_steps)
        self._pending_demos = None

    # ------------------------------------------------------------------ demonstration
    def set_demonstrations(self, demos: str | Path | list[Trajectory]) -> None:
        """Use the first trajectory of ``demos`` (TDIL learns from exactly one), and with
        ``mirror`` its mirror image too (``agents.demos.mirror_trajectory``)."""
        trajectories = load_demos(demos) if isinstance(demos, str | Path) else list(demos)
        if not trajectories:
            raise DemoError("TDIL needs one demonstration, got none")
        used = [trajectories[0]]
        if self.mirror:
            used.append(mirror_trajectory(trajectories[0], self._vehicle_kind()))
        self._expert = ExpertBuffer.from_trajectories(
            used, self.observation_space, self.policy.scale_action, self.device, self.end_window
        )

    def _vehicle_kind(self) -> str:
        """The training environment's vehicle (mirroring its actions depends on it)."""
        env = self.get_env()
        try:
            return env.get_attr("vehicle_spec")[0].kind
        except (AttributeError, IndexError):
            raise AgentError(
                "mirror=True needs a DriveEnv training environment (to know its vehicle)"
            ) from None

    def _bc_loss(self, batch_size: int) -> torch.Tensor:
        """Mean squared error of the deterministic actor to the expert's actions."""
        picks = self._expert.sample(batch_size)
        expert_actions = self.actor(self._expert.states_at(picks), deterministic=True)
        return F.mse_loss(expert_actions, self._expert.actions[picks])

    def _pretrain_actor(self, steps: int) -> None:
        """Start the actor from behaviour cloning, so exploration begins near the expert."""
        self.actor.set_training_mode(True)
        for _ in range(steps):
            loss = self._bc_loss(self.batch_size)
            self.actor.optimizer.zero_grad()
            loss.backward()
            self.actor.optimizer.step()

    # ------------------------------------------------------------------ rewards
    def surrogate_reward(self, next_obs) -> torch.Tensor:
        """max_j sigmoid T(s', e_j): is some expert state one step away from s'? (B,)"""
        t = self.transition_discriminator
        expert = t.encode(self._expert.states_at(slice(None)))  # (E, F): each expert state once
        logits = t.all_pair_logits(t.encode(next_obs), expert)  # (B, E)
        return torch.sigmoid(logits.max(dim=1).values)

    def irl_reward(self, obs, next_obs) -> torch.Tensor:
        """D(s, s') in [0, 1], the probability that the transition is the expert's. (B,)

        Bounded (unlike GAIL's -log(1 - D)) so that the largest per-step reward, which a
        termination at the expert's end pays forever, is known: ``td_weight + irl_weight``.
        """
        d = self.expert_discriminator
        logits = d.pair_logits(d.encode(obs), d.encode(next_obs))
        return torch.sigmoid(logits)

    def ends_like_expert(self, obs) -> torch.Tensor:
        """(B,) bool: would a termination in each state end where the demonstration did?

        With the simulator's state: no farther from the goal than the expert was ``end_window``
        steps before its end. Otherwise: as close to the demonstration's final observation as the
        expert was then (absolute, not nearest-neighbour: a state unlike every expert state is
        often nearest to the final one and must not count). A termination there is the expert's
        own ending (the goal); any other is a failure on the way (a crash).
        """
        expert = self._expert
        finals = expert.end_features[expert.final]  # (K, F)
        features = end_features(obs, self.observation_space)
        if has_simulator_state(self.observation_space):  # closer than the expert counts too
            return (features - finals.max()).squeeze(1) <= expert.end_radius
        return torch.cdist(features, finals).min(dim=1).values <= expert.end_radius

    def _train_discriminators(self, batch) -> float:
        t = self.transition_discriminator
        n = len(self._expert.transitions)
        picks = self._expert.sample(min(n, batch.actions.shape[0]))
        # expert states two or more steps apart along the same trajectory: not one step apart
        count, start = self._expert.state_count[picks], self._expert.owner_start[picks]
        gaps = 2 + (torch.rand(picks.shape, device=self.device) * (count - 2)).long()
        far = start + (picks - start + gaps) % count
        expert = self._expert.states_at(slice(None))  # every expert state, each embedded once
        observations, next_observations = batch.observations, batch.next_observations
        embedded = t.encode(expert)
        e, e_next, e_far = embedded[picks], embedded[picks + 1], embedded[far]
        s, s_next = t.encode(observations), t.encode(next_observations)
        shuffled = s_next[torch.randperm(s_next.shape[0], device=self.device)]
        real, random, reversed_ = (
            t.pair_logits(s, s_next),
            t.pair_logits(s, shuffled),
            t.pair_logits(s_next, s),
        )
        transition_loss = (
            bce(real, 1.0)
            + bce(t.pair_logits(e, e_next), 1.0)
            + bce(random, 0.0)
            + bce(reversed_, 0.0)
            + bce(t.pair_logits(e_next, e), 0.0)
            + bce(t.pair_logits(e, e_far), 0.0)
        )
        pairs = (
            multi_step_pairs(self.replay_buffer, len(batch.actions))
            if self.multi_step_negatives
            else None
        )
        if pairs is not None:
            first, later = pairs
            transition_loss = transition_loss + bce(
                t.pair_logits(t.encode(first), t.encode(later)), 0.0
            )
        with torch.no_grad():  # calibration: the share of each kind of pair judged correctly
            self._accuracy = {
                "real": (real > 0).float().mean().item(),
                "random": (random < 0).float().mean().item(),
                "reversed": (reversed_ < 0).float().mean().item(),
            }
        loss = transition_loss
        if self.irl_weight > 0:  # the IRL discriminator is trained only if its reward is used
            loss = loss + self._irl_discriminator_loss(batch, expert, picks)
        self.discriminator_optimizer.zero_grad()
        loss.backward()
        self.discriminator_optimizer.step()
        return loss.item()

    def _irl_discriminator_loss(self, batch, expert, picks: torch.Tensor) -> torch.Tensor:
        """Expert transitions against the agent's, with DAC's gradient penalty."""
        d = self.expert_discriminator
        agent, agent_next = d.features(batch.observations), d.features(batch.next_observations)
        expert_features = d.features(expert)
        expert_pairs = (expert_features[picks], expert_features[picks + 1])
        expert_logits = d.pair_logits(*map(d.embedding, expert_pairs))
        agent_logits = d.pair_logits(d.embedding(agent), d.embedding(agent_next))
        loss = bce(expert_logits, 1.0) + bce(agent_logits, 0.0)
        if self.gradient_penalty > 0:
            count = len(picks)
            loss = loss + self.gradient_penalty * d.gradient_penalty(
                expert_pairs, (agent[:count], agent_next[:count])
            )
        return loss

    # ------------------------------------------------------------------ SAC with TDIL rewards
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self._expert is None:
            raise AgentError("TDIL needs its demonstration: create(env, demos=...) first")
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        logs: dict[str, list[float]] = {
            "critic": [],
            "actor": [],
            "bc": [],
            "disc": [],
            "reward": [],
        }
        for gradient_step in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            logs["disc"].append(self._train_discriminators(batch))
            for kind, value in self._accuracy.items():
                logs.setdefault(f"disc_accuracy_{kind}", []).append(value)
            batch = self._with_demonstration(batch, int(round(self.demo_fraction * batch_size)))

            actions_pi, log_prob = self.actor.action_log_prob(batch.observations)
            log_prob = log_prob.reshape(-1, 1)
            ent_coef = self._entropy_coefficient(log_prob)
            critic_loss, reward = self._critic_step(batch, ent_coef)
            actor_loss, bc_loss = self._actor_step(
                batch, actions_pi, log_prob, ent_coef, batch_size
            )
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            logs["reward"].append(reward)
            logs["critic"].append(critic_loss)
            logs["actor"].append(actor_loss)
            logs["bc"].append(bc_loss)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(ent_coef))
        for name, values in logs.items():
            self.logger.record(f"train/{name}", float(np.mean(values)))

    def _entropy_coefficient(self, log_prob: torch.Tensor) -> torch.Tensor:
        """SAC's entropy coefficient for this step (tuned towards the target entropy if auto)."""
        if self.ent_coef_optimizer is None:
            return self.ent_coef_tensor
        ent_coef = torch.exp(self.log_ent_coef.detach())
        ent_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
        self.ent_coef_optimizer.zero_grad()
        ent_loss.backward()
        self.ent_coef_optimizer.step()
        return ent_coef

    def _critic_step(self, batch, ent_coef: torch.Tensor) -> tuple[float, float]:
        """One critic update towards TDIL's reward plus the soft value of what follows (the
        absorbing value after a termination); returns the loss and the batch's mean reward."""
        with torch.no_grad():
            surrogate = self.surrogate_reward(batch.next_observations)
            reward = self.td_weight * surrogate
            if self.irl_weight > 0:
                reward = reward + self.irl_weight * self.irl_reward(
                    batch.observations, batch.next_observations
                )
            reward = reward.reshape(-1, 1)
            absorbing = self._absorbing_value(batch.next_observations, surrogate)
            next_actions, next_log_prob = self.actor.action_log_prob(batch.next_observations)
            next_q = torch.cat(self.critic_target(batch.next_observations, next_actions), dim=1)
            next_q = next_q.min(dim=1, keepdim=True).values - ent_coef * next_log_prob.reshape(
                -1, 1
            )
            continuation = (1 - batch.dones) * next_q + batch.dones * absorbing
            target_q = reward + self.gamma * continuation
        current_q = self.critic(batch.observations, batch.actions)
        critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()
        return critic_loss.item(), reward.mean().item()

    def _actor_step(
        self, batch, actions_pi, log_prob, ent_coef, batch_size: int
    ) -> tuple[float, float]:
        """One actor update: SAC's loss with Q over the largest possible return, plus BC.

        Q is scaled by the largest return (rewards are probabilities, so it is known), not by the
        batch's mean |Q| as in TD3+BC, which is near zero while the critic starts and then lets
        an untrained critic swamp the behaviour-cloned actor.
        """
        q_pi = torch.cat(self.critic(batch.observations, actions_pi), dim=1)
        min_q = q_pi.min(dim=1, keepdim=True).values
        scale = self._best_step_reward() / (1.0 - self.gamma)
        bc_loss = self._bc_loss(batch_size)
        actor_loss = (ent_coef * log_prob - min_q).mean() / scale + self.bc_weight * bc_loss
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()
        return actor_loss.item(), bc_loss.item()

    def _with_demonstration(self, batch, count: int):
        """``batch`` with ``count`` of the demonstration's transitions appended (as in DQfD and
        SQIL): the critic sees the expert reach its end, the only place the terminal reward is
        paid, on every update instead of in the few episodes the agent happens to finish."""
        if count <= 0:
            return batch
        picks = self._expert.sample(count)
        last = self._expert.ends_by_termination[picks]

        def join(agent, expert):
            if isinstance(agent, dict):
                return {key: join(agent[key], expert[key]) for key in agent}
            return torch.cat([agent, expert.to(agent.dtype)])

        return batch._replace(
            observations=join(batch.observations, self._expert.states_at(picks)),
            actions=join(batch.actions, self._expert.actions[picks]),
            next_observations=join(batch.next_observations, self._expert.states_at(picks + 1)),
            dones=join(batch.dones, last.float().reshape(-1, 1)),
            rewards=join(batch.rewards, torch.zeros(count, 1, device=self.device)),
        )

    def _absorbing_value(self, next_obs, surrogate: torch.Tensor) -> torch.Tensor:
        """(B, 1) value of having terminated in ``next_obs`` (see ``TERMINAL_RULES``)."""
        if self.terminal == "surrogate":
            return self.td_weight * surrogate.reshape(-1, 1) / (1.0 - self.gamma)
        ends = self.ends_like_expert(next_obs).float().reshape(-1, 1)
        return ends * self._best_step_reward() / (1.0 - self.gamma)

    def _best_step_reward(self) -> float:
        """The largest reward of one step: both rewards are probabilities."""
        return self.td_weight + self.irl_weight

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_expert", "_pending_demos"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        extra = ["transition_discriminator", "expert_discriminator", "discriminator_optimizer"]
        return [*state_dicts, *extra], variables


class TDILAgent(SB3AgentMixin, TDIL):
    """TDIL with DriveEnv's SAC defaults (``driveenv train tdil --demos FILE``): those of
    ``SACAgent``, so that the two compare on equal terms, except ``SAC_SETTINGS``."""

    default_hyperparameters: ClassVar[dict[str, Any]] = {
        **SACAgent.default_hyperparameters,
        **SAC_SETTINGS,
    }
