"""What the tests and the benchmarks share: one fake world to run the coordinator in.

- `environment`: fake AWS credentials and region, a Lambda context, a clock moved by hand;
- `events`: the named sample events of tests/events/ and their variants, and task tokens;
- `template`: template.yaml as data, and the coordinator table made from its definition.

The kit lives with the operator tools because it is installed with them (`pip install -e .`),
so tests and bench import it alike without either importing the other, and because template
access builds on the offline stack's own reading of the template (`coordinator_tools.local`).
Nothing in the tools or the layer imports it. It reads template.yaml and tests/events/ from the
checkout it is installed from, and needs the development requirements (cfn-lint, moto).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
