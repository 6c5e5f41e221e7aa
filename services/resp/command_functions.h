#pragma once

// The functions the command table points at. Internal to the resp library: callers go through
// commands.h. Arity has been checked before any of these runs.

#include "services/resp/command_table.h"

namespace percore {

// String commands (commands_strings.cc).
void GetCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void SetCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void GetSetCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void IncrCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void IncrByCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void DecrCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void DecrByCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void AppendCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void StrLenCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void MgetCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void MgetPartCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                     Buffer& out);
void MsetCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);

// Key commands (commands_keys.cc).
void DelCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void ExistsCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void ExpireCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void PexpireCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void TtlCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void PttlCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void PersistCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void TypeCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);
void FlushCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out);

// Connection and server commands (commands_server.cc).
void PingCommand(CommandArgs args, SessionContext& session, Buffer& out);
void EchoCommand(CommandArgs args, SessionContext& session, Buffer& out);
void SelectCommand(CommandArgs args, SessionContext& session, Buffer& out);
void QuitCommand(CommandArgs args, SessionContext& session, Buffer& out);
void DbSizeCommand(CommandArgs args, SessionContext& session, Buffer& out);
void InfoCommand(CommandArgs args, SessionContext& session, Buffer& out);
void ConfigGetCommand(CommandArgs args, SessionContext& session, Buffer& out);
void ConfigHelpCommand(CommandArgs args, SessionContext& session, Buffer& out);
void ClientSetNameCommand(CommandArgs args, SessionContext& session, Buffer& out);
void ClientGetNameCommand(CommandArgs args, SessionContext& session, Buffer& out);
void ClientIdCommand(CommandArgs args, SessionContext& session, Buffer& out);
void ClientHelpCommand(CommandArgs args, SessionContext& session, Buffer& out);

// COMMAND and its subcommands (command_docs.cc).
void CommandCommand(CommandArgs args, SessionContext& session, Buffer& out);
void CommandCountCommand(CommandArgs args, SessionContext& session, Buffer& out);
void CommandDocsCommand(CommandArgs args, SessionContext& session, Buffer& out);
void CommandInfoCommand(CommandArgs args, SessionContext& session, Buffer& out);
void CommandListCommand(CommandArgs args, SessionContext& session, Buffer& out);
void CommandHelpCommand(CommandArgs args, SessionContext& session, Buffer& out);

}  // namespace percore
