"""The Serverless Application Repository metadata: what `sam publish` reads, kept true."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from coordinator_tools.kit.template import load_template, resources

ROOT = Path(__file__).resolve().parents[2]
# Resources the Serverless Application Repository makes a consumer acknowledge, by capability.
NEEDS_IAM = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::Group", "AWS::IAM::InstanceProfile"}
NEEDS_RESOURCE_POLICY = {
    "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersionPermission",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::Events::EventBusPolicy",
    "AWS::IAM::Policy",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
}


@pytest.fixture(scope="module")
def application() -> dict[str, Any]:
    return dict(load_template()["Metadata"]["AWS::ServerlessRepo::Application"])


def package_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_the_semantic_version_is_the_package_version(application: dict[str, Any]) -> None:
    assert application["SemanticVersion"] == package_version() == version("callback-coordinator")


def test_the_semantic_version_is_semver(application: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", application["SemanticVersion"])


def test_the_license_and_readme_it_names_exist(application: dict[str, Any]) -> None:
    assert "Apache License" in (ROOT / application["LicenseUrl"]).read_text()
    assert "Version 2.0" in (ROOT / application["LicenseUrl"]).read_text()
    assert application["SpdxLicenseId"] == "Apache-2.0"
    assert (ROOT / application["ReadmeUrl"]).is_file()


def test_the_fields_sam_publish_requires_are_set(application: dict[str, Any]) -> None:
    for name in ("Name", "Description", "Author", "SemanticVersion", "HomePageUrl", "SourceCodeUrl"):
        assert application.get(name), name
    assert 1 <= len(application["Labels"]) <= 10
    assert all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label) for label in application["Labels"])
    assert len(application["Description"]) <= 256


def test_the_readme_names_every_capability_a_consumer_must_acknowledge() -> None:
    types = {node["Type"] for node in resources().values()}
    readme = (ROOT / "README.md").read_text()
    needed = set()
    if types & NEEDS_IAM:
        needed.add("CAPABILITY_IAM")
    if types & NEEDS_RESOURCE_POLICY:
        needed.add("CAPABILITY_RESOURCE_POLICY")
    assert needed == {"CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"}
    for capability in needed:
        assert capability in readme, capability
