#pragma once

#include <memory>

#include "reactor/handler.h"

namespace percore {

// Sends every byte back as it arrives. The smallest possible service, and so the floor of what
// the framework itself costs per message.
std::shared_ptr<Service> NewEchoService();

}  // namespace percore
