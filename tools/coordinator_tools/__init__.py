"""Operator tools for callback-coordinator: the offline stack and the `coordinator` CLI.

They live outside the Lambda layer: nothing here is deployed.
"""
