"""ftlab: the helper library behind the fine-tuning course.

Start every notebook with ``profile = ftlab.setup()``; then ``ftlab.load_model(profile.base_model)``.
"""

from ftlab.models import load_model
from ftlab.profiles import Profile, setup

__version__ = "0.1.0"
__all__ = ["Profile", "load_model", "setup", "__version__"]
