"""Tests for ix_pipeline.lifecycle."""
