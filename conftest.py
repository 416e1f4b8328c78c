"""Root conftest: load the logprobe plugin from this checkout, nothing else."""

pytest_plugins = ["logprobe.plugin"]
