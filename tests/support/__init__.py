"""Test support code shared by tests and benchmarks (fault upstream, scenario expectations)."""
