"""The Serverless Application Repository metadata: what `sam publish` reads, kept true."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from coordinator_tools.kit.template import TEMPLATE_PATH, load_template
from coordinator_tools.local.cloudformation import translate

ROOT = Path(__file__).resolve().parents[2]
# Every resource type the Serverless Application Repository accepts in an application's template,
# as its developer guide lists them:
# https://docs.aws.amazon.com/serverlessrepo/latest/devguide/list-supported-resources.html
# (recorded from the guide's source, awsdocs/aws-serverlessrepo-developer-guide,
# doc_source/list-supported-resources.md; the live page has grown since, so a type missing here
# may be supported there: check it before adding it to SAR_UNSUPPORTED_IN_USE).
SAR_SUPPORTED_RESOURCES = frozenset(
    {
        "AWS::AccessAnalyzer::Analyzer",
        "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::Authorizer", "AWS::ApiGateway::BasePathMapping",
        "AWS::ApiGateway::ClientCertificate", "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::DocumentationPart", "AWS::ApiGateway::DocumentationVersion",
        "AWS::ApiGateway::DomainName", "AWS::ApiGateway::GatewayResponse", "AWS::ApiGateway::Method",
        "AWS::ApiGateway::Model", "AWS::ApiGateway::RequestValidator", "AWS::ApiGateway::Resource",
        "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage", "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::UsagePlanKey", "AWS::ApiGateway::VpcLink",
        "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::ApiMapping", "AWS::ApiGatewayV2::Authorizer",
        "AWS::ApiGatewayV2::DomainName", "AWS::ApiGatewayV2::Deployment",
        "AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::IntegrationResponse",
        "AWS::ApiGatewayV2::Model", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::RouteResponse",
        "AWS::ApiGatewayV2::Stage",
        "AWS::AppSync::ApiKey", "AWS::AppSync::DataSource", "AWS::AppSync::GraphQLApi",
        "AWS::AppSync::GraphQLSchema", "AWS::AppSync::Resolver",
        "AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::Athena::NamedQuery",
        "AWS::CertificateManager::Certificate",
        "AWS::CloudFormation::CustomResource", "AWS::CloudFormation::Interface",
        "AWS::CloudFormation::Macro", "AWS::CloudFormation::WaitConditionHandle",
        "AWS::CloudFront::CloudFrontOriginAccessIdentity", "AWS::CloudFront::Distribution",
        "AWS::CloudFront::StreamingDistribution",
        "AWS::CloudTrail::Trail",
        "AWS::CloudWatch::Alarm", "AWS::CloudWatch::AnomalyDetector", "AWS::CloudWatch::Dashboard",
        "AWS::CloudWatch::InsightRule",
        "AWS::CodeBuild::Project", "AWS::CodeCommit::Repository",
        "AWS::CodePipeline::CustomActionType", "AWS::CodePipeline::Pipeline", "AWS::CodePipeline::Webhook",
        "AWS::Cognito::IdentityPool", "AWS::Cognito::IdentityPoolRoleAttachment",
        "AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient", "AWS::Cognito::UserPoolDomain",
        "AWS::Cognito::UserPoolGroup", "AWS::Cognito::UserPoolResourceServer",
        "AWS::Cognito::UserPoolUser", "AWS::Cognito::UserPoolUserToGroupAttachment",
        "AWS::Config::AggregationAuthorization", "AWS::Config::ConfigRule",
        "AWS::Config::ConfigurationAggregator", "AWS::Config::ConfigurationRecorder",
        "AWS::Config::DeliveryChannel", "AWS::Config::RemediationConfiguration",
        "AWS::DataPipeline::Pipeline",
        "AWS::DynamoDB::Table",
        "AWS::EC2::SecurityGroup",
        "AWS::ECR::Repository",
        "AWS::Elasticsearch::Domain",
        "AWS::Events::EventBusPolicy", "AWS::Events::Rule",
        "AWS::EventSchemas::Discoverer", "AWS::EventSchemas::Registry", "AWS::EventSchemas::Schema",
        "AWS::Glue::Classifier", "AWS::Glue::Connection", "AWS::Glue::Crawler", "AWS::Glue::Database",
        "AWS::Glue::DevEndpoint", "AWS::Glue::Job", "AWS::Glue::Partition", "AWS::Glue::Table",
        "AWS::Glue::Trigger",
        "AWS::IAM::Group", "AWS::IAM::InstanceProfile", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy",
        "AWS::IAM::Role",
        "AWS::IoT::Certificate", "AWS::IoT::Policy", "AWS::IoT::PolicyPrincipalAttachment",
        "AWS::IoT::Thing", "AWS::IoT::ThingPrincipalAttachment", "AWS::IoT::TopicRule",
        "AWS::KMS::Alias", "AWS::KMS::Key",
        "AWS::Kinesis::Stream", "AWS::Kinesis::StreamConsumer", "AWS::Kinesis::Streams",
        "AWS::KinesisAnalytics::Application", "AWS::KinesisAnalytics::ApplicationOutput",
        "AWS::KinesisFirehose::DeliveryStream",
        "AWS::Lambda::Alias", "AWS::Lambda::EventInvokeConfig", "AWS::Lambda::EventSourceMapping",
        "AWS::Lambda::Function", "AWS::Lambda::LayerVersion", "AWS::Lambda::LayerVersionPermission",
        "AWS::Lambda::Permission", "AWS::Lambda::Version",
        "AWS::Logs::Destination", "AWS::Logs::LogGroup", "AWS::Logs::LogStream",
        "AWS::Logs::MetricFilter", "AWS::Logs::SubscriptionFilter",
        "AWS::Route53::HealthCheck", "AWS::Route53::HostedZone", "AWS::Route53::RecordSet",
        "AWS::Route53::RecordSetGroup",
        "AWS::S3::Bucket", "AWS::S3::BucketPolicy",
        "AWS::SNS::Subscription", "AWS::SNS::Topic", "AWS::SNS::TopicPolicy",
        "AWS::SQS::Queue", "AWS::SQS::QueuePolicy",
        "AWS::SSM::Association", "AWS::SSM::Document", "AWS::SSM::MaintenanceWindowTask",
        "AWS::SSM::Parameter", "AWS::SSM::PatchBaseline", "AWS::SSM::ResourceDataSync",
        "AWS::Serverless::Api", "AWS::Serverless::Application", "AWS::Serverless::Function",
        "AWS::Serverless::HttpApi", "AWS::Serverless::LayerVersion", "AWS::Serverless::SimpleTable",
        "AWS::Serverless::StateMachine",
        "AWS::StepFunctions::Activity", "AWS::StepFunctions::StateMachine",
    }
)  # fmt: skip
# The types this template uses that the list above lacks, each said in the README with what a
# publisher does about it. EventBridge Scheduler carries the reconcile timer and the live
# schedule (ScheduleV2 events and ExampleSchedule).
SAR_UNSUPPORTED_IN_USE = frozenset({"AWS::Scheduler::Schedule"})
# Resources the Serverless Application Repository makes a consumer acknowledge, by capability
# (https://docs.aws.amazon.com/serverlessrepo/latest/devguide/acknowledging-application-capabilities.html).
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
def deployed() -> dict[str, dict[str, Any]]:
    """The template's resources after the SAM transform: what CloudFormation, and SAR, see."""
    template = translate(
        TEMPLATE_PATH, region="us-east-1", account_id="123456789012", stack_name="sar", parameters={}
    )
    return dict(template["Resources"])


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


def test_every_resource_type_the_template_deploys_is_one_sar_supports(
    deployed: dict[str, dict[str, Any]],
) -> None:
    types = {node["Type"] for node in deployed.values()}
    assert types - SAR_SUPPORTED_RESOURCES == SAR_UNSUPPORTED_IN_USE


def sar_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### From the Serverless Application Repository")
    return readme[start : readme.index("### Nested in a team's own stack")]


def test_the_readme_names_the_unsupported_types_and_what_to_do() -> None:
    section = sar_section()
    for resource_type in SAR_UNSUPPORTED_IN_USE:
        assert resource_type in section, resource_type
    assert "deploy from source" in section


def test_the_readme_names_every_capability_a_consumer_must_acknowledge(
    deployed: dict[str, dict[str, Any]],
) -> None:
    types = {node["Type"] for node in deployed.values()}
    needed = set()
    if types & NEEDS_IAM:
        needed.add("CAPABILITY_IAM")
    if types & NEEDS_RESOURCE_POLICY:
        needed.add("CAPABILITY_RESOURCE_POLICY")
    if types & {"AWS::Serverless::Application", "AWS::CloudFormation::Stack"}:
        needed.add("CAPABILITY_AUTO_EXPAND")
    assert needed == {"CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"}
    for capability in needed:
        assert capability in sar_section(), capability


def test_no_iam_resource_has_a_custom_name(deployed: dict[str, dict[str, Any]]) -> None:
    """A named role or managed policy would make a consumer acknowledge CAPABILITY_NAMED_IAM."""
    name_of = {
        "AWS::IAM::Role": "RoleName",
        "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
        "AWS::IAM::Group": "GroupName",
        "AWS::IAM::InstanceProfile": "InstanceProfileName",
    }
    named = [
        logical_id
        for logical_id, node in deployed.items()
        if name_of.get(node["Type"]) in node.get("Properties", {})
    ]
    assert not named


def test_the_home_page_and_source_urls_are_the_packages(application: dict[str, Any]) -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert application["HomePageUrl"] == urls["Homepage"]
    assert application["SourceCodeUrl"] == urls["Source"]
    assert all(url.startswith("https://") for url in (urls["Homepage"], urls["Source"]))
