"""Agents with one interface (SB3's learn/predict/save/load): PPO, SAC, MEow, BC, TDIL, diffusion policy, QSM."""
