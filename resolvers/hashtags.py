"""Hashtags and @mentions: parsing them out of text, and the HASHTAG objects they name.

Parsing is Unicode-aware (`#café`, `#東京`, `#हिन्दी`, `#தமிழ்` are tags: a word character in any
script, then word characters and combining marks, the vowel signs and viramas of Indic scripts),
case-insensitive and width-insensitive (a tag's name is its NFKC case fold, `normalize_hashtag`:
`#ｃａｔ` is `#cat`, and Turkish `İ` is `i`: `#İstanbul` is `#istanbul`), found in the text's NFKC
form (a full-width `＃` starts a tag too) and deduplicated in order of first appearance. Every
path to a tag by name (captions, story stickers, `hashtag(name:)`) goes through that one
function. A tag is 1 to
HASHTAG_MAX_LEN such characters, not all digits (`#1` is not a tag); a mention is `@` and a
username (ASCII, see `resolvers.accounts.USERNAME_RE`).

Invariant: exactly one HASHTAG object answers to a name. `hashtag_ids_for` finds names through
the `hashtag` unique key; a missing one is created and then claimed with `key_claim`, and the
loser of a race deletes its own object and takes the winner's, so concurrent first uses of a tag
converge on one id. A post is tagged by a TAGGED_WITH edge (post -> hashtag); the derived TAGS
list (hashtag -> post) is the tag's posts, newest first. A public post (visible, by a public
account) is also tagged by PUBLIC_TAGGED_WITH, and the count of PUBLIC_TAGS is `postCount`: the
same for every viewer, and never counting a post that only some may see. Who may see a hashtag
at all is `resolvers.privacy.listing_visible` (it must have a post the viewer may see).
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.accounts import USERNAME_RE, normalize_username
from resolvers.pagination import Cursor, Page, load_assoc_page, make_page
from resolvers.records import Hashtag, Post
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

HASHTAG_MAX_LEN = 100
HASHTAGS_MAX = 30   # per caption (Instagram's limit)
MENTIONS_MAX = 20   # per caption or comment
KEY_NS = "hashtag"

# `#` not preceded by a word character, `#` or `&` (so `a#b`, `##x` and `&#39;` are not tags),
# followed by a word character: where a tag starts. Where it ends is `_tag_end`: `\w` alone
# stopped at the first combining mark, so `#हिन्दी` was the tag `#ह` (every Hindi, Bengali or Tamil
# tag cut to its first letter or two, unrelated tags merged) (found by probe3).
_HASHTAG_START_RE = re.compile(r"(?<![\w#&])#(?=\w)")
# `@` not preceded by a word character or `@` (so e-mail addresses are not mentions).
_MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9._]+)")


def _is_tag_char(c: str) -> bool:
    """A word character (what `\\w` matches) or a combining mark (Unicode category M*)."""
    return c.isalnum() or c == "_" or unicodedata.category(c)[0] == "M"


def _tag_end(text: str, start: int) -> int:
    end = start
    while end < len(text) and _is_tag_char(text[end]):
        end += 1
    return end


def normalize_hashtag(name: str) -> str:
    """A tag's one name: NFKC, case folded, NFKC again (Unicode's NFKC_Casefold, as search's
    `text.normalize` folds), so `#ｃａｔ` (full-width), `#CAT` and `#cat` are one tag, and
    `#Straße` is `#strasse`. It was NFC and lower case until the fifteenth session: a full-width
    tag was a tag of its own that `hashtag(name: "cat")` never found. Idempotent."""
    # "İ" folds to "i" and a combining dot above (U+0307): `#İstanbul` is `#istanbul`, as
    # `#ISTANBUL` is, rather than a tag of its own (or, before probe3, a refused caption).
    if name.isascii():  # the common case: NFKC and case folding change nothing but case
        return name.lower()
    folded = unicodedata.normalize("NFKC", name).casefold().replace("i\u0307", "i")
    return unicodedata.normalize("NFKC", folded)


def is_hashtag_name(name: str) -> bool:
    return (0 < len(name) <= HASHTAG_MAX_LEN and (name[0].isalnum() or name[0] == "_")
            and all(_is_tag_char(c) for c in name) and not name.isdigit())


def parse_hashtags(text: str) -> list[str]:
    """The distinct tag names in `text`, lower-cased, in order of first appearance.

    Runs longer than HASHTAG_MAX_LEN are kept whole (the caller refuses them), so that a too-long
    tag is an error the author sees rather than a silently shorter tag.
    """
    out: dict[str, None] = {}
    # Tags are found in the text's NFKC form, so where one ends is judged on what its name will
    # be (`#a⑴` is `#a`, not a name holding "(1)"), and a full-width `＃` starts one too.
    text = unicodedata.normalize("NFKC", text)
    for m in _HASHTAG_START_RE.finditer(text):
        if m.start() > 0 and _is_tag_char(text[m.start() - 1]):
            continue  # after a combining mark: inside a word, as after a word character
        name = normalize_hashtag(text[m.end():_tag_end(text, m.end())])
        if not name.isdigit():
            out.setdefault(name, None)
    return list(out)


def parse_mentions(text: str) -> list[str]:
    """The distinct (lower-cased) usernames mentioned in `text`, in order; a trailing period
    ends the sentence, not the name (`thanks @ada.`)."""
    out: dict[str, None] = {}
    for m in _MENTION_RE.finditer(text):
        name = m.group(1).rstrip(".")
        if name and USERNAME_RE.match(name):
            out.setdefault(normalize_username(name), None)
    return list(out)


async def hashtag_ids_for(tao: Tao, names: list[str]) -> dict[str, int]:
    """name -> HASHTAG id for every name, creating the missing ones (see the module's invariant)."""
    if not names:
        return {}
    found = await tao.key_get_many(KEY_NS, names)
    for name in names:
        if name in found:
            continue
        new_id = await tao.obj_add("HASHTAG", {"name": name})
        if await tao.key_claim(KEY_NS, name, new_id):
            found[name] = new_id
        else:  # someone created it first: use theirs
            await tao.obj_delete(new_id)
            winner = (await tao.key_get_many(KEY_NS, [name])).get(name)
            if winner is None:
                raise RuntimeError(f"hashtag {name!r}: lost the claim but no holder is recorded")
            found[name] = winner
    return {n: found[n] for n in names}


async def get_hashtag(ctx: RequestContext, name: str) -> Hashtag | None:
    """The hashtag named `name` (with or without `#`, any case), or None."""
    name = normalize_hashtag(name).removeprefix("#")  # after NFKC: a full-width `＃` too
    if not is_hashtag_name(name):
        return None
    hashtag_id = (await ctx.tao.key_get_many(KEY_NS, [name])).get(name)
    if hashtag_id is None:
        return None
    obj = await privacy.load_visible_object(ctx, hashtag_id)
    return obj if isinstance(obj, Hashtag) else None


async def hashtag_post_count(ctx: RequestContext, hashtag_id: int) -> int:
    """Public posts tagged with it (see the module docstring)."""
    return await ctx.loaders.assoc_count_by_key.load((hashtag_id, "PUBLIC_TAGS"))


async def hashtag_posts(ctx: RequestContext, hashtag_id: int, first: int, after: Cursor | None) -> Page[Post]:
    """The tag's posts, newest first, minus those the viewer may not see (pages can be short)."""
    assocs, has_next = await load_assoc_page(ctx, hashtag_id, "TAGS", first, after)
    posts = await privacy.visible_posts(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {p.id: p for p in posts}, after)
