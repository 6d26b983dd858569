from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient



def sign(client: FlaskClient, token: str | None, name: str = "Ada", message: str = "Hello there"):
    data = {"name": name, "message": message}
    if token is not None:
        data["csrf_token"] = token
    return client.post("/sign", data=data)


def test_index_shows_form_and_token(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<form id="sign" method="post" action="/sign">' in html
    assert 'name="name"' in html and 'name="message"' in html
    assert "/static/style.css" in html
    assert 'id="who"' not in html
    with client.session_transaction() as session:
        token = session["csrf"]
    assert f'name="csrf_token" value="{token}"' in html
    # the token is kept for the session
    again = client.get("/").get_data(as_text=True)
    assert f'name="csrf_token" value="{token}"' in again


def test_sign_writes_and_redirects_to_the_entry(client: FlaskClient, token: str) -> None:
    response = sign(client, token, message="Hi <b>there</b>")
    assert response.status_code == 303
    assert response.headers["Location"] == "/entries/1"

    page = client.get("/entries/1")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<p id="name">Ada</p>' in html
    assert '<p id="message">Hi &lt;b&gt;there&lt;/b&gt;</p>' in html  # autoescaped


def test_entries_newest_first(client: FlaskClient, token: str) -> None:
    assert sign(client, token, message="older").status_code == 303
    assert sign(client, token, message="newer").status_code == 303
    html = client.get("/").get_data(as_text=True)
    assert html.index("newer") < html.index("older")
    assert re.search(r'href="/entries/2"', html)


def test_signed_in_as_after_signing(client: FlaskClient, token: str) -> None:
    assert sign(client, token, name="Grace").status_code == 303
    html = client.get("/").get_data(as_text=True)
    assert '<p id="who">Signed in as Grace</p>' in html
    with client.session_transaction() as session:
        assert session["name"] == "Grace"


@pytest.mark.parametrize("bad", [None, "", "not-the-token"])
def test_wrong_or_missing_token_is_400(client: FlaskClient, token: str, bad: str | None) -> None:
    assert sign(client, bad).status_code == 400
    assert sign(client, (bad or "") + "é").status_code == 400  # non-ASCII input too
    assert client.get("/entries/1").status_code == 404


def test_no_session_is_400(app, token: str) -> None:
    fresh = app.test_client()  # a token from another session, and no session cookie
    assert sign(fresh, token).status_code == 400


def test_unreadable_session_is_400(app, client: FlaskClient, token: str) -> None:
    app.config["SECRET_KEY"] = "another-key"  # the server can no longer read the cookie
    assert sign(client, token).status_code == 400


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "hi"), ("Ada", ""), ("   ", "hi"), ("Ada", "  \n "), ("x" * 101, "hi"), ("Ada", "x" * 1001)],
)
def test_invalid_fields_are_400(client: FlaskClient, token: str, name: str, message: str) -> None:
    assert sign(client, token, name=name, message=message).status_code == 400
    assert client.get("/entries/1").status_code == 404


def test_longest_fields_are_accepted(client: FlaskClient, token: str) -> None:
    assert sign(client, token, name="x" * 100, message="y" * 1000).status_code == 303


def test_unknown_entry_is_404(client: FlaskClient) -> None:
    assert client.get("/entries/42").status_code == 404
    assert client.get("/entries/abc").status_code == 404
