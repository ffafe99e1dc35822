// Argument checks for the C++ entry points. The Python layer validates user input first; these guard the ABI
// (a bad pointer, shape or dtype code reaching C++) and name the argument that is wrong.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace inv {

// Thrown as ValueError on the Python side (pybind11 maps std::invalid_argument to ValueError).
[[noreturn]] inline void fail_argument(const std::string& op, const std::string& message) {
  throw std::invalid_argument(op + ": " + message);
}

inline void check_pointer(const std::string& op, const char* name, std::uintptr_t ptr) {
  if (ptr == 0) fail_argument(op, std::string(name) + " is a null pointer");
}

inline void check_positive(const std::string& op, const char* name, std::int64_t value) {
  if (value <= 0) fail_argument(op, std::string(name) + " must be positive, got " + std::to_string(value));
}

inline void check_not_less(const std::string& op, const char* name, std::int64_t value, std::int64_t lower) {
  if (value < lower) {
    fail_argument(op, std::string(name) + " must be at least " + std::to_string(lower) + ", got " +
                          std::to_string(value));
  }
}

}  // namespace inv
