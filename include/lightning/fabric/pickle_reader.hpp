// Reads what torch.save writes (PyTorch Lightning's checkpoints, lightning-cpp's own)
// with an allow-list as strict as torch.load(weights_only=True): the pickle may build
// dicts, lists, tuples, numbers, strings and tensors, and name only the Python globals
// below; any other global is a CheckpointError naming it. Nothing is ever called: each
// allowed global is interpreted here. torch's own C++ unpickler knows none of Lightning's
// classes (AttributeDict) nor numpy scalars, and cannot say which global it refused.
//
// Allowed globals (what torch.save files of PyTorch Lightning 2.6 runs hold):
//   collections.OrderedDict, collections.Counter          -> dict
//   torch._utils._rebuild_tensor_v2, _rebuild_parameter    -> tensor
//   torch.<Scalar>Storage (persistent ids of tensor data)   -> the tensor's storage
//   torch.Size                                             -> tuple of ints
//   lightning's and pytorch_lightning's AttributeDict     -> dict
//   numpy's multiarray.scalar, numpy.dtype, _codecs.encode -> a Python number
//   torch.jit._pickle's type tags and typed lists (LibTorch's torch::pickle_save) -> as is
#pragma once

#include <lightning/core/errors.hpp>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace lightning {

// A checkpoint names a Python global outside the allow-list; what() names it.
struct ForbiddenGlobalError : CheckpointError {
  using CheckpointError::CheckpointError;
};

namespace detail {

// Sizes of the data records the tensors' storages were made from, by their memory.
using RecordSizes = std::unordered_map<const void*, std::size_t>;

class PickleReader {
 public:
  // `load_record(key)`: the data record a tensor's persistent id names ("data/<key>").
  using RecordLoader = std::function<std::pair<at::DataPtr, std::size_t>(const std::string&)>;

  PickleReader(const char* data, std::size_t size, RecordLoader load_record)
      : data_(data), size_(size), load_record_(std::move(load_record)) {}

  c10::IValue parse() {
    while (true) {
      const auto op = byte();
      switch (op) {
        case 0x80:
          (void)byte();
          break;  // PROTO
        case 0x95:
          (void)bytes(8);
          break;  // FRAME
        case '.':
          return finish();  // STOP
        case '(':
          marks_.push_back(stack_.size());
          break;
        case '}':
          push(Dict{});
          break;
        case ']':
          push(List{});
          break;
        case ')':
          push(Tuple{});
          break;
        case 't':
          push(Tuple{pop_items_to_mark(), std::nullopt});
          break;
        case 0x85:
          push(Tuple{take(1), std::nullopt});
          break;
        case 0x86:
          push(Tuple{take(2), std::nullopt});
          break;
        case 0x87:
          push(Tuple{take(3), std::nullopt});
          break;
        case 'N':
          push(c10::IValue());
          break;
        case 0x88:
          push(c10::IValue(true));
          break;
        case 0x89:
          push(c10::IValue(false));
          break;
        case 'J':
          push(c10::IValue(static_cast<std::int64_t>(static_cast<std::int32_t>(little(4)))));
          break;
        case 'K':
          push(c10::IValue(static_cast<std::int64_t>(little(1))));
          break;
        case 'M':
          push(c10::IValue(static_cast<std::int64_t>(little(2))));
          break;
        case 0x8a:
          push(c10::IValue(long_int(byte())));
          break;
        case 0x8b:
          push(c10::IValue(long_int(little(4))));
          break;
        case 'G':
          push(c10::IValue(big_double()));
          break;
        case 'X':
          push(text(little(4)));
          break;
        case 0x8c:
          push(text(byte()));
          break;
        case 0x8d:
          push(text(little(8)));
          break;
        case 'U':
          push(Bytes{std::string(bytes(byte()))});
          break;  // SHORT_BINSTRING
        case 'T':
          push(Bytes{std::string(bytes(little(4)))});
          break;  // BINSTRING
        case 'C':
          push(Bytes{std::string(bytes(byte()))});
          break;  // SHORT_BINBYTES
        case 'B':
          push(Bytes{std::string(bytes(little(4)))});
          break;  // BINBYTES
        case 0x8e:
          push(Bytes{std::string(bytes(little(8)))});
          break;  // BINBYTES8
        case 'q':
          memo(byte());
          break;
        case 'r':
          memo(little(4));
          break;
        case 0x94:
          memo(memo_.size());
          break;  // MEMOIZE
        case 'h':
          push(recall(byte()));
          break;
        case 'j':
          push(recall(little(4)));
          break;
        case 'a': {
          auto value = value_of(pop());
          append(top_below(0), std::move(value));
          break;
        }
        case 'e': {
          auto items = pop_to_mark();
          for (auto& v : items) append(top_below(0), std::move(v));
          break;
        }
        case 's': {
          auto value = value_of(pop());
          auto key = value_of(pop());
          set_item(top_below(0), std::move(key), std::move(value));
          break;
        }
        case 'u': {
          auto items = pop_to_mark();
          if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
          for (std::size_t i = 0; i < items.size(); i += 2)
            set_item(top_below(0), std::move(items[i]), std::move(items[i + 1]));
          break;
        }
        case 'c': {
          auto module = line();
          auto name = line();
          push_global(Global{std::move(module), std::move(name)});
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop();
          auto module = pop();
          push_global(Global{string_of(module), string_of(name)});
          break;
        }
        case 'R': {
          auto args = pop();
          auto callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          auto args = pop();
          auto cls = pop();
          push(new_object(cls, args));
          break;
        }
        case 'b': {
          auto state = pop();
          build(top_below(0), state);
          break;
        }
        case 'Q':
          push(persistent_load(pop()));
          break;
        case 'P':
          fail("uses a text persistent id (PERSID), which torch.save never writes");
        default: {
          char hex[64];
          std::snprintf(hex, sizeof hex, "pickle opcode 0x%02x is not supported", op);
          fail(hex);
        }
      }
    }
  }

  RecordSizes& record_sizes() { return records_; }
  // Called with each storage as its record is read, and the record's size.
  void on_storage(std::function<void(const at::Tensor&, std::size_t)> f) {
    on_storage_ = std::move(f);
  }

 private:
  // What the stack holds besides values: names and objects being built.
  // Dicts and lists are LibTorch's from the start and filled in place, so every memo
  // reference shares one (as in Python) and costs nothing to pass on.
  struct Dict {
    c10::impl::GenericDict d{c10::AnyType::get(), c10::AnyType::get()};
  };
  struct List {
    c10::impl::GenericList l{c10::AnyType::get()};
  };
  struct Item;
  struct Tuple {
    std::vector<Item> items;           // a tuple may hold names (a storage type, a numpy dtype)
    std::optional<c10::IValue> value;  // made once: tuples are immutable
  };
  struct Global {
    std::string module, name;
  };
  struct Bytes {
    std::string data;
  };
  struct StorageType {
    c10::ScalarType dtype;
  };
  struct NumpyDtype {
    std::string code;  // "f8", "i8", "b1", ...
    bool big_endian = false;
  };
  struct Item {
    std::variant<c10::IValue, Global, Bytes, StorageType, NumpyDtype> v;
    // Containers stay open while SETITEMS/APPENDS fill them; they become IValues at the end.
    std::shared_ptr<std::variant<Dict, List, Tuple>> container;
  };

  [[noreturn]] void fail(const std::string& why) const {
    throw CheckpointError("the pickle " + why + " (at byte " + std::to_string(at_) + ")");
  }
  unsigned char byte() {
    if (at_ >= size_) fail("ends before its STOP opcode");
    return static_cast<unsigned char>(data_[at_++]);
  }
  std::string_view bytes(std::uint64_t n) {
    if (n > size_ - at_) fail("has a length past its end");
    std::string_view out(data_ + at_, static_cast<std::size_t>(n));
    at_ += static_cast<std::size_t>(n);
    return out;
  }
  std::uint64_t little(int n) {
    const auto b = bytes(static_cast<std::uint64_t>(n));
    std::uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k)
      v = (v << 8) | static_cast<unsigned char>(b[static_cast<std::size_t>(k)]);
    return v;
  }
  std::int64_t long_int(std::uint64_t n) {
    if (n > 8) fail("has an integer wider than 64 bits");
    if (n == 0) return 0;
    const auto b = bytes(n);
    std::uint64_t v = 0;
    for (std::size_t k = n; k-- > 0;) v = (v << 8) | static_cast<unsigned char>(b[k]);
    if (n < 8 && (static_cast<unsigned char>(b[n - 1]) & 0x80)) v |= ~std::uint64_t{0} << (8 * n);
    return static_cast<std::int64_t>(v);
  }
  double big_double() {
    const auto b = bytes(8);
    std::uint64_t v = 0;
    for (std::size_t k = 0; k < 8; ++k) v = (v << 8) | static_cast<unsigned char>(b[k]);
    double d = 0;
    std::memcpy(&d, &v, sizeof d);
    return d;
  }
  c10::IValue text(std::uint64_t n) { return c10::IValue(std::string(bytes(n))); }
  std::string line() {
    const auto* end = static_cast<const char*>(std::memchr(data_ + at_, '\n', size_ - at_));
    if (end == nullptr) fail("has a GLOBAL without its newline");
    std::string out(data_ + at_, static_cast<std::size_t>(end - (data_ + at_)));
    at_ += out.size() + 1;
    return out;
  }

  void push(c10::IValue v) { stack_.push_back(Item{std::move(v), nullptr}); }
  void push(Global g) { stack_.push_back(Item{std::move(g), nullptr}); }
  void push(Bytes b) { stack_.push_back(Item{std::move(b), nullptr}); }
  void push(StorageType s) { stack_.push_back(Item{s, nullptr}); }
  void push(NumpyDtype d) { stack_.push_back(Item{std::move(d), nullptr}); }
  template <class C>
  requires(std::same_as<C, Dict> || std::same_as<C, List> ||
           std::same_as<C, Tuple>) void push(C c) {
    stack_.push_back(
        Item{c10::IValue(), std::make_shared<std::variant<Dict, List, Tuple>>(std::move(c))});
  }
  void push(Item item) { stack_.push_back(std::move(item)); }
  // A storage type is a name persistent ids use; every other global waits for its call.
  void push_global(Global g) {
    if (g.module == "torch")
      if (const auto dtype = storage_dtype(g.name)) return push(StorageType{*dtype});
    push(std::move(g));
  }

  Item pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("pops from an empty stack");
    auto item = std::move(stack_.back());
    stack_.pop_back();
    return item;
  }
  Item& top_below(std::size_t n) {
    if (stack_.size() <= n) fail("reads past the bottom of its stack");
    return stack_[stack_.size() - 1 - n];
  }
  std::vector<Item> take(std::size_t n) {
    std::vector<Item> out(n);
    for (std::size_t i = n; i-- > 0;) out[i] = pop();
    return out;
  }
  std::vector<Item> pop_items_to_mark() {
    if (marks_.empty()) fail("uses a MARK it never set");
    const auto mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) fail("has a MARK above its stack");
    std::vector<Item> out(
        std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(mark)),
        std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return out;
  }
  std::vector<c10::IValue> pop_to_mark() {
    std::vector<c10::IValue> out;
    for (auto& item : pop_items_to_mark()) out.push_back(value_of(std::move(item)));
    return out;
  }
  void memo(std::uint64_t index) {
    if (stack_.empty()) fail("memoizes from an empty stack");
    if (index > memo_.size() + 1'000'000 || index > size_)
      fail("has a memo index " + std::to_string(index) + " beyond its size");
    if (index >= memo_.size()) memo_.resize(static_cast<std::size_t>(index) + 1);
    memo_[static_cast<std::size_t>(index)] = stack_.back();
  }
  Item recall(std::uint64_t index) {
    if (index >= memo_.size() || !memo_[static_cast<std::size_t>(index)])
      fail("reads a memo entry " + std::to_string(index) + " it never wrote");
    return *memo_[static_cast<std::size_t>(index)];
  }

  // An item as the value it is (containers are built now; a name is an error: it was
  // never called).
  c10::IValue value_of(const Item& item) {
    if (item.container) return build_container(*item.container);
    if (const auto* v = std::get_if<c10::IValue>(&item.v)) return *v;
    if (const auto* b = std::get_if<Bytes>(&item.v)) return c10::IValue(b->data);
    if (const auto* g = std::get_if<Global>(&item.v))
      fail("leaves the global " + g->module + "." + g->name + " uncalled");
    fail("leaves a storage type or numpy dtype as a value");
  }
  c10::IValue build_container(std::variant<Dict, List, Tuple>& c) {
    if (auto* d = std::get_if<Dict>(&c)) return d->d;
    if (auto* l = std::get_if<List>(&c)) return l->l;
    auto& t = std::get<Tuple>(c);
    if (!t.value) {
      if (++tuple_depth_ > max_depth) fail("nests tuples deeper than " + std::to_string(max_depth));
      std::vector<c10::IValue> items;
      for (const auto& item : t.items) items.push_back(value_of(item));
      --tuple_depth_;
      t.value = c10::ivalue::Tuple::create(std::move(items));
    }
    return *t.value;
  }
  void append(Item& target, c10::IValue value) {
    auto* list = target.container ? std::get_if<List>(target.container.get()) : nullptr;
    if (list == nullptr) fail("appends to something that is not a list");
    list->l.push_back(std::move(value));
  }
  void set_item(Item& target, c10::IValue key, c10::IValue value) {
    auto* dict = target.container ? std::get_if<Dict>(target.container.get()) : nullptr;
    if (dict == nullptr) fail("sets an item of something that is not a dict");
    if (!(key.isString() || key.isInt() || key.isDouble() || key.isBool()))
      fail("has a dict key of type " + std::string(key.tagKind()));
    dict->d.insert_or_assign(std::move(key), std::move(value));
  }
  static std::string string_of(const Item& item) {
    const auto* v = std::get_if<c10::IValue>(&item.v);
    return v != nullptr && v->isString() ? v->toStringRef() : std::string();
  }
  static std::string qualified(const Global& g) { return g.module + "." + g.name; }

  [[noreturn]] void refuse(const Global& g) const {
    throw ForbiddenGlobalError(
        "the pickle refers to the Python global `" + qualified(g) +
        "`, which is not among the globals a checkpoint may name (those of "
        "torch.load(weights_only=True) that PyTorch Lightning writes: OrderedDict, tensors, "
        "torch.Size, AttributeDict, numpy scalars); it is not loaded and nothing in it is run");
  }

  static std::optional<c10::ScalarType> storage_dtype(const std::string& name) {
    static const std::unordered_map<std::string, c10::ScalarType> types = {
        {"FloatStorage", c10::kFloat},
        {"DoubleStorage", c10::kDouble},
        {"HalfStorage", c10::kHalf},
        {"BFloat16Storage", c10::kBFloat16},
        {"LongStorage", c10::kLong},
        {"IntStorage", c10::kInt},
        {"ShortStorage", c10::kShort},
        {"CharStorage", c10::kChar},
        {"ByteStorage", c10::kByte},
        {"BoolStorage", c10::kBool},
        {"ComplexFloatStorage", c10::kComplexFloat},
        {"ComplexDoubleStorage", c10::kComplexDouble}};
    const auto it = types.find(name);
    return it == types.end() ? std::nullopt : std::optional<c10::ScalarType>(it->second);
  }
  static bool is_attribute_dict(const Global& g) {
    return g.name == "AttributeDict" && (g.module == "lightning.fabric.utilities.data" ||
                                         g.module == "lightning_fabric.utilities.data" ||
                                         g.module == "pytorch_lightning.utilities.parsing" ||
                                         g.module == "lightning.pytorch.utilities.parsing");
  }
  static bool is_numpy(const Global& g, const char* name) {
    return g.name == name && (g.module == "numpy.core.multiarray" ||
                              g.module == "numpy._core.multiarray" || g.module == "numpy");
  }

  const std::vector<Item>& arg_items(const Item& args) {
    if (args.container)
      if (const auto* t = std::get_if<Tuple>(args.container.get())) return t->items;
    fail("calls a global with arguments that are not a tuple");
  }
  std::vector<c10::IValue> args_of(const Item& args) {
    std::vector<c10::IValue> out;
    for (const auto& item : arg_items(args)) out.push_back(value_of(item));
    return out;
  }

  Item reduce(const Item& callable, const Item& args_item) {
    const auto* g = std::get_if<Global>(&callable.v);
    if (g == nullptr) fail("calls something that is not a global");
    if (g->module == "collections" && (g->name == "OrderedDict" || g->name == "Counter")) {
      auto args = args_of(args_item);
      Dict d;
      if (!args.empty() && args[0].isGenericDict())
        for (const auto& kv : args[0].toGenericDict()) d.d.insert_or_assign(kv.key(), kv.value());
      Item out;
      out.container = std::make_shared<std::variant<Dict, List, Tuple>>(std::move(d));
      return out;
    }
    if (g->module == "torch._utils" && g->name == "_rebuild_tensor_v2") {
      auto a = args_of(args_item);
      if (a.size() < 4 || !a[0].isTensor() || !a[1].isInt() || !a[2].isTuple() || !a[3].isTuple())
        fail("calls _rebuild_tensor_v2 with arguments of the wrong kinds");
      return Item{rebuild_tensor(a[0].toTensor(), a[1].toInt(), a[2], a[3]), nullptr};
    }
    if (g->module == "torch._utils" && g->name == "_rebuild_parameter") {
      auto a = args_of(args_item);
      if (a.empty() || !a[0].isTensor()) fail("calls _rebuild_parameter without a tensor");
      return Item{a[0], nullptr};
    }
    if (g->module == "torch" && g->name == "Size") {
      auto a = args_of(args_item);
      if (a.size() != 1 || !a[0].isTuple()) fail("calls torch.Size without a tuple");
      return Item{a[0], nullptr};
    }
    if (g->module == "_codecs" && g->name == "encode") {
      auto a = args_of(args_item);
      if (a.empty() || !a[0].isString()) fail("calls _codecs.encode without a string");
      // Python 2 protocols spell bytes as latin-1 text: each code point is one byte.
      std::string out;
      const auto& s = a[0].toStringRef();
      for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
          out += static_cast<char>(c);
        } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
          out +=
              static_cast<char>(((c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F));
          ++i;
        } else {
          fail("encodes text outside latin-1 as bytes");
        }
      }
      return Item{Bytes{std::move(out)}, nullptr};
    }
    if (is_numpy(*g, "dtype")) {
      auto a = args_of(args_item);
      if (a.empty() || !a[0].isString()) fail("calls numpy.dtype without a type code");
      return Item{NumpyDtype{a[0].toStringRef(), false}, nullptr};
    }
    if (is_numpy(*g, "scalar")) return numpy_scalar(arg_items(args_item));
    // LibTorch's own torch::pickle_save tags containers with their TorchScript types:
    // pure data, read as the container they wrap.
    if (g->module == "torch.jit._pickle" &&
        (g->name == "restore_type_tag" || g->name == "build_intlist" ||
         g->name == "build_doublelist" || g->name == "build_boollist" ||
         g->name == "build_tensorlist")) {
      const auto& a = arg_items(args_item);
      if (a.empty()) fail("calls " + qualified(*g) + " without a value");
      return a[0];
    }
    if (is_attribute_dict(*g)) {
      Item out;
      out.container = std::make_shared<std::variant<Dict, List, Tuple>>(Dict{});
      return out;
    }
    refuse(*g);
  }

  // numpy's scalar(dtype, bytes): a float, int or bool of the dtype's kind and width.
  Item numpy_scalar(const std::vector<Item>& args) {
    const auto* dtype = args.size() == 2 ? std::get_if<NumpyDtype>(&args[0].v) : nullptr;
    const auto* data = args.size() == 2 ? std::get_if<Bytes>(&args[1].v) : nullptr;
    if (dtype == nullptr || data == nullptr || dtype->code.size() < 2)
      fail("calls numpy's scalar with arguments other than a dtype and its bytes");
    const char kind = dtype->code[0];
    const auto width = static_cast<std::size_t>(std::atoi(dtype->code.c_str() + 1));
    if (data->data.size() != width || (width != 1 && width != 2 && width != 4 && width != 8))
      fail("has a numpy scalar of " + std::to_string(data->data.size()) + " bytes for dtype " +
           dtype->code);
    std::uint64_t bits = 0;
    for (std::size_t k = 0; k < width; ++k) {
      const auto b = static_cast<unsigned char>(data->data[dtype->big_endian ? k : width - 1 - k]);
      bits = (bits << 8) | b;
    }
    switch (kind) {
      case 'f':
        if (width == 8) return Item{c10::IValue(std::bit_cast<double>(bits)), nullptr};
        if (width == 4)
          return Item{c10::IValue(static_cast<double>(
                          std::bit_cast<float>(static_cast<std::uint32_t>(bits)))),
                      nullptr};
        return Item{c10::IValue(static_cast<double>(
                        c10::Half(static_cast<std::uint16_t>(bits), c10::Half::from_bits()))),
                    nullptr};
      case 'i': {
        const auto shift = 64 - 8 * width;
        return Item{c10::IValue(static_cast<std::int64_t>(bits << shift) >> shift), nullptr};
      }
      case 'u':
        if (bits > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          fail("has a numpy uint64 beyond int64");
        return Item{c10::IValue(static_cast<std::int64_t>(bits)), nullptr};
      case 'b':
        return Item{c10::IValue(bits != 0), nullptr};
      default:
        fail("has a numpy scalar of dtype " + dtype->code + " (not a number)");
    }
  }

  Item new_object(const Item& cls, const Item&) {
    const auto* g = std::get_if<Global>(&cls.v);
    if (g != nullptr && is_attribute_dict(*g)) {
      Item out;
      out.container = std::make_shared<std::variant<Dict, List, Tuple>>(Dict{});
      return out;
    }
    if (g == nullptr) fail("builds an object of something that is not a global");
    refuse(*g);
  }

  void build(Item& target, const Item& state) {
    if (auto* dtype = std::get_if<NumpyDtype>(&target.v)) {
      // numpy.dtype's state: (version, byte order, ...).
      const auto s = value_of(state);
      if (s.isTuple() && s.toTupleRef().elements().size() > 1 &&
          s.toTupleRef().elements()[1].isString())
        dtype->big_endian = s.toTupleRef().elements()[1].toStringRef() == ">";
      return;
    }
    auto* dict = target.container ? std::get_if<Dict>(target.container.get()) : nullptr;
    if (dict == nullptr) fail("sets the state of an object it cannot hold");
    // The state of a dict subclass is its attributes, not items: an OrderedDict
    // state_dict's `_metadata` (module versions), an AttributeDict's empty __dict__.
    (void)state;
  }

  // torch.save's persistent id of a tensor's data: ("storage", <Scalar>Storage, key,
  // location, numel). Each key is read once; tensors sharing it share the storage.
  Item persistent_load(const Item& pid) {
    const auto* t = pid.container ? std::get_if<Tuple>(pid.container.get()) : nullptr;
    if (t == nullptr || t->items.size() != 5)
      fail(
          "has a persistent id that is not torch.save's (\"storage\", type, key, location, numel)");
    const auto kind = value_of(t->items[0]);
    const auto* type = std::get_if<StorageType>(&t->items[1].v);
    const auto key = value_of(t->items[2]);
    const auto numel = value_of(t->items[4]);
    if (!kind.isString() || kind.toStringRef() != "storage" || type == nullptr || !key.isString() ||
        !numel.isInt() || numel.toInt() < 0)
      fail(
          "has a persistent id that is not torch.save's (\"storage\", type, key, location, numel)");
    const auto& name = key.toStringRef();
    if (auto it = storages_.find(name); it != storages_.end()) {
      if (it->second.scalar_type() != type->dtype)
        fail("reads the data record " + name + " as two different types");
      return Item{c10::IValue(it->second), nullptr};
    }
    auto [data, size] = load_record_(name);
    const auto element = c10::elementSize(type->dtype);
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(numel.toInt()), element, &bytes))
      fail("declares " + std::to_string(numel.toInt()) + " elements for the data record " + name);
    // The storage has the size the pickle declares, as torch.load makes it; nothing reads
    // it here, and load_checkpoint_file refuses any tensor whose storage is larger than
    // its record (record_sizes) before its data is read.
    records_[data.get()] = size;
    c10::Storage storage(c10::Storage::use_byte_size_t(), static_cast<std::size_t>(bytes),
                         std::move(data), /*allocator=*/nullptr, /*resizable=*/false);
    auto tensor = at::empty({0}, at::TensorOptions().dtype(type->dtype));
    tensor.set_(storage, 0, {numel.toInt()}, {1});
    storages_.emplace(name, tensor);
    if (on_storage_) on_storage_(tensor, size);
    return Item{c10::IValue(tensor), nullptr};
  }

  c10::IValue rebuild_tensor(const at::Tensor& storage, std::int64_t offset,
                             const c10::IValue& size, const c10::IValue& stride) {
    std::vector<std::int64_t> sizes, strides;
    for (const auto& s : size.toTupleRef().elements()) {
      if (!s.isInt()) fail("has a tensor size that is not an integer");
      sizes.push_back(s.toInt());
    }
    for (const auto& s : stride.toTupleRef().elements()) {
      if (!s.isInt()) fail("has a tensor stride that is not an integer");
      strides.push_back(s.toInt());
    }
    if (sizes.size() != strides.size()) fail("has a tensor with as many sizes as strides");
    for (const auto v : sizes)
      if (v < 0) fail("has a negative tensor size");
    for (const auto v : strides)
      if (v < 0) fail("has a negative tensor stride");
    if (offset < 0) fail("has a negative storage offset");
    auto out = at::empty({0}, storage.options());
    out.set_(storage.storage(), offset, sizes, strides);
    return out;
  }

  c10::IValue finish() {
    if (stack_.size() != 1)
      fail("ends with " + std::to_string(stack_.size()) + " items on its stack");
    auto value = value_of(pop());
    check_shape(value);
    return value;
  }

  // Everything that reads a checkpoint walks it recursively, path by path: a container
  // that holds itself, containers nested past max_depth, or shared ones that multiply
  // into more than max_values paths (L1 = [L0, L0], L2 = [L1, L1], ...) are refused
  // here, by a walk that visits each container once.
  static constexpr std::size_t max_depth = 512;
  static constexpr std::uint64_t max_values = 50'000'000;
  void check_shape(const c10::IValue& root) {
    const auto key = [](const c10::IValue& v) -> const void* {
      return v.isGenericDict() || v.isList() || v.isTuple() ? v.internalToPointer() : nullptr;
    };
    const auto each_child = [](const c10::IValue& v, const auto& f) {
      if (v.isGenericDict()) {
        for (const auto& kv : v.toGenericDict()) f(kv.value());
      } else if (v.isList()) {
        for (const auto& e : v.toListRef()) f(e);
      } else if (v.isTuple()) {
        for (const auto& e : v.toTupleRef().elements()) f(e);
      }
    };
    struct Shape {
      std::uint64_t values;
      std::size_t depth;
    };
    std::unordered_map<const void*, Shape> done;
    std::unordered_map<const void*, bool> open;
    struct Frame {
      const c10::IValue* v;
      bool expanded;
    };
    std::vector<Frame> stack{{&root, false}};
    while (!stack.empty()) {
      const auto* v = stack.back().v;
      const void* k = key(*v);
      if (k == nullptr || done.count(k) != 0) {
        stack.pop_back();
        continue;
      }
      if (!stack.back().expanded) {
        if (open.count(k) != 0) fail("holds a container that contains itself");
        if (open.size() >= max_depth)
          fail("nests containers deeper than " + std::to_string(max_depth));
        open[k] = true;
        stack.back().expanded = true;
        each_child(*v, [&](const c10::IValue& c) {
          if (const void* ck = key(c); ck != nullptr && open.count(ck) != 0)
            fail("holds a container that contains itself");
          stack.push_back({&c, false});
        });
        continue;
      }
      Shape shape{1, 1};
      each_child(*v, [&](const c10::IValue& c) {
        const void* ck = key(c);
        const Shape child = ck == nullptr ? Shape{1, 0} : done.at(ck);
        shape.values += child.values;
        shape.depth = std::max(shape.depth, child.depth + 1);
      });
      if (shape.values > max_values)
        fail("holds more than " + std::to_string(max_values) +
             " values (counting each appearance of a shared container)");
      done[k] = shape;
      open.erase(k);
      stack.pop_back();
    }
  }

  const char* data_;
  std::size_t size_;
  std::size_t at_ = 0;
  RecordLoader load_record_;
  std::vector<Item> stack_;
  std::vector<std::size_t> marks_;
  std::vector<std::optional<Item>> memo_;
  std::unordered_map<std::string, at::Tensor> storages_;
  RecordSizes records_;
  std::function<void(const at::Tensor&, std::size_t)> on_storage_;
  std::size_t tuple_depth_ = 0;
};

}  // namespace detail
}  // namespace lightning
