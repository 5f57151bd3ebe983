"""dlgrade: sandboxed auto-grading of Keras notebook exercises with nbgrader."""

__version__ = "0.1.0"
