"""hookline's benchmark harness: ``bench/run`` (see bench/README.md)."""
