"""The engines behind the pools: PDF rendering, image normalisation, tesseract, OCR registry.

Thin adapters with no policy and no retries; each maps its library's failures to the
``ProviderError`` kinds in one place.
"""
