"""Fixed users for trains-server's apiserver.conf: parsing that never echoes a password."""

from __future__ import annotations

import pytest

from trains_nodeprep.errors import UsageError
from trains_nodeprep.server_config import parse_fixed_users, render_apiserver_conf


def test_parses_users_and_skips_comments():
    users = parse_fixed_users("# team\njane:S3c:ret:Jane Doe\n\nbob:pw:\n", "users.txt")

    assert users == [("jane", "S3c:ret", "Jane Doe"), ("bob", "pw", "bob")]


def test_a_bad_line_names_the_line_but_not_its_content():
    with pytest.raises(UsageError) as error:
        parse_fixed_users("jane\ntopsecretpw\n", "users.txt")

    assert "users.txt line 1" in str(error.value) and "topsecretpw" not in str(error.value)


def test_render_quotes_every_value():
    text = render_apiserver_conf([("jane", 'p"w\\x', "Jane } Doe")]).decode()

    assert 'username: "jane", password: "p\\"w\\\\x", name: "Jane } Doe"' in text
    assert "enabled: true" in text
