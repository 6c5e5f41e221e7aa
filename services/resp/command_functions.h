#pragma once

// The functions the command table points at. Internal to the resp library: callers go through
// commands.h. Arity has been checked before any of these runs.

#include "services/resp/command_table.h"

namespace percore {

// String commands (commands_strings.cc).
void GetCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void SetCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void GetSetCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out);
void IncrCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void IncrByCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out);
void DecrCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void DecrByCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out);
void AppendCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out);
void StrLenCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out);
void MgetCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void MgetPartCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                     ReplySink& out);
void MsetCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);

// Key commands (commands_keys.cc).
void DelCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void ExistsCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out);
void ExpireCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out);
void PexpireCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                    ReplySink& out);
void TtlCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void PttlCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void PersistCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                    ReplySink& out);
void TypeCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);
void FlushCommand(CommandArgs args, StringStore& store, const RespOptions& options, ReplySink& out);

// Connection and server commands (commands_server.cc).
void PingCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void EchoCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void SelectCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void QuitCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void DbSizeCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void InfoCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void ConfigGetCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void ConfigHelpCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void ClientSetNameCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void ClientGetNameCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void ClientIdCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void ClientHelpCommand(CommandArgs args, SessionContext& session, ReplySink& out);

// COMMAND and its subcommands (command_docs.cc).
void CommandCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void CommandCountCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void CommandDocsCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void CommandInfoCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void CommandListCommand(CommandArgs args, SessionContext& session, ReplySink& out);
void CommandHelpCommand(CommandArgs args, SessionContext& session, ReplySink& out);

}  // namespace percore
