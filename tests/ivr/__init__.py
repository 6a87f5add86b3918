"""Tests of the IVR flow model, loader and validator."""
