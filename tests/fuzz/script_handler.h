#pragma once

// The handler the connection fuzzers drive: the bytes it reads are a script (echo, flood the
// output, pause and resume, close in every way, throw), so one input decides both what the
// client does and what the handler does.

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"

namespace percore::fuzz {

class ScriptHandler final : public percore::Handler {
 public:
  Action OnData(Connection& conn, Buffer& input) override {
    while (!input.empty()) {
      const std::string_view bytes = input.view();
      switch (bytes[0]) {
        case 'e': {  // 'e' LEN DATA: echo LEN bytes once they are all here
          if (bytes.size() < 2) return Action::Continue();
          const size_t len = static_cast<uint8_t>(bytes[1]);
          if (bytes.size() < 2 + len) return Action::Continue();
          conn.Send(bytes.substr(2, len));
          input.Consume(2 + len);
          break;
        }
        case 'b':  // a large reply: backpressure when the client does not read
          input.Consume(1);
          conn.output().Append(std::string(200 * 1024, 'B'));
          break;
        case 'p': {  // wait for "another loop" (a posted task), then resume
          input.Consume(1);
          const percore::ConnectionHandle self = conn.handle();
          conn.loop().Post([self] {
            if (Connection* c = self.loop->FindConnection(self.id)) {
              c->Send("resumed\n");
              c->Resume();
            }
          });
          return Action::Pause();
        }
        case 'c':
          input.Consume(1);
          conn.Send("bye\n");
          return Action::CloseAfterWrite(CloseReason::kServiceClose);
        case 'n':
          input.Consume(1);
          return Action::CloseNow(CloseReason::kProtocolError);
        case 'k':  // close from inside the callback through the public API
          input.Consume(1);
          conn.Close(CloseReason::kAdminClose, bytes.size() > 1 && bytes[1] == 'f' ? CloseMode::kFlush : CloseMode::kNow);
          return Action::Continue();
        case 'x':
          input.Consume(1);
          throw std::runtime_error("handler failure");
        default:
          conn.Send(bytes.substr(0, 1));
          input.Consume(1);
          break;
      }
    }
    return Action::Continue();
  }
};

class ScriptService final : public percore::Service {
 public:
  std::string_view name() const override { return "script"; }
  std::unique_ptr<percore::Handler> NewHandler(Connection&) override { return std::make_unique<ScriptHandler>(); }
};

}  // namespace percore::fuzz
