"""Barid's benchmarks: each module runs from the repository root as
`python -m bench.bench_NAME`; set-up shared with the tests comes from testkit/."""
