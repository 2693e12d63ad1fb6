"""The lab notebook: experiment specs and templates, run dirs, launchers (local, SLURM), SQLite index, harvest, aggregate, export, report."""
