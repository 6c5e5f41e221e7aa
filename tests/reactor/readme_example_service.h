#pragma once

#include <memory>
#include <string_view>

#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"

namespace example {

// A line protocol: for each line "NAME\n" the server answers "hello, NAME\n".
// A line longer than 1 KiB is a protocol error: the server says so and closes.
class GreetHandler final : public percore::Handler {
 public:
  percore::Action OnData(percore::Connection& conn, percore::Buffer& input) override {
    for (;;) {
      const std::string_view bytes = input.view();
      const size_t newline = bytes.find('\n');
      if (newline == std::string_view::npos) {
        if (bytes.size() > kMaxLine) {
          conn.Send("error: line too long\n");
          return percore::Action::CloseAfterWrite(percore::CloseReason::kProtocolError);
        }
        return percore::Action::Continue();  // wait for the rest of the line
      }
      conn.Send("hello, ");
      conn.Send(bytes.substr(0, newline + 1));
      input.Consume(newline + 1);
      conn.RecordRequest();  // the framework times it
    }
  }

 private:
  static constexpr size_t kMaxLine = 1024;
};

class GreetService final : public percore::Service {
 public:
  std::string_view name() const override { return "greet"; }
  std::unique_ptr<percore::Handler> NewHandler(percore::Connection& conn) override {
    return std::make_unique<GreetHandler>();
  }
};

}  // namespace example
