"""The team's stack (`make server`): PostgreSQL, SeaweedFS's S3 and `mlflow server`, started,
secured and stopped on 127.0.0.1 (team.py; SeaweedFS's security configuration in
seaweed_security.py). A tool beside the pipeline: no stage imports it."""
