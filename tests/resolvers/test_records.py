"""Records and edge codecs: what the store's data decodes to, and what writers encode."""

from __future__ import annotations

import dataclasses

import pytest

from resolvers import edge_data
from resolvers.posts import post_data
from resolvers.records import (
    Media,
    MediaKind,
    MediaStatus,
    Post,
    PostKind,
    PostStatus,
    Unknown,
    User,
    record_of,
    register_record,
)
from tao import Obj


def test_a_post_decodes_once_into_typed_fields() -> None:
    data = post_data(7, "hi #a", hashtags={"a": 11}, mentions=[8], location=9, media=[12, 13], kind="carousel")
    post = record_of(Obj(5, "POST", 2, 1000, 2000, data))
    assert isinstance(post, Post)
    assert (post.author, post.status, post.kind, post.hashtags, post.hashtag_ids, post.mentions, post.location,
            post.media) == (7, PostStatus.VISIBLE, PostKind.CAROUSEL, ("a",), (11,), (8,), 9, (12, 13))
    assert post.is_visible and post.time == data["published_at"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        post.author = 1  # type: ignore[misc]


def test_optional_fields_have_one_default() -> None:
    user = record_of(Obj(1, "USER", 1, 5, 5, {"username": "ada"}))
    assert isinstance(user, User)
    assert (user.full_name, user.bio, user.is_private, user.profile_picture_id, user.last_active) == ("", "", False,
                                                                                                     None, None)
    processing = record_of(Obj(2, "POST", 1, 5, 5, {"author": 1, "status": "processing"}))
    assert processing.status is PostStatus.PROCESSING and processing.time == 5 and not processing.is_visible


def test_data_a_codec_cannot_read_is_unknown_and_never_a_typed_record() -> None:
    for obj in (Obj(3, "MEDIA", 1, 5, 5, {"owner": 1, "kind": "photo", "status": "ready"}),  # no such kind
                Obj(4, "POST", 1, 5, 5, {"caption": "no author"}),
                Obj(5, "TEST_NODE", 1, 5, 5, {"x": 1})):
        rec = record_of(obj)
        assert isinstance(rec, Unknown) and rec.otype == obj.otype and dict(rec.data) == obj.data
    media = record_of(Obj(6, "MEDIA", 1, 5, 5,
                          {"owner": 1, "kind": "image", "status": "ready", "focal_point": [0.5, 1]}))
    assert isinstance(media, Media) and media.kind is MediaKind.IMAGE and media.status is MediaStatus.READY
    assert media.focal_point == (0.5, 1.0) and media.variants == ()


def test_a_domain_package_registers_its_own_record() -> None:
    @dataclasses.dataclass(frozen=True)
    class Thing:
        id: int

    register_record("TEST_NODE", lambda o: Thing(o.id))
    try:
        assert record_of(Obj(9, "TEST_NODE", 1, 5, 5, {})) == Thing(9)
    finally:
        register_record("TEST_NODE", Unknown.decode)


def test_edge_codecs_read_what_their_writers_write() -> None:
    post = record_of(Obj(5, "POST", 1, 5, 5, post_data(7, "", kind="video")))
    feed = edge_data.feed_edge_data(7, "video", shown=123)
    assert (edge_data.edge_author(feed), edge_data.edge_kind(feed), edge_data.edge_shown(feed)) == (7, "video", True)
    unseen = edge_data.feed_edge_data(7, None)
    assert (edge_data.edge_kind(unseen), edge_data.edge_shown(unseen)) == (None, False)
    like = edge_data.like_data(post)
    assert (edge_data.edge_author(like), edge_data.edge_kind(like)) == (7, "video")
    assert edge_data.edge_author({}) is None  # a like written before likes carried the author
    assert edge_data.edge_kind(edge_data.authored_data(post)) == "video"
    assert edge_data.message_sender(edge_data.message_edge_data(4)) == 4
    assert edge_data.reaction_emoji(edge_data.reaction_data("🔥")) == "🔥"
    state = edge_data.MemberState.decode(edge_data.member_data(read=(10, 3), declined=True))
    assert (state.read, state.declined) == ((10, 3), True)
    assert edge_data.MemberState.decode({}) == edge_data.MemberState((0, 0), False)
    assert edge_data.big_until(edge_data.big_account_data(None)) is None
    entry = edge_data.StreamEntry.decode(edge_data.stream_event_data("follow.new", {"user": 3}))
    assert (entry.kind, entry.ids) == ("follow.new", {"user": 3})
