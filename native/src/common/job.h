// What long-running native work receives from its caller: a cancellation check and a progress sink.
// Work calls hooks.check() between (and inside) steps; it throws Cancelled when the user cancelled.
#pragma once
#include <functional>
#include <stdexcept>
#include <string>

namespace quip {

struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

struct JobHooks {
  std::function<bool()> cancelled;                 // may be empty
  std::function<void(const std::string&)> report;  // JSON text of one progress event; may be empty

  bool is_cancelled() const { return cancelled && cancelled(); }
  void check() const {
    if (is_cancelled()) throw Cancelled();
  }
  void emit(const std::string& json) const {
    if (report) report(json);
  }
};

}  // namespace quip
