"""Turn exchanges and violations into a graded verdict for one test.

Tests stay thin: they send requests and hand the exchanges here. The judge
first classifies the transport (ERROR for a 5xx, a timeout or a broken body;
UNSUPPORTED for a clean 4xx to a request that should work), then runs the
pure check functions and records every violation. MUST violations raise
:class:`ConformanceFailure`, which carries the verdict, the violations and the
exchanges for the report; SHOULD and INFO findings are recorded and the test
passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from logprobe.client import Exchange
from logprobe.expectations import Expectation, expected_by
from logprobe.invariants import differential, shape
from logprobe.invariants import errors as err
from logprobe.invariants.catalogue import checks_for
from logprobe.invariants.core import (
    Check,
    ExchangeCheck,
    Invariant,
    Level,
    Verdict,
    Violation,
    invariants_of,
    worst,
)


class HarnessError(RuntimeError):
    """The suite's own side failed (a tokenizer or data set that cannot load, a missing
    extra): an ERROR of the run that says what to pass, never a verdict on the server."""


class ConformanceFailure(AssertionError):
    """A MUST was violated; ``verdict`` grades how."""

    def __init__(self, verdict: Verdict, violations: list[Violation], exchanges: list[Exchange]):
        self.verdict = verdict
        self.violations = violations
        self.exchanges = exchanges
        super().__init__(render_failure(verdict, violations, exchanges))


def render_failure(verdict: Verdict, violations: list[Violation], exchanges: list[Exchange]) -> str:
    lines = [f"{verdict}: " + "; ".join(sorted({v.id for v in violations}))]
    lines += [v.render() for v in violations[:12]]
    if len(violations) > 12:
        lines.append(f"... and {len(violations) - 12} more violations")
    for exchange in exchanges[-3:]:
        lines.append(f"response: {exchange.summary()}")
        lines.append(f"reproduce: {exchange.curl()}")
    return "\n".join(lines)


@dataclass
class Judgement:
    """What one test found; the plugin turns it into a report row."""

    invariants: set[str] = field(default_factory=set)
    # What the checks judged (the transport classification of ``ok`` aside), and what
    # they had nothing to judge, with why: a test that judged nothing is N/A, not PASS.
    checked: set[str] = field(default_factory=set)
    unjudged: dict[str, str] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    expected: list[tuple[Violation, Expectation]] = field(default_factory=list)
    # The exchange each violation was found in (by the violation's id): its reproducer.
    sources: dict[int, Exchange] = field(default_factory=dict)
    # Measurements a report draws (e.g. echo against teacher-forced logprobs), plain JSON.
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> Level | None:
        from logprobe.invariants.core import CATALOGUE

        levels = {CATALOGUE[i].level for i in self.invariants if i in CATALOGUE}
        for level in (Level.MUST, Level.SHOULD, Level.INFO):
            if level in levels:
                return level
        return None

    def source(self, violation: Violation) -> Exchange | None:
        """The exchange the violation was found in (the last judged with it)."""
        return self.sources.get(id(violation))

    @property
    def findings(self) -> list[Violation]:
        return [v for v in self.violations if v.level is not Level.MUST]

    @property
    def judged_nothing(self) -> bool:
        return not self.checked and bool(self.unjudged)

    def not_judged(self) -> dict[str, str]:
        """The invariants this test touched but never judged, with why."""
        return {i: why for i, why in self.unjudged.items() if i not in self.checked}


class Judge:
    """Bound to one test: classify exchanges, run checks, raise on a violated MUST."""

    def __init__(
        self,
        judgement: Judgement,
        on_no_answer: Callable[[Exchange], None] | None = None,
        expectations: list[Expectation] | None = None,
        reference_tolerance: float = differential.SAME,
        failures: list[tuple[ConformanceFailure, Judgement]] | None = None,
    ):
        self.judgement = judgement
        # With --reference-endpoint: how far two numbers may be apart and be the same answer.
        self._reference_tolerance = reference_tolerance
        # Asked of every exchange that got no answer at all: raises
        # ``liveness.ServerDown`` when the server is down (the test stops, not reached).
        self._on_no_answer = on_no_answer
        # Every failure raised by this test's judges (a property test makes one judge per
        # example): the first is the one to report if the server dies before the test ends.
        self._failures = failures
        self._expectations = expectations or []
        self._reported: set[int] = set()  # exchanges whose own defects were recorded

    def _expected(self, violations: list[Violation], exchanges: list[Exchange]) -> list[Violation]:
        """Move violations an expectation file describes into ``judgement.expected``; with
        several exchanges (a stream against its plain twin), any of them may match."""
        if not self._expectations:
            return violations
        kept = []
        for violation in violations:
            match = expected_by(self._expectations, violation.id, violation.verdict.value,
                                violation.message, [(x.path, x.request_json) for x in exchanges])
            if match is None:
                kept.append(violation)
            else:
                self.judgement.expected.append((violation, match))
                if violation in self.judgement.violations:
                    self.judgement.violations.remove(violation)
        return kept

    def _note(self, exchanges: Iterable[Exchange], invariants: Iterable[Invariant]) -> None:
        for exchange in exchanges:
            if exchange not in self.judgement.exchanges:
                if exchange.transport_error and exchange.status is None and self._on_no_answer:
                    self._on_no_answer(exchange)  # a dead server stops the test here
                self.judgement.exchanges.append(exchange)
        self.judgement.invariants.update(i.id for i in invariants)

    def _exchange_findings(self, exchanges: Iterable[Exchange]) -> list[Violation]:
        """What an exchange says about the server by itself, once per test: bare NaN
        literals in its JSON (VAL-001), failed attempts a retry hid (ERR-006), and with
        --reference-endpoint how the reference answered the same request (DIFF-001).
        The same shared exchange judged by several tests is reported by each."""
        from logprobe.invariants.values import check_json_literals

        found: list[Violation] = []
        for exchange in exchanges:
            if id(exchange) in self._reported:
                continue
            self._reported.add(id(exchange))
            found += check_json_literals(exchange.nonstandard_constants)
            found += err.check_retried(exchange.retries)
            if exchange.mirrored is not None:
                there = exchange.mirrored
                differences, fields = differential.against_reference(
                    exchange.status, exchange.json, there.status, there.json,
                    (exchange.curl(), there.curl()), self._reference_tolerance)
                found += differences
                if fields:
                    differential.merge(self.judgement.data.setdefault(differential.MEASURE, {}),
                                       fields)
        return found

    def ok(self, exchange: Exchange, *, feature: str = "the request") -> Any:
        """The parsed body of a response that must be a usable 200 (a stream's list of
        events), else raise the verdict; None when an expectation file knows the refusal."""
        self._note([exchange], [err.ERR_004])
        verdict, message = classify(exchange)
        if verdict is Verdict.PASS:
            self.record([exchange], [], [])  # what the exchange says by itself (NaN, retries)
            return exchange.stream_events if exchange.stream else exchange.json
        if verdict is Verdict.UNSUPPORTED:
            message = f"the server refused {feature} with a clean 4xx: {message}"
        violation = Violation(err.ERR_004, message, verdict=verdict)
        if not self._expected([violation], [exchange]):
            return None  # a known deviation: the caller must cope with no body
        self._fail([violation], [exchange], verdict)
        return None  # unreachable

    def refused(self, exchange: Exchange) -> bool:
        """For a generated request that is legal but unusual: a clean 4xx is the server's
        stated limit, recorded (EXPECTED when a file knows it, else an ERR-007 finding with
        the request) and not a failure; True if it was refused. A 5xx or a broken body is
        left for ``ok`` to fail."""
        verdict, message = classify(exchange)
        if verdict is not Verdict.UNSUPPORTED:
            return False
        self._note([exchange], [err.ERR_004])
        refusal = Violation(err.ERR_004, f"the server refused a legal request: {message}",
                            verdict=Verdict.UNSUPPORTED)
        if self._expected([refusal], [exchange]):
            self.judgement.violations += err.describe_refusal(exchange.curl(), message)
        return True

    def check(
        self, exchange_or_exchanges: Exchange | list[Exchange], fn: Check, *args: Any, **kwargs: Any
    ) -> list[Violation]:
        """Run one check function (pure) and record it; raise if it found a MUST violation."""
        exchanges = exchange_or_exchanges if isinstance(exchange_or_exchanges, list) \
            else [exchange_or_exchanges]
        violations = fn(*args, **kwargs)
        return self.record(exchanges, invariants_of(fn), violations)

    def response(self, exchange: Exchange, *fns: ExchangeCheck, feature: str = "the request") -> Any:
        """``ok``, then every exchange check ``fn(request, body)`` (``core.bind`` adds what a
        test knows beyond the exchange).

        All checks run before the verdict, so a report names every invariant
        the response violates, not only the first.
        """
        body = self.ok(exchange, feature=feature)
        if body is None:
            return None  # an expected refusal: nothing to judge
        found: list[Violation] = []
        for fn in fns:
            found += self.record([exchange], invariants_of(fn),
                                 fn(exchange.request_json, body), raise_now=False)
        self._raise_if_must(found, [exchange])  # record() has set the expected ones aside
        return body

    def applicable(self, exchange: Exchange, *also: ExchangeCheck,
                   feature: str = "the request") -> Any:
        """``response`` with every registered exchange check that applies to the request,
        and the test's own checks ``also`` (all judged before the verdict)."""
        return self.response(exchange, *checks_for(exchange.path, exchange.request_json),
                             *also, feature=feature)

    def measure(self, name: str, value: Any) -> None:
        """Keep a measurement (plain JSON) in this test's row of run.json, for the reports."""
        self.judgement.data[name] = value

    def measure_also(self, name: str, value: Any) -> None:
        """Add a measurement to the list kept under ``name`` (a test that compares several
        times, for a run-level check that pools them)."""
        self.judgement.data.setdefault(name, []).append(value)

    def rejection(self, exchange: Exchange, inv: Invariant) -> None:
        """An invalid request: it must get a 4xx with an OpenAI error object."""
        self._note([exchange], [inv, shape.SHAPE_004])
        if exchange.transport_error or exchange.status is None or exchange.status >= 500:
            _verdict, message = classify(exchange)
            broke = Violation(inv, f"invalid input broke the server: {message}", verdict=Verdict.ERROR)
            if self._expected([broke], [exchange]):
                self._fail([broke], [exchange], Verdict.ERROR)
            return  # a known deviation
        found = err.check_rejected(inv, exchange.status, exchange.json)
        if not found:
            found = shape.check_error_object(exchange.status, exchange.json)
            self.judgement.invariants.add(shape.SHAPE_006.id)
        self.record([exchange], [inv], found)

    def record(
        self,
        exchanges: list[Exchange],
        invariants: Iterable[Invariant],
        violations: list[Violation],
        *,
        raise_now: bool = True,
    ) -> list[Violation]:
        markers = [v for v in violations if v.verdict is Verdict.NA]
        violations = [v for v in violations if v.verdict is not Verdict.NA]
        unjudged = {v.id for v in markers}
        invariants = list(invariants) + [v.invariant for v in violations]
        self._note(exchanges, invariants)
        self.judgement.checked.update(i.id for i in invariants if i.id not in unjudged)
        self.judgement.checked.update(v.id for v in violations)
        for marker in markers:
            self.judgement.unjudged.setdefault(marker.id, marker.message)
        violations = violations + self._exchange_findings(exchanges)
        self._found_in(violations, exchanges)
        violations = self._expected(violations, list(exchanges))
        self.judgement.violations.extend(violations)
        if raise_now:
            self._raise_if_must(violations, exchanges)
        return violations

    def conclude(self) -> None:
        """Raise for every MUST recorded so far (for tests that gather several steps first)."""
        self._raise_if_must(self.judgement.violations, self.judgement.exchanges)

    def _raise_if_must(self, violations: list[Violation], exchanges: list[Exchange]) -> None:
        must = [v for v in violations if v.level is Level.MUST]
        if must:
            verdict = Verdict(worst([v.verdict.value for v in must]))
            self._fail(must, exchanges, verdict)

    def _found_in(self, violations: list[Violation], exchanges: list[Exchange]) -> None:
        if exchanges:
            for violation in violations:
                self.judgement.sources.setdefault(id(violation), exchanges[-1])

    def _fail(self, violations: list[Violation], exchanges: list[Exchange], verdict: Verdict) -> None:
        self._found_in(violations, exchanges)
        self.judgement.violations.extend(v for v in violations if v not in self.judgement.violations)
        failure = ConformanceFailure(verdict, violations, exchanges)
        if self._failures is not None:
            self._failures.append((failure, self.judgement))
        raise failure


def classify(exchange: Exchange) -> tuple[Verdict, str]:
    """PASS for a 200 with a JSON body; otherwise the graded verdict and why."""
    if exchange.transport_error:
        return Verdict.ERROR, f"no response: {exchange.transport_error}"
    if exchange.truncated:
        return Verdict.ERROR, "the response body exceeded the size cap"
    status = exchange.status or 0
    if status >= 500:
        return Verdict.ERROR, exchange.summary(300)
    if exchange.stream:
        if status == 200:
            content_type = exchange.response_headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                return Verdict.ERROR, (f"stream: true answered with Content-Type "
                                       f"{content_type or '(none)'!r}, not an event stream")
            return Verdict.PASS, ""
    elif exchange.parse_error is not None:
        kind = "HTML" if exchange.text.lstrip().lower().startswith("<") else "not JSON"
        return Verdict.ERROR, f"HTTP {status} with a body that is {kind} ({exchange.parse_error})"
    if 400 <= status < 500:
        body = exchange.json
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return Verdict.UNSUPPORTED, exchange.summary(300)
        return Verdict.ERROR, f"HTTP {status} without an OpenAI error object: {exchange.summary(300)}"
    if status != 200:
        return Verdict.ERROR, f"unexpected HTTP {status}"
    content_type = exchange.response_headers.get("content-type", "")
    if not exchange.stream and "json" not in content_type:
        return Verdict.ERROR, (f"a JSON body sent as Content-Type {content_type or '(none)'!r}: "
                               "aiohttp's json(), which lm-eval uses, raises ContentTypeError")
    return Verdict.PASS, ""
