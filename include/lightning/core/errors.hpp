// The error for a run that cannot go on as set up (Lightning's MisconfigurationException):
// a training_step loss autograd cannot use, a directory the run cannot write. Its message
// names the hook or option, the value, and what to do. Torch-free.
#pragma once

#include <stdexcept>

namespace lightning {

class MisconfigurationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The file or its content is not a loadable checkpoint; what() names the file and why.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace lightning
