"""Shipped data: scene bundles, vehicle URDFs, the report template and example files."""
