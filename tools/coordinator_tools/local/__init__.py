"""The offline stack: template.yaml running on an embedded moto server, with no AWS account.

`python -m coordinator_tools.local up` keeps one running for the AWS CLI or boto3;
`python -m coordinator_tools.local demo` runs the scenario of `make demo`. Tests and tools use
`OfflineStack` directly.
"""

from coordinator_tools.local.stack import Intervals, OfflineStack, StackTimeout

__all__ = ["Intervals", "OfflineStack", "StackTimeout"]
