"""The report's section "Learned energy": each DxMI agent's inverse-RL energy on the map.

For every agent of the campaign trained with ``driveenv train dxmi`` (``run.json`` algorithm
``dxmi``), the mean energy of the expert's own action chunks per map cell
(``eval.plots_energy.energy_map``), from the successful demonstrations the run learned from
(``config.demos`` of its ``run.json``). An agent whose run or demonstrations cannot be read is
listed with the reason instead: the rest of the report stands without its map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import DriveEnvError
from eval.rollouts import AgentSpec, Campaign


def energy_maps(campaign: Campaign, scene) -> list[dict[str, Any]]:
    """Per DxMI agent: ``{"agent", "png"}`` (base64), or ``{"agent", "skipped"}`` with why."""
    maps = []
    for name, source in campaign.meta["agents"].items():
        spec = AgentSpec(name, source)
        try:
            run = spec.run_info()
        except DriveEnvError:
            continue  # not a training run (or unreadable): the campaign section says so
        if run.get("algorithm") != "dxmi":
            continue
        maps.append({"agent": name, **_one_map(spec, run, scene)})
    return maps


def _one_map(spec: AgentSpec, run: dict[str, Any], scene) -> dict[str, Any]:
    from agents import load_agent
    from agents.demos import load_demos
    from eval.plots_energy import energy_map

    demos_path = (run.get("config") or {}).get("demos")
    if not demos_path:
        return {"skipped": f"{spec.source}/run.json names no demonstrations"}
    demos_path = Path(demos_path)
    try:
        agent = load_agent(spec.source)
        demos = [d for d in load_demos(demos_path) if d.success]
        if not demos:
            return {"skipped": f"{demos_path}: holds no successful demonstration"}
        return {"png": energy_map(agent, demos, scene.drivable, f"Learned energy of {spec.name}")}
    except (DriveEnvError, OSError) as error:
        return {"skipped": str(error)}
