"""AWS SigV4 request signing for the Bedrock adapter, with botocore (an optional
extra, imported lazily: `pip install 'quotaroute[bedrock]'`). Explicit keys are used
as given; otherwise botocore's default credential chain (profiles, SSO, instance
roles). Every secret met is registered for redaction.
"""

from __future__ import annotations

from router.errors import AuthFailed, ConfigError, register_secret

__all__ = ["NEED_BOTOCORE", "sigv4_headers"]

NEED_BOTOCORE = "AWS SigV4 signing needs botocore: pip install 'quotaroute[bedrock]' (or pass a Bedrock API key)"


def sigv4_headers(url: str, body: bytes, headers: dict[str, str], *, region: str, access_key: str | None,
                  secret_key: str | None, session_token: str | None, provider: str,
                  service: str = "bedrock") -> dict[str, str]:
    """`headers` plus the SigV4 authorization headers for `POST url` with `body`."""
    try:
        from botocore.auth import SigV4Auth  # lazy: optional extra [bedrock] (botocore), import time
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError as e:
        raise ConfigError(NEED_BOTOCORE, key="bedrock") from e
    if access_key and secret_key:
        creds = Credentials(access_key, secret_key, session_token)
    else:  # profiles, SSO, instance roles: botocore's default chain (reads ~/.aws, may query IMDS)
        import botocore.session  # lazy: optional extra [bedrock]

        creds = botocore.session.Session().get_credentials()
        if creds is None:
            raise AuthFailed("no AWS credentials (pass aws_access_key_id/aws_secret_access_key or api_key, "
                             "or configure the AWS environment)", provider=provider)
        for s in (creds.secret_key, creds.token):
            register_secret(s)
    aws = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(creds, service, region).add_auth(aws)
    return dict(aws.headers.items())
