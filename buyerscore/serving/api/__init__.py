"""The FastAPI scoring service (extra ``[serve]``): ``create_app(settings)`` builds it."""

from buyerscore.serving.api.main import create_app
from buyerscore.serving.api.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
