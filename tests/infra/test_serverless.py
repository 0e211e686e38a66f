"""serverless.yml: package it offline with osls, lint the template, create it in moto.

The packaging runs in a temporary copy of the files the package needs, so a concurrent
edit in the work tree never leaves a half-written .serverless/ behind.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
STAGE = "test"
REGION = "us-east-1"
ALERT_CLASSES = ("latency", "failures", "endpoints", "retries")
# EventBridge accepts rate(1 minute) (singular) or rate(N minutes|hours|days) with N > 1.
# moto has no AWS::S3::BucketPolicy; the bucket policy (TLS-only) is not what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")
RATE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$")


@dataclass(frozen=True)
class Packaged:
    directory: Path
    create: dict[str, Any]
    update: dict[str, Any]
    zip_path: Path


def _osls_command() -> list[str]:
    npx = shutil.which("npx")
    if npx is None or shutil.which("node") is None:
        pytest.skip("node/npx not installed: cannot run osls (npm ci --prefix deploy)")
    if not (DEPLOY / "node_modules" / "osls").is_dir():
        pytest.fail("deploy/node_modules is missing: run `npm ci --prefix deploy` first")
    return [npx, "--no-install", "--prefix", str(DEPLOY), "osls"]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    command = _osls_command()
    work = tmp_path_factory.mktemp("sls")
    shutil.copy2(REPO / "serverless.yml", work / "serverless.yml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("meshalert", "functions"):
        shutil.copytree(REPO / package, work / package, ignore=ignore)
    (work / "deploy").mkdir()
    shutil.copy2(DEPLOY / "requirements-lambda.txt", work / "deploy" / "requirements-lambda.txt")
    env = {
        **os.environ,
        "MESHALERT_STORE": "influxdb2s://influx.example.com:8086?org=ops&bucket=linkerd",
        "MESHALERT_RUNBOOK_URL": "https://wiki.example.com/meshalert",
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    done = subprocess.run(
        [*command, "package", "--stage", STAGE, "--region", REGION],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, f"osls package failed:\n{done.stdout}\n{done.stderr}"
    out = work / ".serverless"
    return Packaged(
        directory=out,
        create=json.loads((out / "cloudformation-template-create-stack.json").read_text()),
        update=json.loads((out / "cloudformation-template-update-stack.json").read_text()),
        zip_path=out / "meshalert.zip",
    )


def _resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_accepts_packaged_template(packaged: Packaged) -> None:
    template = packaged.directory / "cloudformation-template-update-stack.json"
    matches = lint_file(template, config=ManualArgs(regions=[REGION]))
    assert [str(m) for m in matches] == []


def test_zip_holds_code_and_lambda_platform_wheels(packaged: Packaged) -> None:
    names = zipfile.ZipFile(packaged.zip_path).namelist()
    assert "meshalert/__init__.py" in names
    assert "meshalert/alerts/model.py" in names
    assert any(n.startswith("functions/") for n in names)
    # pydantic_core is compiled: only a cp312 manylinux build runs on python3.12 Lambda.
    assert any(
        re.match(r"pydantic_core/_pydantic_core\.cpython-312-x86_64-linux-gnu\.so$", n)
        for n in names
    ), "no cp312 pydantic_core in the package"
    for package in ("structlog/", "yaml/", "influxdb_client/"):
        assert any(n.startswith(package) for n in names), package
    leaked = [
        n
        for n in names
        if n.startswith(("tests/", "deploy/", "infra/", "node_modules/"))
        or n.startswith(("boto3/", "botocore/"))
        or "__pycache__" in n
    ]
    assert leaked == []


def test_lambda_requirements_mirror_pyproject() -> None:
    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", s.strip(), maxsplit=1)[0].lower() for s in specs}

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = (DEPLOY / "requirements-lambda.txt").read_text().splitlines()
    (excluded_line,) = [x for x in lines if x.startswith("# not-for-lambda:")]
    excluded = set(excluded_line.split(":", 1)[1].split())
    lambda_reqs = [x for x in lines if x.strip() and not x.lstrip().startswith("#")]
    assert names(lambda_reqs) == names(project["dependencies"]) - excluded, (
        "deploy/requirements-lambda.txt and pyproject.toml [project.dependencies] differ: "
        "add the new dependency there or name it on the not-for-lambda line"
    )


def test_functions_and_schedules_in_template(packaged: Packaged) -> None:
    functions = _resources_of_type(packaged.update, "AWS::Lambda::Function")
    by_name = {f["Properties"]["FunctionName"]: f["Properties"] for f in functions.values()}
    for alert_class in ALERT_CLASSES:
        props = by_name[f"meshalert-{STAGE}-evaluate-{alert_class}"]
        assert props["Handler"] == "functions/evaluate.handler"
        assert props["Runtime"] == "python3.12"
        assert 0 < props["Timeout"] < 60, "an evaluation must end before the next minute's"
    assert by_name[f"meshalert-{STAGE}-heartbeat"]["Handler"] == "functions/heartbeat.handler"

    rules = _resources_of_type(packaged.update, "AWS::Events::Rule")
    inputs = set()
    for rule in rules.values():
        expression = rule["Properties"]["ScheduleExpression"]
        assert RATE.match(expression), expression
        for target in rule["Properties"]["Targets"]:
            if (event := _scheduled_input(target)) is not None:
                inputs.add(event["alert_class"])
                assert event["time"] == SCHEDULED_TIME
    assert inputs == set(ALERT_CLASSES)


def test_routes_and_runbook_come_from_the_deploying_shell(packaged: Packaged) -> None:
    """README: per-stage MESHALERT_ROUTES and MESHALERT_RUNBOOK_URL are taken from the
    deploying shell; an unset one is passed empty (which the functions read as unset)."""
    functions = _resources_of_type(packaged.update, "AWS::Lambda::Function")
    assert len(functions) == 5
    for function in functions.values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["MESHALERT_RUNBOOK_URL"] == "https://wiki.example.com/meshalert"
        assert variables["MESHALERT_ROUTES"] == ""


SCHEDULED_TIME = "2026-11-25T18:31:00Z"


def _scheduled_input(target: dict[str, Any]) -> dict[str, Any] | None:
    """The event a schedule target hands the function, as EventBridge would render it for a
    scheduled event at SCHEDULED_TIME (an input transformer substitutes ``$.time``)."""
    transformer = target.get("InputTransformer")
    if transformer is None:
        return json.loads(target["Input"]) if "Input" in target else None
    assert transformer["InputPathsMap"] == {"time": "$.time"}
    rendered = transformer["InputTemplate"].replace("<time>", json.dumps(SCHEDULED_TIME))
    return json.loads(rendered)  # type: ignore[no-any-return]


def test_table_has_ttl_and_string_keys(packaged: Packaged) -> None:
    (table,) = _resources_of_type(packaged.update, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }


@pytest.fixture
def stack(packaged: Packaged) -> Iterator[dict[str, str]]:
    """Deploy like osls does: create-stack template, upload the zip, update-stack template."""
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    saved = {k: os.environ.get(k) for k in fake}
    os.environ.update(fake)
    try:
        with mock_aws():
            cf = boto3.client("cloudformation", region_name=REGION)
            caps: Any = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
            name = f"meshalert-{STAGE}"
            cf.create_stack(
                StackName=name, TemplateBody=json.dumps(packaged.create), Capabilities=caps
            )
            bucket = _physical_ids(cf, name)["ServerlessDeploymentBucket"]
            code = packaged.update["Resources"]["HeartbeatLambdaFunction"]["Properties"]["Code"]
            boto3.client("s3", region_name=REGION).put_object(
                Bucket=bucket, Key=code["S3Key"], Body=packaged.zip_path.read_bytes()
            )
            cf.update_stack(
                StackName=name, TemplateBody=json.dumps(packaged.update), Capabilities=caps
            )
            status = cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
            assert status == "UPDATE_COMPLETE"
            yield _physical_ids(cf, name)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _physical_ids(cf: Any, stack_name: str) -> dict[str, str]:
    summaries = cf.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    return {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries}


def test_stack_creates_in_moto(stack: dict[str, str]) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    table = ddb.describe_table(TableName=stack["StateTable"])["Table"]
    assert table["TableName"] == f"meshalert-{STAGE}-state"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    # moto's CloudFormation ignores TimeToLiveSpecification, hence the template test above.

    topic_arn = stack["AlertTopic"]
    assert topic_arn.endswith(f":meshalert-{STAGE}-alerts")
    boto3.client("sns", region_name=REGION).get_topic_attributes(TopicArn=topic_arn)

    events = boto3.client("events", region_name=REGION)
    class_inputs = {}
    for rule in events.list_rules()["Rules"]:
        assert rule["ScheduleExpression"] == "rate(1 minute)"
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            if (event := _scheduled_input(target)) is not None:
                fn = target["Arn"].rsplit(":", 1)[1]
                class_inputs[fn] = event["alert_class"]
    assert class_inputs == {f"meshalert-{STAGE}-evaluate-{c}": c for c in ALERT_CLASSES}

    lam = boto3.client("lambda", region_name=REGION)
    env = lam.get_function_configuration(FunctionName=f"meshalert-{STAGE}-evaluate-latency")[
        "Environment"
    ]["Variables"]
    assert env["MESHALERT_STATE"] == f"dynamodb://meshalert-{STAGE}-state"
    assert env["MESHALERT_SNS_TOPIC_ARN"] == topic_arn
    assert env["MESHALERT_RULES_SSM_PARAMETER"] == f"/meshalert/{STAGE}/rules"
    assert env["MESHALERT_SSM_PREFIX"] == f"/meshalert/{STAGE}/"
    assert env["MESHALERT_STORE"].startswith("influxdb2s://")


def test_iam_policy_names_every_action_and_resource(stack: dict[str, str]) -> None:
    iam = boto3.client("iam", region_name=REGION)
    role = stack["IamRoleLambdaExecution"]
    statements: list[dict[str, Any]] = []
    for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        if isinstance(document, str):
            # moto stores a CloudFormation-made inline policy as a Python repr, not JSON.
            document = ast.literal_eval(document)
        statements.extend(document["Statement"])
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert not any("*" in a for a in actions), actions
    assert {
        "sns:Publish",
        "ssm:GetParameter",
        "ssm:GetParameters",
        "kms:Decrypt",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
    } <= actions
    for statement in statements:
        for resource in _as_list(statement["Resource"]):
            assert resource != "*", statement
        if "sns:Publish" in _as_list(statement["Action"]):
            assert _as_list(statement["Resource"]) == [stack["AlertTopic"]]
        if any(a.startswith("dynamodb:") for a in _as_list(statement["Action"])):
            (arn,) = _as_list(statement["Resource"])
            assert arn.endswith(f":table/meshalert-{STAGE}-state")
        if "ssm:GetParameter" in _as_list(statement["Action"]):
            (arn,) = _as_list(statement["Resource"])
            assert arn == (f"arn:aws:ssm:{REGION}:123456789012:parameter/meshalert/{STAGE}/*")
        if "kms:Decrypt" in _as_list(statement["Action"]):
            assert statement["Condition"] == {
                "StringEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
            }


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
