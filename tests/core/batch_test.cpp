// Batch transfer and batch-size inference over nested batch types.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include <boost/hana/define_struct.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace L = lightning;

namespace {
struct Sample {
  BOOST_HANA_DEFINE_STRUCT(Sample, (torch::Tensor, image), (torch::Tensor, label), (int, id));
};
torch::Tensor as_double(const torch::Tensor& t) {
  return t.to(torch::kDouble);
}
}  // namespace

TEST(Batch, MapTensorsReachesEveryNestedTensor) {
  using Nested =
      std::tuple<torch::Tensor, std::vector<torch::Tensor>, std::map<std::string, torch::Tensor>,
                 std::optional<torch::Tensor>, std::pair<int, torch::Tensor>>;
  Nested b{torch::ones({2}),
           {torch::ones({1}), torch::ones({3})},
           {{"a", torch::ones({1})}},
           torch::ones({1}),
           {7, torch::ones({1})}};
  auto out = L::map_tensors(b, as_double);
  EXPECT_EQ(std::get<0>(out).scalar_type(), torch::kDouble);
  EXPECT_EQ(std::get<1>(out)[1].scalar_type(), torch::kDouble);
  EXPECT_EQ(std::get<2>(out).at("a").scalar_type(), torch::kDouble);
  EXPECT_EQ(std::get<3>(out)->scalar_type(), torch::kDouble);
  EXPECT_EQ(std::get<4>(out).first, 7);
  EXPECT_EQ(std::get<4>(out).second.scalar_type(), torch::kDouble);
}

TEST(Batch, HanaStructsAndTorchDataExamples) {
  Sample s{torch::ones({4, 2}), torch::zeros({4}, torch::kLong), 3};
  auto out = L::map_tensors(s, as_double);
  EXPECT_EQ(out.image.scalar_type(), torch::kDouble);
  EXPECT_EQ(out.label.scalar_type(), torch::kDouble);
  EXPECT_EQ(out.id, 3);
  EXPECT_EQ(L::infer_batch_size(s), 4);

  torch::data::Example<> ex{torch::ones({5, 1}), torch::ones({5})};
  auto ex2 = L::map_tensors(ex, as_double);
  EXPECT_EQ(ex2.target.scalar_type(), torch::kDouble);
  EXPECT_EQ(L::infer_batch_size(ex), 5);
}

TEST(Batch, TransferLeavesTensorsOnTheirDeviceUntouched) {
  auto x = torch::ones({3});
  auto b = L::transfer_batch(std::make_tuple(x), c10::Device(c10::kCPU));
  EXPECT_TRUE(std::get<0>(b).is_same(x));  // same tensor, no copy
}

TEST(Batch, InferBatchSizeUsesTheFirstTensor) {
  EXPECT_EQ(L::infer_batch_size(std::make_tuple(7, torch::ones({9, 2}), torch::ones({4}))), 9);
  EXPECT_EQ(L::infer_batch_size(std::make_tuple(torch::tensor(1.0))), 1);
  EXPECT_EQ(L::infer_batch_size(std::string("no tensors")), 1);
}
