"""The moto DynamoDB fixtures, for the state tests spread over backends/ and the wiring."""

from tests.meshalert.state.conftest import aws_env, dynamodb_client  # noqa: F401
