"""moto, set up the way the walship end-to-end tests use it (run by the
python of moto's venv; see emulators.rs).

  walship_moto.py serve HOST PORT
      moto_server, with one fix: AssumeRoleWithWebIdentity is an unsigned
      call on AWS, but moto 5.2.5 with IAM auth switched on demands a
      signature for it (and fails with 500 when there is none). Every other
      request stays verified.
  walship_moto.py bootstrap ENDPOINT BUCKET
      While auth is still off: an IAM user and a role `walship`, both allowed
      everything, an access key for the user, and BUCKET. Then switches IAM
      auth on (every request's SigV4 signature is checked from then on).
      Prints: ACCESS_KEY_ID SECRET_ACCESS_KEY
  walship_moto.py assume-role ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY ROLE_ARN
      Temporary credentials from STS AssumeRole (moto registers them, so S3
      checks the session token as well).
      Prints: ACCESS_KEY_ID SECRET_ACCESS_KEY SESSION_TOKEN
"""

import json
import sys
import urllib.request

ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
TRUST_ANYONE = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "*", "Federated": "*"},
                "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"],
            }
        ],
    }
)
UNSIGNED_ACTIONS = ("AssumeRoleWithWebIdentity", "AssumeRoleWithSAML")


def serve(host, port):
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.server import main

    checked = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        if "Authorization" not in self.headers and self._get_action() in UNSIGNED_ACTIONS:
            return
        return checked(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate
    main(["-H", host, "-p", port])


def client(service, endpoint, key, secret, token=None):
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def bootstrap(endpoint, bucket):
    iam = client("iam", endpoint, "bootstrap", "bootstrap")
    iam.create_user(UserName="walship")
    iam.put_user_policy(UserName="walship", PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName="walship")["AccessKey"]
    iam.create_role(RoleName="walship", AssumeRolePolicyDocument=TRUST_ANYONE)
    iam.put_role_policy(RoleName="walship", PolicyName="all", PolicyDocument=ALLOW_ALL)
    client("s3", endpoint, "bootstrap", "bootstrap").create_bucket(Bucket=bucket)
    # Content-Type matters: moto reads the body as the count of requests
    # still let through unauthenticated.
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request).read()
    print(key["AccessKeyId"], key["SecretAccessKey"])


def assume_role(endpoint, key, secret, role_arn):
    sts = client("sts", endpoint, key, secret)
    c = sts.assume_role(RoleArn=role_arn, RoleSessionName="walship-e2e")["Credentials"]
    print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"serve": serve, "bootstrap": bootstrap, "assume-role": assume_role}[command](*args)
