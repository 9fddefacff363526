"""An `MCPServer` (the SDK's high-level server, where mcp_tools.py declares the tools) served over a
pair of streams by the SDK's low-level `Server`, through public APIs only.

`MCPServer` runs itself only on stdio, SSE or HTTP; the stream-pair server inside it is private.
The low-level `Server.run(read, write, options)` serves one connection over any pair of streams,
as the SDK's own stdio and in-memory transports do. So each session builds one, wired the way
`MCPServer` wires its own: the same handlers (answered by the `MCPServer`'s public `list_tools`,
`call_tool`, `list_resources`, ...), the same `subscriptions/listen` and the same request-state
boundary, so the wire is what it was (capabilities, results, errors; `shim/builtin.json` holds it).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from mcp.server import Server, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer, RequestStateBoundary, RequestStateSecurity
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
    UnexpectedResourceError,
    UnexpectedToolError,
)
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    BlobResourceContents,
    CallToolRequestParams,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    InputRequiredResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    TextContent,
    TextResourceContents,
)
from pydantic import ValidationError

log = logging.getLogger("podctl.broker.mcp")

Request = ServerRequestContext[Any, Any]


def stream_server(app: MCPServer) -> Server[Any]:
    """A low-level server answering as `app` does, for `Server.run` over a pair of streams."""
    bus = InMemorySubscriptionBus()
    answers = _Answers(app, bus)
    server: Server[Any] = Server(
        app.name, title=app.title, description=app.description, instructions=app.instructions,
        website_url=app.website_url, icons=app.icons, version=app.version,
        on_list_tools=answers.list_tools, on_call_tool=answers.call_tool, on_list_resources=answers.list_resources,
        on_read_resource=answers.read_resource, on_list_resource_templates=answers.list_templates,
        on_list_prompts=answers.list_prompts, on_get_prompt=answers.get_prompt, on_subscriptions_listen=ListenHandler(bus),
    )
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=app.name))
    return server


class _Answers:
    """The low-level handlers, each answered by the `MCPServer`'s public method of the same job."""

    def __init__(self, app: MCPServer, bus: InMemorySubscriptionBus) -> None:
        self.app = app
        self.bus = bus

    def context(self, ctx: Request, params: Any) -> Context[Any, Any]:
        return Context(request_context=ctx, mcp_server=self.app, input_params=params, subscriptions=self.bus)

    async def list_tools(self, ctx: Request, params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=await self.app.list_tools())

    async def call_tool(self, ctx: Request, params: CallToolRequestParams) -> CallToolResult | InputRequiredResult:
        try:
            return await self.app.call_tool(params.name, params.arguments or {}, self.context(ctx, params))
        except MCPError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed tool is a tool error the model reads
            return _tool_failed(params.name, exc)

    async def list_resources(self, ctx: Request, params: PaginatedRequestParams | None) -> ListResourcesResult:
        return ListResourcesResult(resources=await self.app.list_resources())

    async def list_templates(self, ctx: Request, params: PaginatedRequestParams | None) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(resource_templates=await self.app.list_resource_templates())

    async def read_resource(self, ctx: Request, params: ReadResourceRequestParams) -> ReadResourceResult | InputRequiredResult:
        try:
            found = await self.app.read_resource(params.uri, self.context(ctx, params))
        except ResourceError as exc:
            if isinstance(exc, UnexpectedResourceError):
                log.exception("Resource %r raised an unexpected exception", str(params.uri))
            code = INVALID_PARAMS if isinstance(exc, ResourceNotFoundError) else INTERNAL_ERROR
            raise MCPError(code=code, message=str(exc), data={"uri": str(params.uri)}) from exc
        if isinstance(found, InputRequiredResult):
            return found
        return ReadResourceResult(contents=[
            BlobResourceContents(uri=params.uri, blob=base64.b64encode(item.content).decode(),
                                 mime_type=item.mime_type or "application/octet-stream", _meta=item.meta)
            if isinstance(item.content, bytes) else
            TextResourceContents(uri=params.uri, text=item.content, mime_type=item.mime_type or "text/plain", _meta=item.meta)
            for item in found
        ])

    async def list_prompts(self, ctx: Request, params: PaginatedRequestParams | None) -> ListPromptsResult:
        return ListPromptsResult(prompts=await self.app.list_prompts())

    async def get_prompt(self, ctx: Request, params: GetPromptRequestParams) -> GetPromptResult | InputRequiredResult:
        return await self.app.get_prompt(params.name, params.arguments, self.context(ctx, params))


def _tool_failed(name: str, exc: Exception) -> CallToolResult:
    """A tool that raised (its arguments refused, or a fault of ours), as the tool error MCPServer gives."""
    if isinstance(exc, ToolError) and not isinstance(exc, UnexpectedToolError):
        if isinstance(exc.__cause__, ValidationError):
            fields = sorted({".".join(str(part) for part in err["loc"]) for err in exc.__cause__.errors()})
            log.info("Tool %r rejected arguments: %r", name, fields)
        else:
            log.info("Tool %r failed: %r", name, str(exc))
    else:
        log.exception("Tool %r raised an unexpected exception", name)
    return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
