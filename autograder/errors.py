"""The one exception family of dlgrade: every message says what to do next."""


class DlgradeError(Exception):
    """Base class: an error the user can act on; the CLI prints it without a traceback."""


class ConfigError(DlgradeError):
    """The course or an assignment is configured wrongly (missing file, unknown key, bad value)."""


class SandboxUnavailable(DlgradeError):
    """bubblewrap is missing or cannot create namespaces; grading refuses to run student code unsandboxed."""


class SubmissionRejected(DlgradeError):
    """A submission cannot be graded at all (not JSON, wrong nbformat, deleted locked cells, missing)."""


class GradingFailed(DlgradeError):
    """A batch ran but some of its results could not be recorded."""


class ValidationFailed(DlgradeError):
    """The reference solution did not earn full marks, or the blank release earned points."""
