"""bookops: scanned books into structured data."""

from .errors import (
    BookBusy,
    BookopsError,
    ConfigError,
    InvalidOutput,
    PermanentError,
    ProviderError,
    RateLimited,
    StoreError,
    TransientError,
    UserError,
)
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "BookBusy", "BookopsError", "ConfigError", "InvalidOutput", "PermanentError", "ProviderError",
    "RateLimited", "Settings", "StoreError", "TransientError", "UserError", "__version__",
]
