"""asv benchmarks for inv-kernels: one module per op family or pipeline (see ../../CONTRIBUTING.md, "Benchmarks")."""
