// Hook detection: declared (any signature) vs callable (Lightning's arguments), and
// dispatch that emits nothing for undeclared hooks.
#include <gtest/gtest.h>

#include <lightning/core/hooks.hpp>

#include <string>
#include <vector>

namespace hooks = lightning::hooks;

namespace {

struct None {};
struct Plain {
  int calls = 0;
  void on_train_epoch_end() { ++calls; }
};
struct Templated {
  std::vector<std::string> seen;
  template <class T, class M>
  void on_train_epoch_end(T&, M&) {
    seen.emplace_back("epoch_end");
  }
};
struct Overloaded {
  void on_fit_start(int) {}
  void on_fit_start(double) {}
};
struct NearMiss {
  void on_train_epoch_end(int) {}
};
struct FinalHooked final {
  void on_fit_end() {}
};
struct FinalEmpty final {};
struct DataMember {
  int on_fit_start = 0;  // a data member named like a hook is "declared" (and not callable)
};
struct ReturnsInt {
  int on_train_batch_start(int, long) { return -1; }
};

}  // namespace

static_assert(!hooks::on_train_epoch_end::declared<None>);
static_assert(hooks::on_train_epoch_end::declared<Plain>);
static_assert(hooks::on_train_epoch_end::declared<Templated>);
static_assert(hooks::on_fit_start::declared<Overloaded>);
static_assert(hooks::on_train_epoch_end::declared<NearMiss>);
static_assert(hooks::on_fit_end::declared<FinalHooked>);
static_assert(!hooks::on_fit_end::declared<FinalEmpty>);
static_assert(hooks::on_fit_start::declared<DataMember>);
static_assert(!hooks::on_fit_start::declared<int>);

static_assert(hooks::on_train_epoch_end::callable<Plain>);
static_assert(!hooks::on_train_epoch_end::callable<Plain, int&, int&>);
static_assert(hooks::on_train_epoch_end::callable<Templated, int&, int&>);
static_assert(!hooks::on_train_epoch_end::callable<NearMiss>);
static_assert(!hooks::on_fit_start::callable<DataMember>);

static_assert(hooks::on_fit_end::declared<FinalHooked> && !hooks::on_fit_end::declared<None>);
static_assert(!hooks::on_fit_end::declared<Plain>);

TEST(Hooks, ModuleHookIsCalledWhenDeclared) {
  Plain p;
  hooks::call_module<hooks::on_train_epoch_end>(p);
  hooks::call_module<hooks::on_train_epoch_end>(p);
  EXPECT_EQ(p.calls, 2);
  None n;
  hooks::call_module<hooks::on_train_epoch_end>(n);  // compiles to nothing
}

// Each callback appends its name to one shared log: the order is the tuple's.
struct Named {
  std::string name;
  std::vector<std::string>* log;
  template <class T, class M>
  void on_train_epoch_end(T&, M&) {
    log->push_back(name);
  }
};

TEST(Hooks, CallbackHooksRunOnEveryCallbackInOrder) {
  std::vector<std::string> log;
  std::tuple<Named, None, Named, Named> cbs{{"first", &log}, {}, {"second", &log}, {"third", &log}};
  int trainer = 0, module = 0;
  hooks::call_callbacks<hooks::on_train_epoch_end>(cbs, trainer, module);
  EXPECT_EQ(log, (std::vector<std::string>{"first", "second", "third"}));
}

TEST(Hooks, HookResultIsReturned) {
  ReturnsInt r;
  EXPECT_EQ(hooks::call_module<hooks::on_train_batch_start>(r, 1, 2L), -1);
}
