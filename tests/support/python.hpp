// Runs the test peers: Python programs on the project's virtual environment (PyTorch
// Lightning, TensorBoard, torch), LIGHTNING_TEST_PYTHON (tests/CMakeLists.txt). A peer
// that cannot run is a test failure that says so, never a skip: CI must not go green
// without the comparison.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

namespace lightning::testing {

struct PythonResult {
  int status = -1;     // the exit status (0: success)
  std::string output;  // stdout
  std::string errors;  // stderr
};

inline std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `python <args...>` in the current (the test's own temporary) directory.
inline PythonResult run_python(const std::vector<std::string>& args) {
  std::string command = shell_quoted(LIGHTNING_TEST_PYTHON);
  for (const auto& a : args) command += " " + shell_quoted(a);
  const auto errors_file = std::filesystem::absolute("python-stderr.txt");
  command += " 2>" + shell_quoted(errors_file.string());
  PythonResult result;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
    const int status = ::pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::ifstream errors(errors_file);
  std::stringstream text;
  text << errors.rdbuf();
  result.errors = text.str();
  return result;
}

// A script of tests/python/.
inline std::string peer_script(const char* name) {
  return (std::filesystem::path(LIGHTNING_TEST_SCRIPTS_DIR) / name).string();
}

// Runs a program given as text.
inline PythonResult run_python_program(const std::string& program) {
  std::ofstream("program.py") << program;
  return run_python({"program.py"});
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The numbers of a printed line after its label ("label 1.5 2 True" -> {1.5, 2, 1}):
// Python's True and False read as 1 and 0.
inline std::vector<double> numbers_of(const std::string& line) {
  std::istringstream in(line);
  std::string word;
  in >> word;
  std::vector<double> out;
  for (std::string v; in >> v;)
    out.push_back(v == "True" ? 1.0 : v == "False" ? 0.0 : std::stod(v));
  return out;
}

}  // namespace lightning::testing

// Fails the test (with Python's stderr) unless the peer succeeded.
#define LIGHTNING_EXPECT_PYTHON_OK(result)                                                    \
  ASSERT_EQ((result).status, 0) << "the Python peer failed (" LIGHTNING_TEST_PYTHON           \
                                   "; `bash scripts/setup.sh deps` makes the environment):\n" \
                                << (result).errors
