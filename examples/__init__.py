"""Examples that use the pyomo_prefobj public API."""
