"""Forecast benchmark: how many real trials the simulation saves, at what coverage.

On synthetic paired campaigns (tests/eval/fakes.py: 4 agents x 2 conditions, 100 simulated
episodes per agent and condition, the first ``n`` of them also run for real, sim and real outcomes
of the same episode correlated at 0.5, 0.8 or 0.95, the simulation unbiased, optimistic or mixed),
three intervals for each agent's real success rate (pooled over both conditions):

- real trials only: the Wilson interval;
- the current forecast: the logit-space mapping fitted on the campaign's other agents, applied to
  the agent's simulated rate (``eval.forecast``; it does not use the agent's own trials);
- prediction-powered: ``eval.ppi`` (real trials paired with their simulated episodes).

Prints, per correlation and regime, each one's coverage of the true rate and mean width at the
nominal 95%, and its mean width once rescaled (about its centre) to cover exactly 95% ("at equal
coverage"). Then, at equal coverage, the fewest real trials for which the prediction-powered
interval is no wider than the real-only one with ``--reference`` trials per condition.

    .venv/bin/python benchmarks/forecast.py                 # 2000 campaigns per cell
    .venv/bin/python benchmarks/forecast.py --draws 500 --forecast-draws 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's packages and tests/eval/fakes.py

from results import markdown_table, write_section  # noqa: E402

AGENTS, EPISODES, CONFIDENCE = 4, 100, 0.95
CORRELATIONS = (0.5, 0.8, 0.95)


def campaigns(rng, draws: int, regime: str, correlation: float, trials: int):
    """Flattened (draws * agents) rows: real, paired sim, unpaired sim, sim counts, truth."""
    from tests.eval.fakes import paired_outcomes, synthetic_rates

    sim_p, real_p = synthetic_rates(rng, draws, AGENTS, regime)
    sim, real = paired_outcomes(rng, sim_p, real_p, correlation, EPISODES, trials)
    rows = draws * AGENTS
    return (
        real.reshape(rows, 2 * trials),
        sim[..., :trials].reshape(rows, 2 * trials),
        sim[..., trials:].reshape(rows, 2 * (EPISODES - trials)),
        sim.sum(axis=(-1, -2)).reshape(rows),
        real_p.mean(axis=-1).reshape(rows),
    )


def equal_coverage_width(centre, low, high, truth, target: float = CONFIDENCE) -> float:
    """Mean width after scaling each interval about its centre so that it covers ``target``."""
    below, above = np.maximum(centre - low, 1e-9), np.maximum(high - centre, 1e-9)
    need = np.where(truth < centre, (centre - truth) / below, (truth - centre) / above)
    scale = np.quantile(need, target)
    return float(
        np.mean(np.clip(centre + scale * above, 0, 1) - np.clip(centre - scale * below, 0, 1))
    )


def current_forecast(real, sim_successes, limit: int):
    """The logit-space mapping fitted on the other agents of each campaign (first ``limit``)."""
    from eval.forecast import AgentCounts, fit_mapping, forecast

    trials, episodes = real.shape[1], 2 * EPISODES
    out = np.zeros((limit * AGENTS, 3))
    for c in range(limit):
        counts = [
            AgentCounts(
                f"a{i}",
                int(sim_successes[c * AGENTS + i]),
                episodes,
                int(real[c * AGENTS + i].sum()),
                trials,
            )
            for i in range(AGENTS)
        ]
        for i, agent in enumerate(counts):
            mapping = fit_mapping([a for a in counts if a is not agent])
            f = forecast(
                mapping, AgentCounts(agent.name, agent.sim_successes, episodes), draws=1000, seed=c
            )
            out[c * AGENTS + i] = f.median, f.low, f.high
    return out.T


def methods(rng, draws, regime, correlation, trials, forecast_draws):
    from eval.ppi import grouped_priors, ppi_mean, wilson

    real, paired, unpaired, sim_successes, truth = campaigns(
        rng, draws, regime, correlation, trials
    )
    centred_real = real - real.mean(axis=1, keepdims=True)
    centred_sim = paired - paired.mean(axis=1, keepdims=True)
    realised = float(np.corrcoef(centred_real.ravel(), centred_sim.ravel())[0, 1])
    rows = {"realised correlation": realised}
    low, high = wilson(real.mean(axis=1), real.shape[1], CONFIDENCE)
    rows["real trials only"] = (real.mean(axis=1), low, high, truth)
    e = ppi_mean(real, paired, unpaired, CONFIDENCE, pseudo=grouped_priors(real, paired, AGENTS))
    rows["prediction-powered"] = (e.estimate, e.low, e.high, truth)
    if forecast_draws:
        centre, low, high = current_forecast(real, sim_successes, forecast_draws)
        rows["current forecast"] = (centre, low, high, truth[: forecast_draws * AGENTS])
    return rows


def fewer_trials(rng, draws: int, regime: str, correlation: float, reference: int) -> list:
    """The fewest real trials at which the prediction-powered interval, rescaled to 95% coverage,
    is no wider than the real-only one with ``reference`` trials per condition (also rescaled)."""
    target = summarise(*methods(rng, draws, regime, correlation, reference, 0)["real trials only"])[
        2
    ]
    needed = None
    for n in range(2, reference + 1):
        rows = methods(rng, draws, regime, correlation, n, 0)
        if summarise(*rows["prediction-powered"])[2] <= target:
            needed = n
            break
    fewer = "none" if needed is None else f"{100 * (1 - needed / reference):.0f}%"
    return [
        correlation,
        regime,
        2 * reference,
        round(target, 3),
        "-" if needed is None else 2 * needed,
        fewer,
    ]


def summarise(centre, low, high, truth):
    coverage = float(np.mean((low <= truth) & (truth <= high)))
    return coverage, float(np.mean(high - low)), equal_coverage_width(centre, low, high, truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=2000, help="campaigns per cell")
    parser.add_argument(
        "--forecast-draws", type=int, default=100, help="campaigns for the current forecast (slow)"
    )
    parser.add_argument(
        "--trials", type=int, default=10, help="real trials per agent and condition"
    )
    parser.add_argument(
        "--reference", type=int, default=20, help="real-only trials per condition to match"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    table = []
    for correlation in CORRELATIONS:
        for regime in ("unbiased", "optimistic", "mixed"):
            rows = methods(rng, args.draws, regime, correlation, args.trials, args.forecast_draws)
            realised = rows.pop("realised correlation")
            for name, data in rows.items():
                coverage, width, equal = summarise(*data)
                table.append(
                    [
                        correlation,
                        regime,
                        round(realised, 2),
                        name,
                        len(data[3]),
                        coverage,
                        width,
                        equal,
                    ]
                )
    header = [
        "sim-real correlation",
        "sim bias",
        "realised",
        "interval",
        "agents",
        "coverage",
        "mean width",
        "width at 95% coverage",
    ]
    first = markdown_table(header, table)
    print(first)

    savings = [
        fewer_trials(rng, args.draws, regime, correlation, args.reference)
        for correlation in CORRELATIONS
        for regime in ("unbiased", "optimistic", "mixed")
    ]
    second = markdown_table(
        [
            "sim-real correlation",
            "sim bias",
            "real-only trials per agent",
            "real-only width at 95% coverage",
            "prediction-powered trials for that width",
            "fewer real trials",
        ],
        savings,
    )
    print()
    print(second)
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f} s, load average {os.getloadavg()[0]:.1f}")
    if not args.no_write:
        body = (
            f"Synthetic paired campaigns (tests/eval/fakes.py): {AGENTS} agents x 2 conditions, "
            f"{EPISODES} simulated episodes per agent and condition, {args.trials} of them also run "
            f"for real per condition; {args.draws} campaigns per row ({args.forecast_draws} for the "
            "current forecast, which fits one mapping per agent); the prediction-powered intervals "
            f"pool each campaign's sim-real disagreement over its {AGENTS} agents "
            "(`eval.ppi.grouped_priors`). Coverage of the true real success "
            "rate by 95% intervals, their mean width, and their mean width rescaled to cover exactly "
            f"95%. 'realised': the correlation of paired sim and real outcomes (within agents) that the "
            "two rates allow: a binary pair with different rates cannot correlate perfectly, so a "
            f"biased simulation correlates less.\n\n{first}\n\nReal trials needed for the real-only "
            f"width at 95% coverage ({args.draws} campaigns per count):\n\n{second}\n\n{elapsed:.0f} s."
        )
        write_section("Forecast", body)


if __name__ == "__main__":
    main()
