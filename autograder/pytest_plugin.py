"""pytest plugin that turns hidden grader tests into `CheckResult`s.

A hidden test declares its points and the nbgrader grade cell that carries them:

    @pytest.mark.points(3, cell="check-architecture")
    def test_encoder_does_not_return_sequences(model): ...

A test passes for full points, or for a fraction of them when it sets `credit.fraction` (partial credit
between a floor and a target). Failure messages are the assertion's own message (graders run with
`--assert=plain`), never the test's code, data or traceback.

A test may also describe what it compared, for the feedback page (`CheckResult.details`), before it asserts:
`credit.layer_table(rows)` (an architecture, expected vs found, aligned as a diff) or
`credit.threshold(metric=..., measured=..., target=..., floor=...)` (a measured value against its target).

Messages and details often quote the submission (a layer's name, an exception the student's code raised): they
leave the plugin as plain text (`text.plain_text`), never with a control character.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from autograder.results import CheckResult
from autograder.text import plain_text


@dataclass
class Credit:
    """Set by a test for partial credit: `fraction` of its points, and a message shown even on a pass;
    `details` is what the check compared, shown as a table on the feedback page, pass or fail."""

    fraction: float = 1.0
    message: str = ""
    details: dict | None = None

    def layer_table(self, rows) -> None:
        """Expected vs found layers, aligned as a diff: `keras_checks.architecture_rows`' rows (an extra layer is
        one inserted row with nothing expected, a missing one a row with nothing found), or plain rows of
        (index, expected, found, ok)."""
        self.details = {"kind": "layers", "rows": [_layer_row(row) for row in rows]}

    def threshold(self, *, metric: str, measured: float, target: float, floor: float | None = None,
                  about: str = "") -> None:
        """A measured value (an accuracy, say) against the target that earns full points and the floor below
        which the check earns nothing; it sets `fraction` (linear between floor and target, all or nothing
        without a floor) and the message, e.g. "accuracy 0.812 on 1000 hidden reviews (target 0.78, partial
        credit from 0.65)" (`about`: "on 1000 hidden reviews")."""
        measured, target = float(measured), float(target)
        if floor is None:
            self.fraction = 1.0 if measured >= target else 0.0
        else:
            self.fraction = 1.0 if measured >= target else max(0.0, (measured - floor) / (target - floor))
        partial = f", partial credit from {floor:g}" if floor is not None else ""
        self.message = f"{metric} {measured:.3f}{' ' + about if about else ''} (target {target:g}{partial})"
        self.details = {"kind": "threshold", "metric": plain_text(str(metric)), "measured": measured,
                        "target": target, "floor": None if floor is None else float(floor)}


def _layer_row(row) -> dict:
    """{"expected", "found", "ok"}: the schema graders.validated_checks holds every row to."""
    if hasattr(row, "as_detail"):
        detail = row.as_detail()
        expected, found, ok = detail["expected"], detail["found"], detail["ok"]
    else:
        _, expected, found, ok = row
    return {"expected": plain_text(str(expected)), "found": plain_text(str(found)), "ok": bool(ok)}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlgrade")
    group.addoption("--dlgrade-artifacts", help="directory with the submission's collected artifacts")
    group.addoption("--dlgrade-results", help="where to write the check results as JSON")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Before the graders' conftest loads: their exercise's folder (above graders/, the --rootdir) on sys.path, so
    the helpers released beside the notebook (data, constants) import as they do in the notebook."""
    rootdir = getattr(early_config.known_args_namespace, "rootdir", None)
    if rootdir:
        exercise = str(Path(rootdir).resolve().parent)
        if exercise not in sys.path:
            sys.path.insert(0, exercise)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n, cell): points of a hidden check and the grade cell carrying them")
    config.stash[_RESULTS] = {}


_RESULTS = pytest.StashKey[dict]()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """The directory of artifacts the submission's notebook left behind (copied out of the sandbox)."""
    value = request.config.getoption("--dlgrade-artifacts")
    if not value:
        pytest.fail("graders need --dlgrade-artifacts")
    return Path(value)


@pytest.fixture
def credit(request: pytest.FixtureRequest) -> Credit:
    """Partial credit for the current test (see module docstring)."""
    value = Credit()
    request.node.stash[_CREDIT] = value
    return value


_CREDIT = pytest.StashKey[Credit]()


def _message(excinfo: pytest.ExceptionInfo) -> tuple[str, str]:
    """(status, message) for a failed phase; only the exception's own message crosses to the student."""
    exc = excinfo.value
    if isinstance(exc, AssertionError) or excinfo.errisinstance(pytest.fail.Exception):
        return "failed", str(getattr(exc, "msg", None) or exc).strip() or "the check failed"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return "error", f"the check could not run: {type(exc).__name__}: {first}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("points")
    if marker is None:
        return
    results = item.config.stash[_RESULTS]
    points = float(marker.args[0] if marker.args else marker.kwargs.get("n", 1))
    cell = marker.kwargs.get("cell", "")
    name = (item.obj.__doc__ or item.name).strip().splitlines()[0] if hasattr(item, "obj") else item.name
    credit = item.stash.get(_CREDIT, Credit())
    if report.failed or report.skipped:
        status, message = _message(call.excinfo) if call.excinfo else ("failed", "skipped")
        results[item.nodeid] = CheckResult(name=name, cell=cell, score=0.0, max_score=points, status=status,
                                           output=plain_text(message), details=credit.details)
    elif report.when == "call" and item.nodeid not in results:
        fraction = min(max(credit.fraction, 0.0), 1.0)
        results[item.nodeid] = CheckResult(name=name, cell=cell, score=round(points * fraction, 3),
                                           max_score=points, status="passed" if fraction > 0 else "failed",
                                           output=plain_text(str(credit.message)), details=credit.details)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.getoption("--dlgrade-results")
    if target:
        results = session.config.stash[_RESULTS]
        Path(target).write_text(json.dumps([asdict(r) for r in results.values()], indent=2))
