"""Self-service (T8): business systems the IVR queries. Here: a demo API for out-of-the-box use."""
