// The one error for an invalid option, in one form, so every message names the options
// struct, the field, the value given and the rule it broke:
//   lightning: TrainerOptions.max_epochs = -2 is invalid: must be >= -1 (-1: no limit)
// Torch-free (the loggers use it too).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace lightning {

[[noreturn]] inline void throw_bad_option(std::string_view options, std::string_view field,
                                          std::string_view value, std::string_view rule) {
  std::string message = "lightning: ";
  message += options;
  message += '.';
  message += field;
  message += " = ";
  message += value;
  message += " is invalid: ";
  message += rule;
  throw std::invalid_argument(message);
}

}  // namespace lightning
