"""The benchmarks (docs/performance.md; `make bench` runs them all through `bench.run_all`).

Every benchmark runs against fake AWS (moto in this process, or the offline stack's embedded
moto server), never an account: importing the package sets fake credentials, a region and
Powertools' settings before any benchmark module creates a client or imports a handler.
"""

from coordinator_tools.kit.environment import use_fake_environment

METRICS_NAMESPACE = "CallbackCoordinatorBench"

use_fake_environment(METRICS_NAMESPACE)
