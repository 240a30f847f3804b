"""Test harness: real standalone Flink clusters and the sample queue job."""

from .flink import FlinkCluster, build_example_job, default_cache_dir, ensure_flink, flink_version

__all__ = ["FlinkCluster", "build_example_job", "default_cache_dir", "ensure_flink", "flink_version"]
