"""API.Auth.Users: Bacalhau's users, read and checked as a node starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
import pytest

from bacalhau.config import (
    ApiUserConfig,
    NodeConfig,
    describe_key,
    effective_settings,
    is_bcrypt_hash,
    load_config,
    validate_value,
)
from bacalhau.config._key_registry import KeyStatus
from bacalhau.errors import InvalidRequest

HASH = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4)).decode()
KEY = "2E8D7F5B3A9C41608D2E6B7F4A5C3D9E"
ALL = [{"Actions": ["*"]}]


def users(*items: dict[str, Any]) -> tuple[ApiUserConfig, ...]:
    return NodeConfig().with_overrides({"API.Auth.Users": list(items)}).api_users


def refused(*items: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        users(*items)
    return caught.value


def test_users_are_mapped_with_their_capabilities() -> None:
    assert describe_key("API.Auth.Users").status is KeyStatus.MAPPED
    assert describe_key("API.Auth.Users").field == "api_users"
    found = users(
        {
            "Alias": "Job Manager",
            "Username": "jobmanager",
            "Password": HASH,
            "Capabilities": [{"Actions": ["read:job", "write:job"]}, {"Actions": ["read:node"]}],
        },
        # Keys in any case, as Bacalhau's YAML decoding reads them.
        {"alias": "CI", "apikey": KEY, "capabilities": [{"actions": ["*"]}]},
        {"Username": "reader", "Password": "readerPassword", "Capabilities": {"Actions": "read:*"}},
    )
    assert [u.name for u in found] == ["Job Manager", "CI", "reader"]
    assert found[0].actions == ("read:job", "write:job", "read:node")
    assert found[1].api_key == KEY and found[1].actions == ("*",)
    assert not found[0].plain_text_password and found[2].plain_text_password
    assert ApiUserConfig(api_key=KEY).name == "API key ending in ...C3D9E"


def test_users_come_from_a_config_file_in_sections_and_from_c_text(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "API:\n  Auth:\n    Users:\n"
        f"      - Username: admin\n        Password: '{HASH}'\n"
        "        Capabilities:\n          - Actions: ['*']\n"
    )
    cfg = load_config({"data_dir": str(tmp_path / "d")}, config_files=[config])
    assert [u.username for u in cfg.api_users] == ["admin"]
    text = f'[{{"APIKey": "{KEY}", "Capabilities": [{{"Actions": ["read:job"]}}]}}]'
    cfg = load_config({"data_dir": str(tmp_path / "d")}, config_values={"API.Auth.Users": text})
    assert cfg.api_users[0].api_key == KEY
    # Our own spelling of the key sets the same field.
    assert NodeConfig().with_overrides({"api_users": text}).api_users == cfg.api_users


def test_an_error_in_a_file_names_the_file_the_user_and_the_field(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "API:\n  Auth:\n    Users:\n"
        "      - Username: admin\n        Password: '$2a$10$cutoff'\n"
        "        Capabilities: [{Actions: ['*']}]\n"
    )
    with pytest.raises(InvalidRequest) as caught:
        load_config({"data_dir": str(tmp_path / "d")}, config_files=[config])
    err = caught.value
    assert str(config) in err.message and "not a valid bcrypt hash" in err.message
    assert err.details == {"Field": "API.Auth.Users[0].Password"}
    assert "hash-password" in err.hint


@pytest.mark.parametrize(
    ("items", "message", "field"),
    [
        (
            [
                {"Username": "alice", "Password": HASH, "Capabilities": [{"Actions": ["*"]}]},
                {"Username": "ALICE", "Password": HASH, "Capabilities": [{"Actions": ["*"]}]},
            ],
            "names the username 'ALICE' twice",
            "API.Auth.Users[1].Username",
        ),
        (
            [
                {"Alias": "ops", "APIKey": KEY, "Capabilities": [{"Actions": ["*"]}]},
                {"Alias": "Ops", "APIKey": KEY + "x", "Capabilities": [{"Actions": ["*"]}]},
            ],
            "names the alias 'Ops' twice",
            "API.Auth.Users[1].Alias",
        ),
        (
            [
                {"APIKey": KEY, "Capabilities": [{"Actions": ["*"]}]},
                {"APIKey": KEY, "Capabilities": [{"Actions": ["read:*"]}]},
            ],
            "holds the API key of API.Auth.Users[1]",
            "API.Auth.Users[1].APIKey",
        ),
        (
            [{"Alias": "nobody", "Capabilities": [{"Actions": ["*"]}]}],
            "neither a username/password nor an API key",
            "API.Auth.Users[0]",
        ),
        (
            [{"Username": "alice", "Capabilities": [{"Actions": ["*"]}]}],
            "(it lacks a Password)",
            "API.Auth.Users[0].Password",
        ),
        (
            [{"Username": "a", "Password": HASH, "APIKey": KEY, "Capabilities": ALL}],
            "both a username/password and an API key",
            "API.Auth.Users[0]",
        ),
        (
            [{"Username": "alice", "Password": HASH[:-1], "Capabilities": [{"Actions": ["*"]}]}],
            "not a valid bcrypt hash",
            "API.Auth.Users[0].Password",
        ),
        (
            [
                {
                    "Username": "alice",
                    "Password": "$2b$99$" + HASH[7:],
                    "Capabilities": [{"Actions": ["*"]}],
                }
            ],
            "not a valid bcrypt hash",
            "API.Auth.Users[0].Password",
        ),
        (
            [{"Username": "alice", "Password": "short", "Capabilities": [{"Actions": ["*"]}]}],
            "must be 10 to 255 characters long",
            "API.Auth.Users[0].Password",
        ),
        (
            [{"APIKey": "tooshort", "Capabilities": [{"Actions": ["*"]}]}],
            "must be 20 to 255 characters long",
            "API.Auth.Users[0].APIKey",
        ),
        (
            [{"Username": "al-ice", "Password": HASH, "Capabilities": [{"Actions": ["*"]}]}],
            "must hold only letters and digits",
            "API.Auth.Users[0].Username",
        ),
        (
            [{"Username": "alice", "Password": HASH}],
            "has no capabilities",
            "API.Auth.Users[0].Capabilities",
        ),
        (
            [{"Username": "alice", "Password": HASH, "Capabilities": [{"Actions": ["read:jobs"]}]}],
            "unknown action 'read:jobs'",
            "API.Auth.Users[0].Capabilities[0].Actions",
        ),
        (
            [
                {
                    "Username": "alice",
                    "Password": HASH,
                    "Capabilities": [{"Actions": ["read:job"], "Resources": ["jobs"]}],
                }
            ],
            "unknown keys: resources",
            "API.Auth.Users[0].Capabilities[0]",
        ),
        (
            [{"Username": "alice", "Passwd": HASH, "Capabilities": [{"Actions": ["*"]}]}],
            "unknown key 'Passwd'",
            "API.Auth.Users[0].Passwd",
        ),
    ],
)
def test_users_are_checked_as_the_node_starts(
    items: list[dict[str, Any]], message: str, field: str
) -> None:
    err = refused(*items)
    assert message in err.message
    assert err.details == {"Field": field}


def test_an_action_in_the_wrong_case_is_named_with_the_right_one() -> None:
    err = refused({"APIKey": KEY, "Capabilities": [{"Actions": ["Read:Job"]}]})
    assert "write it 'read:job'" in err.hint
    err = refused({"APIKey": KEY, "Capabilities": [{"Actions": ["write:nodes"]}]})
    assert "did you mean 'write:node'?" in err.hint


def test_bcrypt_hashes_are_recognised_whole() -> None:
    assert is_bcrypt_hash(HASH)
    assert is_bcrypt_hash("$2y$" + HASH[4:]) and is_bcrypt_hash("$2a$" + HASH[4:])
    assert not is_bcrypt_hash(HASH[:-1]) and not is_bcrypt_hash(HASH + "x")
    assert not is_bcrypt_hash("$2x$" + HASH[4:]) and not is_bcrypt_hash("plain password")


def test_config_list_and_set_keep_secrets_out_of_sight() -> None:
    cfg = NodeConfig().with_overrides(
        {
            "API.Auth.Users": [
                {"Username": "alice", "Password": HASH, "Capabilities": [{"Actions": ["*"]}]},
                {"Username": "bob", "Password": "plainpassword", "Capabilities": ALL},
                {"Alias": "ci", "APIKey": KEY, "Capabilities": [{"Actions": ["read:*"]}]},
            ]
        }
    )
    shown = effective_settings(cfg)
    assert shown["API.Auth.Users"] == shown["api_users"]
    alice, bob, ci = shown["API.Auth.Users"]
    assert alice["Password"] == HASH  # a hash is no secret, and says which one is in effect
    assert bob["Password"] == "<redacted>" and ci["APIKey"] == "<redacted>"
    assert ci["Capabilities"] == [{"Actions": ["read:*"]}]
    # `config set` writes what it was given, checked.
    written = validate_value(
        "API.Auth.Users", f"[{{APIKey: {KEY}, Capabilities: [{{Actions: [read:job]}}]}}]"
    )
    assert written == [{"APIKey": KEY, "Capabilities": [{"Actions": ["read:job"]}]}]


def test_no_users_leaves_the_api_open() -> None:
    assert NodeConfig().api_users == ()
    assert NodeConfig().with_overrides({"API.Auth.Users": []}).api_users == ()
