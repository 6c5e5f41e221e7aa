#include "tools/loadgen/request_source.h"

#include <cmath>

namespace percore::loadgen {

RequestSource::RequestSource(const Workload& workload, uint64_t seed)
    : protocol_(workload.protocol),
      ping_(workload.ping),
      keys_(workload.keys > 0 ? workload.keys : 1),
      state_(seed) {
  const double ratio = workload.get_ratio;
  if (!(ratio > 0)) {
    get_threshold_ = 0;
  } else if (ratio >= 1) {
    get_threshold_ = UINT64_MAX;
  } else {
    get_threshold_ = static_cast<uint64_t>(std::ldexp(ratio, 64));
  }
}

void RequestSource::SetSequential(uint64_t first, uint64_t end) {
  sequential_ = true;
  first_ = first;
  end_ = end > first ? end : first + 1;
  next_key_ = first;
}

uint64_t RequestSource::Random() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

Request RequestSource::Next() {
  Request r;
  switch (protocol_) {
    case Protocol::kEcho:
      r.op = Request::Op::kEcho;
      return r;
    case Protocol::kHttp:
      r.op = Request::Op::kHttpGet;
      return r;
    case Protocol::kMemcache:
    case Protocol::kResp:
      break;
  }
  if (ping_ && protocol_ == Protocol::kResp) {
    r.op = Request::Op::kPing;
    return r;
  }
  if (sequential_) {
    r.op = Request::Op::kSet;
    r.key = next_key_++;
    if (next_key_ == end_) next_key_ = first_;
    return r;
  }
  const uint64_t x = Random();
  r.op = (get_threshold_ == UINT64_MAX || x < get_threshold_) ? Request::Op::kGet : Request::Op::kSet;
  r.key = Random() % keys_;
  return r;
}

}  // namespace percore::loadgen
