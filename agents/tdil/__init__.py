"""TDIL: imitation from a single demonstration with a transition discriminator.

After "Expert Proximity as Surrogate Rewards for Single Demonstration Imitation Learning"
(Chang et al., ICML 2024). One expert trajectory gives too few states for an ordinary IRL reward
to be informative away from them, so TDIL adds a dense one:

- a *transition discriminator* ``T(s, s')`` learns which state pairs the environment can produce
  in one step: positives are real transitions (replay buffer and demonstration), negatives are
  random pairs (``s`` with the ``s'`` of another transition), reversed pairs ``(s', s)``, and
  states 2 to 5 steps apart in the agent's own episodes and the demonstration (without these,
  close but not adjacent states pass as reachable, and the surrogate reward is as high on the
  agent's states as on the expert's); its accuracy on each kind of pair is logged
  (``train/disc_accuracy_*``);
- the *surrogate reward* of reaching ``s'`` is ``max_j sigmoid T(s', e_j)`` over the expert's
  states ``e_j``: the probability that an expert state is one step away ("expert proximity");
- an *IRL reward* ``D(s, s')``, a second discriminator's probability that a transition is the
  expert's rather than the agent's, can be mixed in: ``r = w_td * surrogate + w_irl * D``. With
  one demonstration D separates the two perfectly unless held back by DAC's gradient penalty
  (Kostrikov et al. 2019), and it moves as the agent improves, so a critic chasing it undoes the
  cloned actor: it is off by default (``irl_weight=0``).

The discriminators see the egocentric part of the state by default (the goal in the vehicle's
frame, speed, steering): the world-frame heading and position, the elapsed time, the completion
and the range scan differ between the demonstration's episode and every other, and rewards that
depend on them do not carry over to new spawns.

The environment's reward is never used, nor its ``success`` flag. Terminations are absorbing
states: one that ends where the demonstration ended (no farther from the goal than the expert was
``end_window`` steps before its end, from any side) pays the largest per-step reward forever, any
other (a crash, leaving the map) pays nothing forever, however expert-like the state it ends in.

The learner is SAC started from behaviour cloning on the demonstration, with a BC term in the
actor loss as in TD3+BC (Fujimoto and Gu 2021). Half of every critic batch is the demonstration's
own transitions, as in DQfD (Hester et al. 2018) and SQIL (Reddy et al. 2020): the agent rarely
reaches the goal early on, and without them the critic does not learn what ending there is worth.
With ``mirror`` the demonstration's left-right mirror image (``agents.demos.mirror_trajectory``;
the vehicles' dynamics are symmetric) is a second expert trajectory: the one demonstration turns
one way only, its mirror image shows the other.

Known limitation: every step near an expert-like state pays up to the largest reward, so an agent
can learn to wait there; failing runs stall (time out) rather than crash. Success rates measured
against behaviour cloning are in the README and benchmarks/RESULTS.md (``agent_success.py``).

Modules: ``networks`` (the pair discriminator and what it sees), ``buffer`` (the demonstration as
tensors, multi-step negatives), ``training`` (the SAC learner and ``TDILAgent``).
"""

from agents.demos import mirror_trajectory
from agents.tdil.networks import EGOCENTRIC_STATE_FIELDS, PairDiscriminator
from agents.tdil.training import TDIL, TERMINAL_RULES, TDILAgent

__all__ = [
    "EGOCENTRIC_STATE_FIELDS",
    "TDIL",
    "TERMINAL_RULES",
    "PairDiscriminator",
    "TDILAgent",
    "mirror_trajectory",
]
