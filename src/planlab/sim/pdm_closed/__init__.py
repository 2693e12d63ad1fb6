"""PDM-Closed, NAVSIM's privileged rule-based reference planner (fact sheet §1.9), on planlab's map API."""
