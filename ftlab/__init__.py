"""ftlab: the helper library behind the fine-tuning course.

Start every notebook with ``profile = ftlab.setup()``; then ``ftlab.load_model(profile.base_model)``.
"""

from ftlab.models import load_model
from ftlab.profiles import Profile, setup

__version__ = "0.1.0"
__all__ = ["Profile", "check", "load_model", "setup", "__version__"]


def check(question: str, strict: bool = False) -> bool:
    """In an exercise notebook: run ``question``'s public checks on your code and say what passed."""
    import sys

    from ftlab.exercises import check as run

    return run(question, strict=strict, _namespace=sys._getframe(1).f_globals)
