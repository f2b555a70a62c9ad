"""Results files: their typed, versioned schema (:mod:`benchmark.results.schema`)."""
