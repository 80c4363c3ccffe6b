"""A diagnostic WebSocket that relays through the channel layer.

Used by operators (and the foundation tests) to prove the full path works in a deployment: socket in,
channel-layer group broadcast through Redis, socket out.
"""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

MAX_ECHO_CHARS = 1000


class EchoConsumer(AsyncJsonWebsocketConsumer):
    group_name = "diagnostics.echo"

    async def connect(self) -> None:
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        text = content.get("text") if isinstance(content, dict) else None
        if not isinstance(text, str) or len(text) > MAX_ECHO_CHARS:
            await self.send_json(
                {"type": "error", "message": f"send {{'text': <string up to {MAX_ECHO_CHARS}>}}"}
            )
            return
        await self.channel_layer.group_send(self.group_name, {"type": "echo.message", "text": text})

    async def echo_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "echo", "text": event["text"], "via": "channel_layer"})
