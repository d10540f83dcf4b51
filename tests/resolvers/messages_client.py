"""GraphQL helpers for the direct-message tests: send, read the inbox, and the raw store rows."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from tao import shard_of
from tao.testing import TaoTestHooks as hooks

MSG_FIELDS = (
    "id kind text clientMessageId sender { username } seenBy { username } reactions { emoji user { username } }"
)
SEND = f"""mutation($i: MessageSendInput!) {{ sendMessage(input: $i) {{
  message {{ {MSG_FIELDS} }} thread {{ id isGroup }} errors {{ code message field retryAfter }} }} }}"""
INBOX = """query($f: InboxFolder!) { inbox { unreadThreadCount unreadMessageCount
  threads(folder: $f) { nodes { id isGroup name unreadCount isRequest isMuted lastMessage { text }
    members { username } } } } }"""
MESSAGES = (
    f"""query($t: ID!) {{ thread(id: $t) {{ id messages {{ nodes {{ {MSG_FIELDS} replyTo {{ text }} }} }} }} }}"""
)


def store_id(global_id: str) -> int:
    raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    return int(raw.split(":")[1])


def global_id(typename: str, store: int) -> str:
    return base64.urlsafe_b64encode(f"{typename}:{store}".encode()).decode().rstrip("=")


class DM:
    def __init__(self, gql) -> None:
        self.gql = gql

    async def send(self, token: str, *, to: list[str] | None = None, thread: str | None = None, text: str | None = "hi",
                   cid: str | None = None, **extra) -> dict:
        i = {"clientMessageId": cid or uuid.uuid4().hex, "text": text, **extra}
        if to is not None:
            i["recipientIds"] = to
        if thread is not None:
            i["threadId"] = thread
        return (await self.gql.ok(SEND, {"i": i}, token))["sendMessage"]

    async def sent(self, token: str, **kw) -> dict:
        p = await self.send(token, **kw)
        assert p["errors"] == [], p
        return p

    async def inbox(self, token: str, folder: str = "INBOX") -> dict:
        return (await self.gql.ok(INBOX, {"f": folder}, token))["inbox"]

    async def messages(self, token: str, thread: str) -> list[dict] | None:
        t = (await self.gql.ok(MESSAGES, {"t": thread}, token))["thread"]
        return None if t is None else t["messages"]["nodes"]

    async def mutate(self, name: str, token: str, i: dict, fields: str = "errors { code message field }") -> dict:
        input_type = {
            "markThreadRead": "ThreadMarkReadInput",
            "reactToMessage": "MessageReactInput",
            "unsendMessage": "MessageUnsendInput",
            "editMessage": "MessageEditInput",
            "acceptMessageRequest": "MessageRequestAcceptInput",
            "declineMessageRequest": "MessageRequestDeclineInput",
            "muteThread": "ThreadMuteInput",
            "createGroupThread": "ThreadCreateInput",
            "addThreadMembers": "ThreadAddMembersInput",
            "leaveThread": "ThreadLeaveInput",
            "renameThread": "ThreadRenameInput",
            "setTyping": "ThreadTypingInput",
        }[name]
        body = await self.gql(f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ {fields} }} }}", {"i": i}, token)
        assert "errors" not in body, body["errors"]
        return body["data"][name]

    async def raw_object_data(self, obj_id: int) -> str | None:
        """The `data` column of an object's row, straight from its shard (no codec, no cache)."""
        tao = self.gql.tao
        async with hooks(tao).backend.connection(shard_of(obj_id)) as conn:
            rows = await conn.fetchall("SELECT data FROM {objects} WHERE id = %s", (obj_id,))
        return rows[0][0] if rows else None

    async def count_objects(self, otype_code: int) -> int:
        tao = self.gql.tao
        total = 0
        for s in range(tao.n_shards):
            async with hooks(tao).backend.connection(s) as conn:
                total += (await conn.fetchall("SELECT COUNT(*) FROM {objects} WHERE otype = %s", (otype_code,)))[0][0]
        return total


class CacheReads:
    """Counts calls of the cache tier's `get_many` (one per shared multi-get, whatever servers it
    reaches) while open: `with CacheReads(gql) as reads: ...; reads.count`."""

    def __init__(self, gql: Any) -> None:
        self._tier = gql.tao._cache.tier
        self.count = 0

    def __enter__(self) -> CacheReads:
        get_many = self._get_many = self._tier.get_many

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await get_many(*args, **kwargs)
        self._tier.get_many = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self._tier.get_many = self._get_many


class CacheRounds:
    """Counts the memcached tier's network rounds of reads (its shared multi-gets, each one
    exchange per server it reaches) while open; None for the embedded cache, which has none."""

    def __init__(self, gql: Any) -> None:
        self._tier = gql.tao._cache.tier
        self.count: int | None = None

    def __enter__(self) -> CacheRounds:
        get_now = self._get_now = getattr(self._tier, "_get_now", None)
        if get_now is None:
            return self
        self.count = 0

        async def counted(keys: list[str]) -> Any:
            assert self.count is not None
            self.count += 1
            return await get_now(keys)
        self._tier._get_now = counted
        return self

    def __exit__(self, *exc: object) -> None:
        if self._get_now is not None:
            del self._tier._get_now
