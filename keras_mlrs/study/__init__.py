"""The study as commands: the comparison report (:mod:`~.compare`), the demo (:mod:`~.demo`),
the environment report (:mod:`~.doctor`) and the benchmarks (:mod:`~.bench`)."""
