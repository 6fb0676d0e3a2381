"""Evaluation: simulated campaigns, real trial logs, sim-vs-real metrics, forecasting, rendering fidelity, the HTML report."""
