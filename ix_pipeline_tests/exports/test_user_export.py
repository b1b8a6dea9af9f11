"""The user export (JSON Lines, /users/export/ids shape) and the profile lists, on the
hand-built world."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import duckdb
import pytest

from ix_pipeline.exports.profiles import profile_lists
from ix_pipeline.exports.user_export import export_users, resolve_users
from ix_pipeline.store.hot import hot_connection
from ix_pipeline_tests.exports.world import EVENTS, USERS, build_store, copy_store, mark_expired

U1 = {
    "external_id": "ext_1",
    "braze_id": "u1",
    "campaigns_received": [
        {
            "name": "Spring sale",
            "api_campaign_id": "cmp_a",
            "last_received": "2025-03-02T10:00:00Z",
            "engaged": {"opened_email": True, "clicked_email": True},
            "converted": True,
            "multiple_converted": {
                "Primary Conversion Event - A": True,
                "Conversion Event - B": True,
            },
            "variation_name": "Variant 1",
            "variation_api_id": "var_a1",
            "in_control": False,
        },
        {
            # Not multivariate: no variation keys at all.
            "name": "Welcome push",
            "api_campaign_id": "cmp_b",
            "last_received": "2025-03-21T09:00:00Z",
            "engaged": {"opened_push": True},
            "converted": False,
            "multiple_converted": {},
        },
    ],
    "canvases_received": [
        {
            "name": "Journey",
            "api_canvas_id": "cnv_x",
            "last_received_message": "2025-03-04T09:30:00Z",
            "last_entered": "2025-03-04T09:00:00Z",
            "last_exited": None,
            "variation_name": "Path 1",
            "in_control": False,
            "last_entered_control_at": None,
            "steps_received": [
                {"name": "Email 1", "api_canvas_step_id": "stp_1",
                 "last_received": "2025-03-04T09:30:00Z"},
            ],
        }
    ],
}  # fmt: skip
U3 = {
    "external_id": "ext_3",
    "braze_id": "u3",
    "campaigns_received": [
        {
            "name": "Spring sale",
            "api_campaign_id": "cmp_a",
            "last_received": None,
            "engaged": {},
            "converted": True,
            "multiple_converted": {"Primary Conversion Event - A": True},
            "variation_name": "Control",
            "variation_api_id": "ctl_a",
            "in_control": True,
        }
    ],
    "canvases_received": [],
}
U6_CAMPAIGNS = [
    {
        "name": "In-app promo",
        "api_campaign_id": "cmp_c",
        "last_received": "2025-03-06T08:00:00Z",
        "engaged": {"clicked_triggered_in_app_message": True},
        "converted": False,
        "multiple_converted": {},
    }
]
U7_CANVASES: list[dict[str, t.Any]] = [
    {
        "name": "Journey",
        "api_canvas_id": "cnv_x",
        "last_received_message": None,
        "last_entered": "2025-03-04T09:00:00Z",
        "last_exited": None,
        "variation_name": "Control",
        "in_control": True,
        "last_entered_control_at": "2025-03-04T09:00:00Z",
        "steps_received": [],
    }
]
# Legacy-deleted data (u8's cmp_old receipt) never shows; u9 has no item at all.
U8 = {"external_id": "ext_8", "braze_id": "u8", "campaigns_received": [], "canvases_received": []}
U9: dict[str, t.Any] = {
    "external_id": None,
    "braze_id": "u9",
    "campaigns_received": [],
    "canvases_received": [],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("world"))


@pytest.fixture
def con(store: Path) -> t.Iterator[duckdb.DuckDBPyConnection]:
    with hot_connection(store, read_only=True) as connection:
        yield connection


def read_lines(path: Path) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_all_users(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "users.jsonl"
    assert export_users(con, out) == len(USERS)
    docs = read_lines(out)
    assert [d["braze_id"] for d in docs] == list(USERS)
    by_id = {d["braze_id"]: d for d in docs}
    assert by_id["u1"] == U1
    assert by_id["u3"] == U3
    assert by_id["u6"]["campaigns_received"] == U6_CAMPAIGNS
    assert by_id["u7"]["canvases_received"] == U7_CANVASES
    assert by_id["u8"] == U8
    assert by_id["u9"] == U9
    # Key order follows the platform's documents.
    assert list(docs[0]) == ["external_id", "braze_id", "campaigns_received", "canvases_received"]
    assert not list(tmp_path.glob("**/*.partial"))


def test_batch_size_does_not_change_the_output(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    export_users(con, tmp_path / "a.jsonl")
    export_users(con, tmp_path / "b.jsonl", batch_size=2)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


@pytest.mark.parametrize("users_per_chunk", [1, 2, 4, 8, 100])
def test_chunking_does_not_change_the_output(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, users_per_chunk: int
) -> None:
    export_users(con, tmp_path / "a.jsonl")
    assert export_users(con, tmp_path / "b.jsonl", users_per_chunk=users_per_chunk) == 9
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_select_users_by_user_id_or_external_id(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    out = tmp_path / "some.jsonl"
    assert export_users(con, out, user_ids=["u1", "ext_3", "nobody"]) == 2
    assert read_lines(out) == [U1, U3]
    assert export_users(con, out, user_ids=[]) == 0
    assert out.read_text() == ""
    assert resolve_users(con, ["u1", "ext_3", "nobody"]) == {
        "u1": "u1",
        "ext_3": "u3",
        "nobody": None,
    }


def test_export_hides_expired_items(store: Path, tmp_path: Path) -> None:
    db = copy_store(store, tmp_path / "db")
    with hot_connection(db) as con:
        mark_expired(con, "cmp_a", delete_rows=False)
        mark_expired(con, "cnv_x", delete_rows=False)
        export_users(con, tmp_path / "u.jsonl", user_ids=["u1", "u3", "u7"])
    docs = read_lines(tmp_path / "u.jsonl")
    assert docs[0]["campaigns_received"] == [U1["campaigns_received"][1]]
    assert docs[0]["canvases_received"] == []
    assert docs[1] == {**U3, "campaigns_received": []}
    assert docs[2]["canvases_received"] == []


def test_profile_lists(con: duckdb.DuckDBPyConnection) -> None:
    assert profile_lists(con, "u1") == {
        "campaigns_received": [
            {"campaign_id": "cmp_b", "name": "Welcome push", "last_received": "2025-03-21T09:00:00Z"},
            {"campaign_id": "cmp_a", "name": "Spring sale", "last_received": "2025-03-02T10:00:00Z"},
        ],
        "canvas_messages_received": [
            {"canvas_id": "cnv_x", "canvas_name": "Journey", "step_id": "stp_1",
             "step_name": "Email 1", "last_received": "2025-03-04T09:30:00Z"},
        ],
    }  # fmt: skip
    # Control-group users received nothing; the external id works too.
    assert profile_lists(con, "ext_3") == {"campaigns_received": [], "canvas_messages_received": []}
    assert profile_lists(con, "u8") == {"campaigns_received": [], "canvas_messages_received": []}
    with pytest.raises(LookupError, match="nobody"):
        profile_lists(con, "nobody")


def test_profile_lists_hide_expired_items(store: Path, tmp_path: Path) -> None:
    db = copy_store(store, tmp_path)
    with hot_connection(db) as con:
        mark_expired(con, "cmp_b", delete_rows=False)
        lists = profile_lists(con, "u1")
    assert [c["campaign_id"] for c in lists["campaigns_received"]] == ["cmp_a"]
    assert len(lists["canvas_messages_received"]) == 1


def test_names_fall_back_to_the_events(store: Path, tmp_path: Path) -> None:
    """Items and components the catalog does not name take the latest name of their events."""
    db = copy_store(store, tmp_path / "db")
    with hot_connection(db) as con:
        con.execute("UPDATE catalog_items SET name = NULL")
        con.execute("UPDATE item_components SET name = NULL WHERE component_id <> 'ctl_a'")
        export_users(con, tmp_path / "u.jsonl", user_ids=["u1"])
    (u1,) = read_lines(tmp_path / "u.jsonl")
    # The world's campaign events carry no message_variation_name: nothing to fall back to.
    expected = json.loads(json.dumps(U1))
    expected["campaigns_received"][0]["variation_name"] = None
    assert u1 == expected


def test_write_lines_handles_slices(tmp_path: Path) -> None:
    import io

    import pyarrow as pa

    from ix_pipeline.exports.user_export import _write_lines

    lines = pa.array(["a\n", "bé\n", "c\n", "d\n"])
    for array, expected in ((lines, "a\nbé\nc\nd\n"), (lines.slice(1, 2), "bé\nc\n"),
                            (lines.slice(3), "d\n"), (lines.slice(4), "")):  # fmt: skip
        out = io.BytesIO()
        assert _write_lines(out, array) == len(array)
        assert out.getvalue().decode("utf-8") == expected


def test_a_name_from_the_events_does_not_depend_on_which_users_are_exported(
    tmp_path: Path,
) -> None:
    # cmp_z is not in the catalog: its name is the latest seen in its events, u9's.
    send = "users.messages.email.Send"
    renamed = (
        ("z1", "u1", "2025-03-01T10:00", send,
         {"campaign_id": "cmp_z", "campaign_name": "Old name", "message_variation_id": "var_z"}),
        ("z2", "u9", "2025-03-20T10:00", send,
         {"campaign_id": "cmp_z", "campaign_name": "New name", "message_variation_id": "var_z"}),
    )  # fmt: skip
    db = build_store(tmp_path / "world", events=EVENTS + renamed)

    def names_of_cmp_z(path: Path) -> dict[str, str]:
        return {
            line["braze_id"]: c["name"]
            for line in read_lines(path)
            for c in line["campaigns_received"]
            if c["api_campaign_id"] == "cmp_z"
        }

    with hot_connection(db, read_only=True) as con:
        export_users(con, tmp_path / "whole.jsonl")
        export_users(con, tmp_path / "chunked.jsonl", users_per_chunk=4)
        export_users(con, tmp_path / "u1.jsonl", user_ids=["u1"])
    assert names_of_cmp_z(tmp_path / "whole.jsonl") == {"u1": "New name", "u9": "New name"}
    assert (tmp_path / "chunked.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert names_of_cmp_z(tmp_path / "u1.jsonl") == {"u1": "New name"}
    with hot_connection(db, read_only=True) as con:
        [(name,)] = [
            (c["name"],)
            for c in profile_lists(con, "u1")["campaigns_received"]
            if c["campaign_id"] == "cmp_z"
        ]
    assert name == "New name"  # the profile list agrees with the export
