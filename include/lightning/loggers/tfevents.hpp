// TensorBoard event files without TensorFlow or libprotobuf: a minimal protocol-buffers
// encoder for the few messages TensorBoard reads, and the TFRecord framing around each.
//
// Wire format (https://protobuf.dev/programming-guides/encoding/): every field is a key
// varint (field_number << 3 | wire_type) followed by its value, where wire type
//   0 = varint (int32/int64/enum/bool),   1 = 8 little-endian bytes (double),
//   2 = varint length + bytes (string, bytes, nested message),   5 = 4 bytes (float).
// Fields are written in field-number order and, as proto3 does, scalar fields outside
// a oneof are left out when they hold their default (a step of 0 is not written).
//
// TFRecord framing of each serialized Event:
//   uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// all little-endian, with masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8.
#pragma once

#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/utf8.hpp>
#include <lightning/loggers/experiment_dir.hpp>

#include <unistd.h>

#include <atomic>
#include <bit>
#include <boost/crc.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace lightning::loggers::detail {

static_assert(std::endian::native == std::endian::little,
              "TFRecord and protobuf fixed-width fields are little-endian; this writer copies "
              "native bytes");

class ProtoWriter {
 public:
  ProtoWriter& varint(std::uint32_t field, std::uint64_t value) {
    key(field, 0);
    raw_varint(value);
    return *this;
  }
  ProtoWriter& fixed64(std::uint32_t field, double value) {
    key(field, 1);
    raw_bytes(value);
    return *this;
  }
  ProtoWriter& fixed32(std::uint32_t field, float value) {
    key(field, 5);
    raw_bytes(value);
    return *this;
  }
  // A string, a bytes field or a nested message (its serialized bytes).
  ProtoWriter& bytes(std::uint32_t field, std::string_view value) {
    key(field, 2);
    raw_varint(value.size());
    out_ += value;
    return *this;
  }
  // The serialized message; the writer is left empty.
  [[nodiscard]] std::string take() { return std::exchange(out_, {}); }

 private:
  void key(std::uint32_t field, std::uint32_t wire_type) {
    raw_varint((std::uint64_t{field} << 3) | wire_type);
  }
  void raw_varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_ += static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    out_ += static_cast<char>(v);
  }
  template <class T>
  void raw_bytes(T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    out_.append(bytes, sizeof(T));
  }

  std::string out_;
};

inline std::uint32_t masked_crc32c(std::string_view data) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data.data(), data.size());
  const std::uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

inline std::string tfrecord(std::string_view payload) {
  std::string record;
  record.reserve(payload.size() + 16);
  const std::uint64_t length = payload.size();
  char length_bytes[8];
  std::memcpy(length_bytes, &length, 8);
  const auto append_u32 = [&](std::uint32_t v) {
    char b[4];
    std::memcpy(b, &v, 4);
    record.append(b, 4);
  };
  record.append(length_bytes, 8);
  append_u32(masked_crc32c(std::string_view(length_bytes, 8)));
  record += payload;
  append_u32(masked_crc32c(payload));
  return record;
}

// Field numbers of tensorboard/compat/proto/{event,summary}.proto,
// tensorboard/plugins/hparams/{plugin_data,api}.proto and google/protobuf/struct.proto.
namespace field {
inline constexpr std::uint32_t event_wall_time = 1, event_step = 2, event_file_version = 3,
                               event_summary = 5;
inline constexpr std::uint32_t summary_value = 1;
inline constexpr std::uint32_t value_tag = 1, value_simple_value = 2, value_metadata = 9;
inline constexpr std::uint32_t metadata_plugin_data = 1;
inline constexpr std::uint32_t plugin_name = 1, plugin_content = 2;
inline constexpr std::uint32_t hparams_experiment = 2, hparams_session_start_info = 3,
                               hparams_session_end_info = 4;
inline constexpr std::uint32_t session_start_hparams = 1;
inline constexpr std::uint32_t session_end_status = 1;
inline constexpr std::uint32_t experiment_hparam_infos = 4, experiment_metric_infos = 5;
inline constexpr std::uint32_t hparam_info_name = 1, hparam_info_type = 4;
inline constexpr std::uint32_t metric_info_name = 1, metric_name_tag = 2;
inline constexpr std::uint32_t map_key = 1, map_value = 2;
inline constexpr std::uint32_t struct_number_value = 2, struct_string_value = 3;
}  // namespace field

// api.proto enums.
inline constexpr std::uint64_t data_type_string = 1, data_type_float64 = 3;
inline constexpr std::uint64_t status_success = 1;

inline std::string event(double wall_time, std::int64_t step, std::uint32_t what_field,
                         std::string_view what) {
  ProtoWriter e;
  e.fixed64(field::event_wall_time, wall_time);
  if (step != 0) e.varint(field::event_step, static_cast<std::uint64_t>(step));
  e.bytes(what_field, what);
  return e.take();
}

// The first record of every event file; TensorBoard checks it to know the format.
inline std::string file_version_event(double wall_time) {
  return event(wall_time, 0, field::event_file_version, "brain.Event:2");
}

// What SummaryWriter.add_scalar writes: Summary{value{tag, simple_value}} (a float).
inline std::string scalar_event(double wall_time, std::int64_t step, std::string_view tag,
                                float value) {
  // Protobuf strings are UTF-8: TensorBoard's reader refuses an event with other bytes.
  const auto summary_value = ProtoWriter{}
                                 .bytes(field::value_tag, valid_utf8(tag))
                                 .fixed32(field::value_simple_value, value)
                                 .take();
  const auto summary = ProtoWriter{}.bytes(field::summary_value, summary_value).take();
  return event(wall_time, step, field::event_summary, summary);
}

// One hparams-plugin summary: Summary{value{tag, metadata{plugin_data{"hparams",
// HParamsPluginData{version 0 (left out), <data_field>: data}}}}}.
inline std::string hparams_plugin_event(double wall_time, std::string_view tag,
                                        std::uint32_t data_field, std::string_view data) {
  const auto content = ProtoWriter{}.bytes(data_field, data).take();
  const auto plugin = ProtoWriter{}
                          .bytes(field::plugin_name, "hparams")
                          .bytes(field::plugin_content, content)
                          .take();
  const auto metadata = ProtoWriter{}.bytes(field::metadata_plugin_data, plugin).take();
  const auto value =
      ProtoWriter{}.bytes(field::value_tag, tag).bytes(field::value_metadata, metadata).take();
  const auto summary = ProtoWriter{}.bytes(field::summary_value, value).take();
  return event(wall_time, 0, field::event_summary, summary);
}

// The three summaries of torch.utils.tensorboard.summary.hparams(hparams, metrics) (the
// metrics are named in the experiment; their values are scalars of their own), in the
// order Lightning adds them: experiment, session_start_info, session_end_info. As there,
// numbers and flags are float64 values (Python's bool is an int), texts are strings.
struct HParamsSummaries {
  std::string experiment, session_start_info, session_end_info;
};

inline HParamsSummaries hparams_summaries(double wall_time, const HParams& hparams,
                                          const MetricMap& metrics) {
  ProtoWriter start_info;
  ProtoWriter experiment;
  for (const auto& [name, param] : hparams) {
    ProtoWriter value;
    const bool is_text = param.holds<std::string>();
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string>)
            value.bytes(field::struct_string_value, valid_utf8(v));
          else
            value.fixed64(field::struct_number_value, static_cast<double>(v));
        },
        param.value());
    start_info.bytes(field::session_start_hparams, ProtoWriter{}
                                                       .bytes(field::map_key, valid_utf8(name))
                                                       .bytes(field::map_value, value.take())
                                                       .take());
    experiment.bytes(
        field::experiment_hparam_infos,
        ProtoWriter{}
            .bytes(field::hparam_info_name, valid_utf8(name))
            .varint(field::hparam_info_type, is_text ? data_type_string : data_type_float64)
            .take());
  }
  for (const auto& [tag, value] : metrics) {
    const auto metric_name = ProtoWriter{}.bytes(field::metric_name_tag, valid_utf8(tag)).take();
    experiment.bytes(field::experiment_metric_infos,
                     ProtoWriter{}.bytes(field::metric_info_name, metric_name).take());
  }
  return {
      hparams_plugin_event(wall_time, "_hparams_/experiment", field::hparams_experiment,
                           experiment.take()),
      hparams_plugin_event(wall_time, "_hparams_/session_start_info",
                           field::hparams_session_start_info, start_info.take()),
      hparams_plugin_event(wall_time, "_hparams_/session_end_info", field::hparams_session_end_info,
                           ProtoWriter{}.varint(field::session_end_status, status_success).take()),
  };
}

inline double wall_time_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// One events.out.tfevents.<secs>.<host>.<pid>.<n> file, named as TensorBoard's
// EventFileWriter names it (n counts the files this process opened, from 0).
class EventFile {
 public:
  explicit EventFile(const std::filesystem::path& dir) : file_(dir / file_name(), "wb") {
    write(file_version_event(wall_time_now()));
  }

  void write(std::string_view serialized_event) { file_.write(tfrecord(serialized_event)); }
  void flush() { file_.flush(); }
  void close() { file_.close(); }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return file_.path(); }

 private:
  static std::string file_name() {
    static std::atomic<std::int64_t> opened{0};
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%010lld", static_cast<long long>(wall_time_now()));
    std::string name = "events.out.tfevents.";
    name += seconds;
    name += '.';
    name += host;
    name += '.';
    name += std::to_string(::getpid());
    name += '.';
    name += std::to_string(opened++);
    return name;
  }

  File file_;
};

}  // namespace lightning::loggers::detail
