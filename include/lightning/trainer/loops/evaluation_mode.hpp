// The autograd mode of validation, test and prediction: Lightning's `inference_mode` flag.
#pragma once

#include <torch/torch.h>

#include <optional>

namespace lightning::loops {

// torch.inference_mode (the default: no version counters or autograd metadata, so faster;
// its tensors can never enter autograd later) or torch.no_grad (inference_mode = false:
// what evaluation makes may be saved for a later backward, e.g. a target kept from a
// validation pass), for the scope of an evaluation or prediction run.
class EvaluationGradMode {
 public:
  explicit EvaluationGradMode(bool inference_mode) {
    if (inference_mode)
      inference_.emplace();
    else
      no_grad_.emplace();
  }

 private:
  std::optional<c10::InferenceMode> inference_;
  std::optional<torch::NoGradGuard> no_grad_;
};

}  // namespace lightning::loops
