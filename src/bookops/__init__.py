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
from .api import Library, open
from .settings import Settings
from .store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "BookBusy", "BookopsError", "Library", "Store", "open", "open_store", "ConfigError", "InvalidOutput", "PermanentError", "ProviderError",
    "RateLimited", "Settings", "StoreError", "TransientError", "UserError", "__version__",
]
