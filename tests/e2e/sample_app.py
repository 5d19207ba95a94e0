"""The Flask sample of Logto's Python SDK guide, as an application developer would write it,
configured only by environment variables so the end-to-end test can point it at idledger.

    LOGTO_ENDPOINT     idledger's public endpoint (the issuer is <endpoint>/oidc)
    LOGTO_APP_ID       a Traditional application's id
    LOGTO_APP_SECRET   its secret
    PORT               where this app listens (http://localhost:<port>)
    INTERACTION_MODE   optional: "signUp" to open the registration page first
    FLASK_SECRET_KEY   optional: signs Flask's session cookie (random by default)

The SDK is used exactly as the guide shows; `/claims` is an addition for the test to read the
ID token's claims, and `/landing-page` the magic-link landing page of Logto's magic-link guide.
"""

import os
import secrets
from typing import Union
from urllib.parse import urlencode

from flask import Flask, jsonify, redirect, request, session
from logto import LogtoClient, LogtoConfig, Storage

PORT = int(os.environ["PORT"])
BASE_URL = f"http://localhost:{PORT}"
INTERACTION_MODE = os.environ.get("INTERACTION_MODE") or None

app = Flask(__name__)
app.secret_key = os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex(32)


class SessionStorage(Storage):
    def get(self, key: str) -> Union[str, None]:
        return session.get(key, None)

    def set(self, key: str, value: Union[str, None]) -> None:
        session[key] = value

    def delete(self, key: str) -> None:
        session.pop(key, None)


client = LogtoClient(
    LogtoConfig(
        endpoint=os.environ["LOGTO_ENDPOINT"],
        appId=os.environ["LOGTO_APP_ID"],
        appSecret=os.environ["LOGTO_APP_SECRET"],
    ),
    storage=SessionStorage(),
)


@app.route("/")
async def home():
    if client.isAuthenticated() is False:
        return "Not authenticated <a href='/sign-in'>Sign in</a>"
    return "Authenticated <a href='/sign-out'>Sign out</a>"


@app.route("/sign-in")
async def sign_in():
    # Get the sign-in URL and redirect the user to it
    return redirect(
        await client.signIn(
            redirectUri=f"{BASE_URL}/callback",
            interactionMode=INTERACTION_MODE,
        )
    )


@app.route("/landing-page")
async def landing_page():
    # Where an invitation email's magic link points:
    # /landing-page?type=registrationInvitation&token=<one-time token>&email=<invitee>
    token, email = request.args.get("token"), request.args.get("email")
    if not token or not email:
        return "Invalid invitation link", 400
    sign_in_url = await client.signIn(
        redirectUri=f"{BASE_URL}/callback",
        interactionMode=INTERACTION_MODE,
    )
    # signIn() takes no extra parameters, so the token and the email go onto the URL it returns.
    extra = urlencode({"one_time_token": token, "login_hint": email})
    return redirect(f"{sign_in_url}&{extra}")


@app.route("/callback")
async def callback():
    try:
        await client.handleSignInCallback(request.url)  # Handle a lot of stuff
        return redirect("/")  # Redirect the user to the home page after a successful sign-in
    except Exception as e:
        # Change this to your error handling logic
        return "Error: " + str(e)


@app.route("/sign-out")
async def sign_out():
    return redirect(
        # Redirect the user to the home page after a successful sign-out
        await client.signOut(postLogoutRedirectUri=f"{BASE_URL}/")
    )


@app.route("/claims")
async def claims():
    if client.isAuthenticated() is False:
        return jsonify({"error": "not authenticated"}), 401
    return jsonify(client.getIdTokenClaims().model_dump())


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, debug=False, use_reloader=False)
