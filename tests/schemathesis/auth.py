"""Schemathesis hook for tests/api/schemathesis.rs: every generated Management API request carries
a Management API token from the server's own token endpoint, fetched again whenever one is refused
(a generated request may rotate or delete the signing keys, retiring the key that signed it), so
that operations run after such a request are still tested with a valid token.

The end-user APIs (Experience, Account, verification records) take other credentials (the
interaction cookie, an end user's access token) that a generated request cannot obtain: they get
none, and are exercised for their 4xx answers and shapes."""

import os

import requests
import schemathesis

END_USER_APIS = r"^/api/(experience|my-account|verifications)(/|$)"


@schemathesis.auth(refresh_interval=300, retry_on=[401]).skip_for(path_regex=END_USER_APIS)
class ManagementToken:
    def get(self, case, context):
        response = requests.post(
            os.environ["IDLEDGER_TOKEN_URL"],
            auth=(os.environ["IDLEDGER_CLIENT_ID"], os.environ["IDLEDGER_CLIENT_SECRET"]),
            data={
                "grant_type": "client_credentials",
                "resource": os.environ["IDLEDGER_RESOURCE"],
                "scope": "all",
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
