// The Canary extension: the grammar and language configuration are declared in package.json; this file
// only starts `canaryc lsp` (the path from the `canary.server.path` setting) as the language server for
// .canary files, restarting it when that setting changes. Every feature lives in the server.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const command = vscode.workspace.getConfiguration("canary").get("server.path") || "canaryc";
  return { command, args: ["lsp"], transport: TransportKind.stdio };
}

async function start(context) {
  const clientOptions = {
    documentSelector: [{ language: "canary" }],
    outputChannelName: "Canary",
  };
  client = new LanguageClient("canary", "Canary (canaryc lsp)", serverOptions(), clientOptions);
  try {
    await client.start();
  } catch (err) {
    const path = serverOptions().command;
    vscode.window.showErrorMessage(
      `Canary: could not start \`${path} lsp\` (${err.message || err}). Set "canary.server.path" to your canaryc binary.`
    );
  }
}

async function restart(context) {
  if (client) {
    await client.stop().catch(() => {});
    client = undefined;
  }
  await start(context);
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("canary.restartServer", () => restart(context)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("canary.server.path")) restart(context);
    })
  );
  await start(context);
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
