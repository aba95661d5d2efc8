//! Benchmarks, packet generators and the performance report.
