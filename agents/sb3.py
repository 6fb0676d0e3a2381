"""PPO and SAC: Stable-Baselines3's algorithms with defaults tuned for DriveEnv's goal task.

The defaults are what reaches the synthetic scene's state goal task in a few minutes on 2 CPU
cores (see benchmarks/agent_success.py); anything can be overridden through ``create(**overrides)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3 import PPO, SAC

from agents.base import SB3AgentMixin


class PPOAgent(SB3AgentMixin, PPO):
    """SB3 PPO (on-policy; scales with ``--num-envs``).

    The actor and the critic have separate feature extractors (``share_features_extractor``
    False; SB3 shares one by default). With one shared ``SmallCNN`` the critic's value loss
    drives the image features, which then drown the state vector in the actor's input: on the
    bird scene (rgb+state, 8 field-rendered envs, the bundle before b915ed6) the shared CNN's
    mean feature grew from 0.17 to 2.1 in 10k steps and gave the actor's first layer twice the
    input spread of the state (0.32 vs 0.14); training stalled (rollout return -5.6 after 11k
    steps, eval 0/10) where separate extractors learned (-2.3, eval 1/10; 68% after 30k steps
    in benchmarks/bird_rgb.py). For state-only observations the extractors have no parameters,
    so nothing changes there (same actions after training, checked).
    """

    default_hyperparameters: ClassVar[dict[str, Any]] = dict(
        learning_rate=3e-4,
        n_steps=512,
        batch_size=128,
        n_epochs=10,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.0,
        policy_kwargs=dict(net_arch=[64, 64], share_features_extractor=False),
    )


class SACAgent(SB3AgentMixin, SAC):
    """SB3 SAC (off-policy, automatic entropy tuning)."""

    default_hyperparameters: ClassVar[dict[str, Any]] = dict(
        learning_rate=1e-3,
        learning_starts=1000,
        batch_size=256,
        gamma=0.99,
        tau=0.01,
        policy_kwargs=dict(net_arch=[128, 128]),
    )
