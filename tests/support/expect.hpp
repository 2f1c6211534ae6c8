// Assertions shared by the tests.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace lightning::testing {

// Runs f and expects an exception of type E whose message contains `part`.
template <class E, class F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning: " << part;
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// Runs f and expects std::invalid_argument whose message contains `part`.
template <class F>
void expect_invalid_argument(F&& f, const std::string& part) {
  expect_error<std::invalid_argument>(std::forward<F>(f), part);
}

}  // namespace lightning::testing
