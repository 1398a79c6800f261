"""A retail inventory API kept useful by brownout while its dependencies fail.

``create_app(RetailConfig(...))`` builds it; ``RetailConfig.from_env()`` reads
``RETAIL_DATABASE_URL``, ``RETAIL_REDIS_URL``, ``RETAIL_S3_ENDPOINT``,
``RETAIL_OPENAI_BASE_URL`` and friends. ``python -m brownout demo`` runs it against local
stand-ins and breaks them one by one.
"""

from examples.retail.app import create_app
from examples.retail.config import RetailConfig

__all__ = ["RetailConfig", "create_app"]
