// Must not compile: two closures for one hook.
#include <lightning/callbacks/lambda_callback.hpp>
namespace lambda = lightning::callbacks::lambda;
int main() {
  int n = 0;
  lightning::callbacks::LambdaCallback cb{lambda::on_fit_start([&](auto&, auto&) { ++n; }),
                                          lambda::on_fit_start([&](auto&, auto&) { --n; })};
  (void)cb;
}
