// Assertions shared by the tests.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace lightning::testing {

// Runs f and expects std::invalid_argument whose message contains `part`.
template <class F>
void expect_invalid_argument(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected std::invalid_argument mentioning: " << part;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

}  // namespace lightning::testing
