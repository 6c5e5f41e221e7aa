// echo: a message of message_size bytes; the reply is the same bytes. The first (up to) eight
// bytes carry the connection's request number, so a lost, repeated or reordered reply differs.

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "tools/loadgen/codec.h"

namespace percore::loadgen {
namespace {

class EchoCodec final : public Codec {
 public:
  explicit EchoCodec(size_t size) : template_(size, '\0') {
    for (size_t i = 0; i < size; ++i) template_[i] = static_cast<char>('A' + i % 26);
    stamp_ = std::min<size_t>(8, size);
  }

  void Encode(const Request& request, Buffer& out) const override {
    char* p = out.Reserve(template_.size());
    std::memcpy(p, template_.data(), template_.size());
    Stamp(request.seq, p);
    out.Commit(template_.size());
  }

  ReplyCheck Check(const Request& request, std::string_view input) const override {
    const size_t n = template_.size();
    char stamp[8];
    Stamp(request.seq, stamp);
    // Compare what has arrived so far: a wrong byte is reported as soon as it is seen.
    const size_t have = std::min(input.size(), n);
    const size_t stamp_have = std::min(have, stamp_);
    if (std::memcmp(input.data(), stamp, stamp_have) != 0 ||
        std::memcmp(input.data() + stamp_have, template_.data() + stamp_have, have - stamp_have) != 0) {
      return ReplyCheck::Wrong(absl::StrCat("echo reply differs from message ", request.seq, ": ",
                                            Excerpt(input.substr(0, have))));
    }
    return have < n ? ReplyCheck::NeedMore() : ReplyCheck::Ok(n);
  }

 private:
  void Stamp(uint64_t seq, char* out) const {
    for (size_t i = 0; i < stamp_; ++i) out[i] = static_cast<char>(seq >> (8 * i));
  }

  std::string template_;
  size_t stamp_;
};

}  // namespace

std::unique_ptr<Codec> NewEchoCodec(const Workload& workload) {
  return std::make_unique<EchoCodec>(workload.message_size);
}

}  // namespace percore::loadgen
