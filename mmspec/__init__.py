"""mmspec: lossless speculative decoding benchmarks for vision-language models."""

__version__ = "0.1.0"
