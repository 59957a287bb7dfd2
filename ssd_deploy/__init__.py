"""ssd-deploy: train SSD detectors, export them with decoding and NMS in the graph, and run
them with identical results on every runtime."""

__version__ = "0.1.0"
