"""`canaryc lsp` driven over stdio by a real LSP client (pytest-lsp, on pygls), with VS Code's declared
capabilities, so pytest-lsp also checks every response against what that client accepts.

Each test opens a policy with non-ASCII text before the interesting tokens, so every range asserted here
also checks the byte -> UTF-16 conversion end to end. Run by scripts/test-editors.sh (make test).
"""

import json
import os
import pathlib
import re
import subprocess

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = pathlib.Path(__file__).resolve().parents[2]
CANARYC = os.environ.get("CANARYC", str(ROOT / "target" / "debug" / "canaryc"))
URI = "file:///work/policy.canary"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[CANARYC, "lsp"]))
async def client(lsp_client: LanguageClient):
    params = types.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
    result = await lsp_client.initialize_session(params)
    assert result.server_info.name == "canaryc"
    yield
    await lsp_client.shutdown_session()


async def open_policy(client: LanguageClient, text: str, version: int = 1):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=URI, language_id="canary", version=version, text=text)
        )
    )
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return client.diagnostics[URI]


def doc():
    return types.TextDocumentIdentifier(uri=URI)


def pos(line, character):
    return types.Position(line=line, character=character)


async def test_diagnostics_on_open_and_change(client: LanguageClient):
    # `é` is 1 UTF-16 unit (2 bytes), `🚀` 2 units (4 bytes): the error after them is at character 20.
    diagnostics = await open_policy(client, '# é🚀\nheader x = "é🚀" -> \n')
    assert len(diagnostics) == 1
    error = diagnostics[0]
    assert error.severity == types.DiagnosticSeverity.Error
    assert error.message.startswith("expected a subset name after `->`")
    assert error.range.start == pos(1, 20)

    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(
                    text="# é🚀\ncookie user=tester -> v2\ncookie user=tester -> v3\ndefault v1\n"
                )
            ],
        )
    )
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    warnings = client.diagnostics[URI]
    shadowed = [d for d in warnings if "shadowed rule" in d.message]
    assert len(shadowed) == 1, [d.message for d in warnings]
    assert shadowed[0].severity == types.DiagnosticSeverity.Warning
    assert shadowed[0].range == types.Range(start=pos(2, 0), end=pos(2, 24))
    assert "for example: --cookie 'user=tester'" in shadowed[0].message


async def test_hover_on_a_family_and_on_a_rule(client: LanguageClient):
    await open_policy(client, "# é\nservice frontend {\n  android: 50% v2\n  default v1\n}\n")
    family = await client.text_document_hover_async(types.HoverParams(text_document=doc(), position=pos(2, 4)))
    assert family.range == types.Range(start=pos(2, 2), end=pos(2, 9))
    assert "user-agent ~ /Android|android|Adr |Silk/|OculusBrowser|JUC/" in family.contents.value

    rule = await client.text_document_hover_async(types.HoverParams(text_document=doc(), position=pos(2, 16)))
    text = rule.contents.value
    assert rule.range == types.Range(start=pos(2, 2), end=pos(2, 17))
    assert "for service `frontend`" in text
    # 10,000 simulated Android requests, half to each subset: each share within 5σ (±2.5 points).
    shares = re.search(r"this rule decides 100\.0%: `v1` \(the default\) ([\d.]+)%, `v2` ([\d.]+)%", text)
    assert shares, text
    assert all(47.5 <= float(share) <= 52.5 for share in shares.groups()), text


async def test_completion_offers_subsets_keywords_families_and_lets(client: LanguageClient):
    await open_policy(client, "let beta = cookie b=1\nandroid: 10% canary\ndefault v1\nbeta -> v1\n")
    after_arrow = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(), position=pos(3, 8))
    )
    assert sorted(item.label for item in after_arrow) == ["canary", "v1"]
    at_start = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(), position=pos(3, 0))
    )
    labels = {item.label for item in at_start}
    assert {"service", "header", "cookie", "android", "mobile", "beta"} <= labels


async def test_formatting_is_canaryc_fmt(client: LanguageClient):
    await open_policy(client, "service  frontend{\n  android :50%v2   # é\ndefault v1 }\n")
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=doc(), options=types.FormattingOptions(tab_size=2, insert_spaces=True))
    )
    expected = subprocess.run(
        [CANARYC, "fmt", "-"], input="service  frontend{\n  android :50%v2   # é\ndefault v1 }\n",
        capture_output=True, text=True, check=True,
    ).stdout
    assert len(edits) == 1
    assert edits[0].new_text == expected == "service frontend {\n  android: 50% v2 # é\n  default v1\n}\n"
    assert edits[0].range == types.Range(start=pos(0, 0), end=pos(3, 0))


async def test_definition_and_rename_of_a_let(client: LanguageClient):
    await open_policy(client, "# é🚀\nlet beta = cookie b=1\nservice s {\n  beta -> v2\n}\nnot beta -> v1\n")
    definition = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(), position=pos(3, 4))
    )
    assert definition.range == types.Range(start=pos(1, 4), end=pos(1, 8))

    prepared = await client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=doc(), position=pos(5, 5))
    )
    assert prepared == types.Range(start=pos(5, 4), end=pos(5, 8))
    edit = await client.text_document_rename_async(
        types.RenameParams(text_document=doc(), position=pos(5, 5), new_name="gamma")
    )
    ranges = sorted((e.range.start.line, e.range.start.character) for e in edit.changes[URI])
    assert ranges == [(1, 4), (3, 2), (5, 4)]
    assert all(e.new_text == "gamma" for e in edit.changes[URI])

    with pytest.raises(Exception, match="is a keyword"):
        await client.text_document_rename_async(
            types.RenameParams(text_document=doc(), position=pos(5, 5), new_name="header")
        )


def frame(body: str) -> bytes:
    data = body.encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(data), data)


def test_malformed_messages_get_json_rpc_errors():
    """Raw bytes, no client library: a body that is not JSON and a request without a method each get an
    error response, and the session goes on to a clean shutdown (exit code 0)."""
    messages = [
        frame("{oops"),
        frame('{"jsonrpc": "2.0", "id": 7, "params": {}}'),
        frame('{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}'),
        frame('{"jsonrpc": "2.0", "id": 2, "method": "shutdown"}'),
        frame('{"jsonrpc": "2.0", "method": "exit"}'),
    ]
    done = subprocess.run([CANARYC, "lsp"], input=b"".join(messages), capture_output=True, timeout=30)
    bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1]) for part in done.stdout.split(b"Content-Length: ")[1:]]
    assert done.returncode == 0, done.stderr
    assert [b.get("error", {}).get("code") for b in bodies] == [-32700, -32600, None, None]
    assert [b["id"] for b in bodies] == [None, 7, 1, 2]
