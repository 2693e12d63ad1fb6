"""The doctor: checkpoint validation, training-log analysis, preflight smoke runs, memory estimates."""
