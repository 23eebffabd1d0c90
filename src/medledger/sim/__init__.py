"""The province simulator: realistic traffic with injected violations and ground truth.

``run_simulation(EmbeddedDriver(data_dir, SIM_START), SimConfig(seed=7))``
builds a fresh ledger, sets up a synthetic province on it and streams two
simulated days of day-shaped traffic through the whole chain, with a
violation of every catalogued rule injected into a fraction of cases; the
returned :class:`Report` scores the contracts against that ground truth.
"""

from medledger.sim.drivers import Driver, EmbeddedDriver, HttpDriver, SimulationError
from medledger.sim.report import Report, RuleScore, write_report
from medledger.sim.run import SIM_PARAMS, SIM_START, SimConfig, run_simulation

__all__ = [
    "SIM_PARAMS",
    "SIM_START",
    "Driver",
    "EmbeddedDriver",
    "HttpDriver",
    "Report",
    "RuleScore",
    "SimConfig",
    "SimulationError",
    "run_simulation",
    "write_report",
]
