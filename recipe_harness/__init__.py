"""recipe-harness: test harness and conformance suite for NVIDIA Dynamo deployment recipes."""

__version__ = "0.1.0"
