//! Typed, validated hardware profiles (ports, queues, cores, NUMA, crypto engine, poll mode), loaded
//! from `profiles/*.toml`. Filled in by the DPDK I/O issue.
