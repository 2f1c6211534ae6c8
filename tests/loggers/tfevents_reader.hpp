// Reads TensorBoard event files back without the library's own code: the TFRecord framing
// is checked with a CRC32C computed here bit by bit (not Boost), and every payload is
// decoded by `protoc --decode_raw` (Debian's protobuf-compiler), whose text is parsed
// into a tree of field numbers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "loggers/support.hpp"

namespace lightning::testing {

// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, one bit at a time.
inline std::uint32_t crc32c_bitwise(std::string_view data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline std::uint32_t masked(std::uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

template <class T>
T little_endian(std::string_view bytes) {
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    value |= static_cast<T>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return value;
}

// The payloads of a TFRecord file; a framing or checksum error throws, naming the record.
inline std::vector<std::string> read_records(const std::filesystem::path& file) {
  const auto fail = [](std::size_t record, std::string_view what) {
    std::string message = "record ";
    message += std::to_string(record);
    message += ": ";
    message += what;
    throw std::runtime_error(message);
  };
  const auto text = read_file(file);
  std::string_view rest(text);
  std::vector<std::string> records;
  while (!rest.empty()) {
    const auto n = records.size();
    if (rest.size() < 12) fail(n, "truncated");
    const auto length = little_endian<std::uint64_t>(rest.substr(0, 8));
    if (little_endian<std::uint32_t>(rest.substr(8, 4)) !=
        masked(crc32c_bitwise(rest.substr(0, 8))))
      fail(n, "bad length checksum");
    if (rest.size() < 12 + length + 4) fail(n, "truncated data");
    const auto data = rest.substr(12, length);
    if (little_endian<std::uint32_t>(rest.substr(12 + length, 4)) != masked(crc32c_bitwise(data)))
      fail(n, "bad data checksum");
    records.emplace_back(data);
    rest.remove_prefix(12 + length + 4);
  }
  return records;
}

// A message as protoc --decode_raw prints it: numbered fields, in file order, holding a
// scalar text (`5`, `0x3f000000`, `"loss"`) or a nested message. protoc prints any bytes
// that happen to parse as a message (the string "epoch" does) as one, so text is read
// back through bytes(), which re-encodes such a node into the bytes protoc was given.
struct Proto {
  std::string scalar;
  std::vector<std::pair<int, Proto>> fields;

  [[nodiscard]] std::size_t count(int field) const {
    return static_cast<std::size_t>(std::count_if(fields.begin(), fields.end(),
                                                  [&](const auto& f) { return f.first == field; }));
  }
  [[nodiscard]] const Proto& operator[](int field) const {
    for (const auto& [number, value] : fields)
      if (number == field) return value;
    std::string message = "no field ";
    message += std::to_string(field);
    throw std::out_of_range(message);
  }
  [[nodiscard]] std::vector<const Proto*> all(int field) const {
    std::vector<const Proto*> out;
    for (const auto& [number, value] : fields)
      if (number == field) out.push_back(&value);
    return out;
  }
  [[nodiscard]] std::string str() const { return bytes(); }
  [[nodiscard]] std::int64_t varint() const { return std::stoll(scalar); }
  [[nodiscard]] double fixed64() const {
    return std::bit_cast<double>(static_cast<std::uint64_t>(std::stoull(scalar, nullptr, 16)));
  }
  [[nodiscard]] float fixed32() const {
    return std::bit_cast<float>(static_cast<std::uint32_t>(std::stoul(scalar, nullptr, 16)));
  }

  // The bytes of a length-delimited field: a quoted string unescaped, or a message
  // serialized again (protoc prints fixed32 as 0x + 8 digits, fixed64 as 0x + 16).
  [[nodiscard]] std::string bytes() const {
    if (!scalar.empty()) return unquote(scalar);
    std::string out;
    const auto varint = [&](std::uint64_t v) {
      for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7F) | 0x80);
      out += static_cast<char>(v);
    };
    for (const auto& [number, value] : fields) {
      const auto key = [&](int wire) { varint((static_cast<std::uint64_t>(number) << 3) | wire); };
      if (value.scalar.empty() || value.scalar.front() == '"') {
        const auto inner = value.bytes();
        key(2);
        varint(inner.size());
        out += inner;
      } else if (value.scalar.starts_with("0x")) {
        const bool wide = value.scalar.size() == 18;
        key(wide ? 1 : 5);
        auto bits = std::stoull(value.scalar, nullptr, 16);
        for (int i = 0; i < (wide ? 8 : 4); ++i, bits >>= 8) out += static_cast<char>(bits & 0xFF);
      } else {
        key(0);
        varint(std::stoull(value.scalar));
      }
    }
    return out;
  }

 private:
  // protoc's C escapes: \n \r \t \" \' \\ and three-digit octal.
  static std::string unquote(std::string_view quoted) {
    EXPECT_TRUE(quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"') << quoted;
    quoted = quoted.substr(1, quoted.size() - 2);
    std::string out;
    for (std::size_t i = 0; i < quoted.size(); ++i) {
      if (quoted[i] != '\\') {
        out += quoted[i];
        continue;
      }
      const char c = quoted[++i];
      if (c >= '0' && c <= '7') {
        out += static_cast<char>(std::stoi(std::string(quoted.substr(i, 3)), nullptr, 8));
        i += 2;
      } else {
        out += c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
      }
    }
    return out;
  }
};

inline Proto parse_decode_raw(std::istream& in) {
  Proto message;
  std::string line;
  while (std::getline(in, line)) {
    const auto start = line.find_first_not_of(' ');
    if (start == std::string::npos) continue;
    std::string_view l(line);
    l.remove_prefix(start);
    if (l == "}") return message;
    const auto digits_end = l.find_first_not_of("0123456789");
    const int field = std::stoi(std::string(l.substr(0, digits_end)));
    if (l.ends_with("{")) {
      message.fields.emplace_back(field, parse_decode_raw(in));
    } else {
      Proto value;
      value.scalar = std::string(l.substr(l.find(": ") + 2));
      message.fields.emplace_back(field, std::move(value));
    }
  }
  return message;
}

inline Proto decode_raw(std::string_view payload) {
  TempDir tmp;
  {
    std::ofstream(tmp / "in.bin", std::ios::binary)
        .write(payload.data(), static_cast<std::streamsize>(payload.size()));
  }
  std::string command = "protoc --decode_raw < '";
  command += (tmp / "in.bin").string();
  command += "' > '";
  command += (tmp / "out.txt").string();
  command += "' 2>&1";
  const int rc = std::system(command.c_str());
  const auto text = read_file(tmp / "out.txt");
  if (rc != 0) {
    std::string message = "protoc --decode_raw failed: ";
    message += text;
    throw std::runtime_error(message);
  }
  std::istringstream in(text);
  return parse_decode_raw(in);
}

// Every Event of an event file, decoded.
inline std::vector<Proto> read_events(const std::filesystem::path& file) {
  std::vector<Proto> events;
  for (const auto& record : read_records(file)) events.push_back(decode_raw(record));
  return events;
}

// The event files of a directory, oldest first (the names end with a counter).
inline std::vector<std::filesystem::path> event_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename().string().starts_with("events.out.tfevents."))
      files.push_back(entry.path());
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    const auto counter = [](const std::filesystem::path& p) {
      return std::stoll(p.extension().string().substr(1));
    };
    return counter(a) < counter(b);
  });
  return files;
}

// (tag, step, value) of every scalar event.
struct Scalar {
  std::string tag;
  std::int64_t step;
  float value;
  friend bool operator==(const Scalar&, const Scalar&) = default;
};

inline std::vector<Scalar> scalars(const std::vector<Proto>& events) {
  std::vector<Scalar> out;
  for (const auto& e : events) {
    if (!e.count(5)) continue;
    const auto& value = e[5][1];
    if (!value.count(2)) continue;  // a plugin summary, not a scalar
    out.push_back({value[1].str(), e.count(2) ? e[2].varint() : 0, value[2].fixed32()});
  }
  return out;
}

inline std::ostream& operator<<(std::ostream& os, const Scalar& s) {
  return os << "{" << s.tag << ", " << s.step << ", " << s.value << "}";
}

}  // namespace lightning::testing
