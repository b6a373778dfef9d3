"""CIDs: text and binary forms, and the fixed vectors of the UnixFS reference."""

from __future__ import annotations

import pytest

from bacalhau.errors import InvalidCID, error_from_code
from bacalhau.storage.cid import CID, DAG_PB, RAW, Importer, ImportOptions

# Published values (UnixFS spec, Kubo): `hello world\n`, the empty file, the empty directory.
VECTORS = [
    (ImportOptions(), b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
    (
        ImportOptions(cid_version=1),
        b"hello world\n",
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
    ),
    (ImportOptions(), b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
    (
        ImportOptions(cid_version=1, raw_leaves=False),
        b"",
        "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y",
    ),
]


@pytest.mark.parametrize(("options", "content", "expected"), VECTORS)
def test_known_cids(options: ImportOptions, content: bytes, expected: str) -> None:
    assert str(Importer(None, options).add_bytes(content).cid) == expected


def test_empty_directory() -> None:
    assert str(Importer().add_directory_links([]).cid) == (
        "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    )


@pytest.mark.parametrize(
    "text",
    [
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
        "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y",
    ],
)
def test_text_and_binary_forms_round_trip(text: str) -> None:
    cid = CID.parse(text)
    assert str(cid) == text and CID(cid.binary) == cid and hash(cid) == hash(CID.parse(text))
    assert cid.codec in (DAG_PB, RAW) and len(cid.digest) == 32


def test_base58_v1_and_upper_case_base32_parse() -> None:
    cid = CID.parse("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    assert CID.parse("B" + str(cid)[1:].upper()) == cid


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O0",  # not base58
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei",  # truncated
        # a blake2b-256 CIDv1: valid, but not something this store can verify
        "bafk2bzacea3xrlkqofofz7s5jmufkdhh46g4n6iom6mb3kfk2mlqeb3ymnhwu",
    ],
)
def test_malformed_or_unverifiable_cids_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidCID) as caught:
        CID.parse(text, field="Inputs[0].Source.Params.CID")
    err = caught.value
    assert err.code == "InvalidCID" and err.http_status == 400 and err.hint
    assert err.details["Field"] == "Inputs[0].Source.Params.CID"
    back = error_from_code(err.code, err.message, hint=err.hint, details=err.details)
    assert isinstance(back, InvalidCID) and back.field == err.field
