"""The hypothesis profiles the suite's property tests run under (``--hypothesis-profile``)."""

from __future__ import annotations


def register_hypothesis_profiles() -> None:
    """ci: derandomised and bounded for a CI budget; dev and thorough find more, and shrink.

    Remote servers are slow and shared: no deadline, no too-slow health check;
    the function-scoped ``judge`` is replaced per example inside the tests.
    ci reports the first failing example as found, unshrunk: against a broken
    server shrinking replays hundreds of requests (llama-cpp-python answers
    echo with max_tokens 0 by generating to the end of its context, 50 s each),
    which is minutes per test; dev and thorough shrink to the minimal example.
    """
    from hypothesis import HealthCheck, Phase, settings

    common = {"deadline": None, "print_blob": True,
              "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture]}
    settings.register_profile("ci", derandomize=True, max_examples=6, database=None,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate], **common)
    settings.register_profile("dev", max_examples=40, **common)
    # Many runs in a row (the kill matrix): a verdict, not a minimal example.
    settings.register_profile("quick", derandomize=True, max_examples=4, database=None,
                              phases=[Phase.explicit, Phase.generate], **common)
    settings.register_profile("thorough", max_examples=400, **common)
