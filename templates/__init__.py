"""The jinja2 templates of dlgrade's pages (feedback, course report, similarity), shipped in the wheel as
the package `autograder.templates`."""
